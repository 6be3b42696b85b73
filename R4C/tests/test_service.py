"""The service as it runs in production, driven over HTTP only.

Two `make serve` instances (two "hosts", each gunicorn and a mail worker) share the test
database, PostgreSQL when DATABASE_URL is set, else SQLite; they mail through an aiosmtpd
server. Requests come as the TLS-terminating proxy forwards them (X-Forwarded-Proto: https).
Every process started here is stopped, also when a test fails.
"""

import http.client
import io
import itertools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from pathlib import Path
from unittest import skipIf, skipUnless

import psycopg
import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.contrib.auth.models import User
from django.db import connection
from django.test import TransactionTestCase
from openpyxl import load_workbook

from orders.models import Heartbeat, Order
from orders.tests.smtp import smtp_server
from R4C.tests.service import (
    APP_NAME,
    Browser,
    Service,
    call,
    order,
    post_robot,
    schemathesis,
)
from R4C.tests.world import (
    catalog,
    database_url,
    environment,
    place,
    produce,
    samples,
    wait_for,
)
from robots.models import ApiKey, Model, Robot, Version

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


class ServiceTests(TransactionTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.logs = tempfile.TemporaryDirectory()
        cls.smtp = smtp_server()
        cls.mailbox = cls.smtp.__enter__()
        cls.services = []
        try:
            # One after the other: each runs migrate and collectstatic first. The second
            # logs everything, as JSON.
            for env in ({}, {"LOG_FORMAT": "json", "LOG_LEVEL": "INFO"}):
                service = Service(cls.mailbox.port, cls.logs.name, **env)
                cls.services.append(service)
                if not wait_for(service.ready, seconds=90):
                    raise AssertionError(f"make serve did not start:\n{service.output()}")
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        for service in cls.services:
            service.stop()
        cls.smtp.__exit__(None, None, None)
        cls.logs.cleanup()
        super().tearDownClass()
        # After the cleanup above, so that a failure here leaves nothing running.
        assert not any(s.left_running for s in cls.services), "make serve left processes"

    def setUp(self):
        self.mailbox.messages.clear()
        self.a, self.b = (service.port for service in self.services)
        _, self.key = ApiKey.issue("production line")

    def test_a_manager_the_factory_and_customers_use_it_over_http(self):
        env = environment(
            DATABASE_URL=database_url(),
            DJANGO_SUPERUSER_USERNAME="director",
            DJANGO_SUPERUSER_PASSWORD="a-long-password-for-the-test",
            DJANGO_SUPERUSER_EMAIL="director@r4c.test",
        )
        subprocess.run(
            [sys.executable, "manage.py", "createsuperuser", "--noinput"],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
        )

        # The manager registers the catalog through the admin's own forms.
        admin = Browser(self.a)
        status, _, _ = admin.submit(
            "/admin/login/?next=/admin/",
            {"username": "director", "password": "a-long-password-for-the-test"},
        )
        self.assertEqual(status, 302)
        status, _, page = admin.submit(
            "/admin/robots/model/add/",
            {
                "name": "R2",
                "versions-TOTAL_FORMS": "2",
                "versions-INITIAL_FORMS": "0",
                "versions-MIN_NUM_FORMS": "0",
                "versions-MAX_NUM_FORMS": "1000",
                "versions-0-name": "D2",
                "versions-1-name": "a1",
            },
        )
        self.assertEqual(status, 302, page)
        self.assertEqual(
            call(self.b, "GET", "/static/admin/css/base.css")[0], 200
        )  # static files served, hashed by collectstatic

        # The factory's line gets its key from the command docs/api.md gives.
        key = subprocess.run(
            [sys.executable, "manage.py", "create_api_key", "line 1"],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        self.assertEqual(post_robot(self.a, "R2-D2", "not-a-key")[0], 401)

        # 30 customers wait; 10 robots of their serial come to both hosts at once.
        emails = [f"customer{i:02}@example.com" for i in range(30)]
        statuses = [order((self.a, self.b)[i % 2], e, "R2-D2")[0] for i, e in enumerate(emails)]
        self.assertEqual(statuses, [201] * 30)
        with ThreadPoolExecutor(max_workers=10) as pool:
            posted = list(
                pool.map(lambda i: post_robot((self.a, self.b)[i % 2], "R2-D2", key), range(10))
            )
        self.assertEqual([status for status, _, _ in posted], [201] * 10)
        self.assertTrue(wait_for(lambda: len(self.mailbox.messages) >= 30, seconds=60))
        self.assertFalse(wait_for(lambda: len(self.mailbox.messages) > 30, seconds=2))
        self.assertEqual(self.mailbox.recipients(), emails)

        # 16 production lines post 160 robots across both hosts at once.
        def line(n: int) -> list[int]:
            return [post_robot((self.a, self.b)[n % 2], "R2-A1", key)[0] for _ in range(10)]

        with ThreadPoolExecutor(max_workers=16) as pool:
            statuses = [status for statuses in pool.map(line, range(16)) for status in statuses]
        self.assertEqual(statuses, [201] * 160)

        # The director downloads the week's report, signed in to the admin.
        self.assertEqual(call(self.b, "GET", "/download/")[0], 401)
        status, _, content = admin.request("GET", "/download/")
        self.assertEqual(status, 200)
        sheet = load_workbook(io.BytesIO(content))["R2"]
        rows = [tuple(row) for row in sheet.iter_rows(min_row=2, max_col=3, values_only=True)]
        self.assertEqual(rows, [("R2", "A1", 160), ("R2", "D2", 10), ("Итого", None, 170)])

    def test_slow_and_silent_clients_do_not_starve_the_service(self):
        stop = threading.Event()
        self.addCleanup(stop.set)
        socks = []
        self.addCleanup(lambda: [sock.close() for sock in socks])

        def trickle(sock: socket.socket, data: bytes) -> None:
            try:
                for byte in data:
                    if stop.wait(1):  # a byte a second
                        return
                    sock.send(bytes([byte]))
            except OSError:
                pass

        head = b"POST /add_robot/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 500\r\n\r\n"
        for data in (head + b" " * 500, b"GET /healthz HTTP/1.1\r\nX-Pad: " + b"a" * 200, None):
            for _ in range(200):
                sock = socket.create_connection(("127.0.0.1", self.a))
                socks.append(sock)
                if data is not None:  # else: connected, and silent
                    sender = threading.Thread(target=trickle, args=(sock, data), daemon=True)
                    sender.start()
        time.sleep(2)  # every slow body has its headers in by now

        slowest = 0.0
        for _ in range(10):
            started = time.monotonic()
            status, _, _ = call(self.a, "GET", "/healthz")
            slowest = max(slowest, time.monotonic() - started)
            self.assertEqual(status, 200)
        self.assertLess(slowest, 1)
        self.assertEqual(post_robot(self.a, "R2-D2", self.key)[0], 400)  # answered, not stuck

    def test_a_body_trickled_within_each_read_timeout_is_cut_off_after_30_s(self):
        body = b'{"model": "R2", "version": "D2", "created": "2023-10-03 23:59:12"}'
        with socket.create_connection(("127.0.0.1", self.a), timeout=5) as sock:
            sock.sendall(
                b"POST /add_robot/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Forwarded-Proto: https\r\n"
                b"Content-Type: application/json\r\n"
                + f"Authorization: Bearer {self.key}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            )
            started, answer = time.monotonic(), None
            for byte in body:  # a byte every 2 s: each pause well within the 10 s per read
                with suppress(TimeoutError):
                    sock.settimeout(2)
                    answer = sock.recv(100)
                    break
                with suppress(OSError):
                    sock.send(bytes([byte]))
            held = time.monotonic() - started
        self.assertEqual(answer, b"")  # dropped, unanswered, as nginx drops a stalled read
        self.assertGreater(held, 29)
        self.assertLess(held, 35)
        self.assertEqual(Robot.objects.count(), 0)

    def test_one_address_with_4500_slow_connections_cannot_hold_the_front_door(self):
        stop = threading.Event()
        socks = []
        self.addCleanup(lambda: [sock.close() for sock in socks])
        self.addCleanup(stop.set)
        head = b"POST /add_robot/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5000\r\n\r\n"
        for _ in range(4500):  # each then sends a byte a second, about 1.4 KB/s in all
            sock = socket.create_connection(("127.0.0.1", self.a), timeout=10)
            sock.sendall(head)
            sock.setblocking(False)
            socks.append(sock)

        def trickle() -> None:
            while not stop.wait(1):
                for sock in socks:
                    with suppress(OSError):
                        sock.send(b" ")

        threading.Thread(target=trickle, daemon=True).start()
        time.sleep(2)

        slowest = 0.0
        for _ in range(10):  # a customer at another address
            started = time.monotonic()
            conn = http.client.HTTPConnection(
                "127.0.0.1", self.a, timeout=10, source_address=("127.0.0.2", 0)
            )
            conn.request("GET", "/healthz", headers={"X-Forwarded-Proto": "https"})
            self.assertEqual(conn.getresponse().status, 200)
            conn.close()
            slowest = max(slowest, time.monotonic() - started)
        refused = 0
        for sock in socks:
            with suppress(OSError):
                refused += sock.recv(20).startswith(b"HTTP/1.1 429")
        print(
            f"\n4,500 slow connections: {refused} refused with 429; another address's "
            f"slowest answer {slowest * 1000:.0f} ms"
        )
        self.assertLess(slowest, 1)
        self.assertGreater(refused, 4000)  # past 256 at once from one address

    def test_what_nginx_answers_itself_is_a_problem_with_the_security_headers(self):
        cases = [
            (400, b"GARBAGE\r\n\r\n"),
            (414, b"GET /" + b"a" * 10000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"),
            (431, b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n"),
            # A Transfer-Encoding nginx does not know: its 501 is the client's fault.
            (400, b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n"),
        ]
        for status, raw in cases:
            with self.subTest(status=status, request=raw[:20]):
                with socket.create_connection(("127.0.0.1", self.a), timeout=10) as sock:
                    sock.sendall(raw)
                    answer = b""
                    while chunk := sock.recv(65536):
                        answer += chunk
                head, _, body = answer.partition(b"\r\n\r\n")
                self.assertTrue(head.startswith(f"HTTP/1.1 {status} ".encode()), head)
                headers = head.decode().lower()
                self.assertIn("content-type: application/problem+json", headers)
                self.assertIn("content-security-policy: default-src 'none'", headers)
                self.assertIn("x-content-type-options: nosniff", headers)
                self.assertIn("x-frame-options: deny", headers)
                problem = json.loads(body)
                self.assertEqual(set(problem), {"type", "title", "status", "detail", "errors"})
                self.assertEqual(problem["status"], status)

    def test_requests_spaced_around_gunicorn_s_keep_alive_never_meet_a_502(self):
        Version.objects.create(model=Model.objects.create(name="R2"), name="D2")
        statuses = []
        # Around nginx's 1 s and gunicorn's 5 s: a reused upstream connection that gunicorn
        # closes as nginx sends on it is a 502 nginx does not retry (a POST).
        pauses = itertools.cycle([0.9, 1.0, 1.1, 1.9, 2.0, 2.1, 4.9, 5.0, 5.1])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            statuses.append(post_robot(self.a, "R2-D2", self.key)[0])
            time.sleep(next(pauses))
        self.assertEqual(set(statuses), {201})

    def test_a_500_megabyte_upload_is_refused_at_once_and_nothing_is_spooled(self):
        spool = ROOT / f".serve-{self.a}"
        before = sorted(p.relative_to(spool) for p in spool.rglob("*") if p.is_file())
        with socket.create_connection(("127.0.0.1", self.a), timeout=5) as sock:
            started = time.monotonic()
            sock.sendall(
                b"POST /create_order/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Forwarded-Proto: https\r\n"
                b"Content-Type: multipart/form-data; boundary=b\r\n"
                + f"Content-Length: {500 * 2**20}\r\n\r\n".encode()
                + b'--b\r\nContent-Disposition: form-data; name="f"; filename="big"\r\n\r\n'
                + b"\0" * 65536
            )
            answer = sock.recv(1000)
            self.assertLess(time.monotonic() - started, 1)
        self.assertTrue(answer.startswith(b"HTTP/1.1 413"), answer)
        self.assertIn(b"application/problem+json", answer)
        after = sorted(p.relative_to(spool) for p in spool.rglob("*") if p.is_file())
        self.assertEqual(after, before)  # nothing in nginx's body spool, nothing new at all

    def test_with_log_format_json_every_line_the_service_prints_is_one_json_object(self):
        service = self.services[1]
        Version.objects.create(model=Model.objects.create(name="R2"), name="D2")
        self.assertEqual(order(self.b, "ann@example.com", "R2-D2")[0], 201)
        self.assertEqual(post_robot(self.b, "R2-D2", self.key)[0], 201)
        self.assertTrue(wait_for(lambda: self.mailbox.messages, seconds=30))
        self.assertEqual(post_robot(self.b, "R2-XX", self.key)[0], 400)
        self.assertEqual(call(self.b, "GET", "/nowhere")[0], 404)
        self.assertEqual(call(self.b, "GET", "/favicon.ico")[0], 302)
        # nginx logs this refusal itself, with the request line: a stop secret and a search.
        secret = "/stop/s3cr3t-never-in-a-log/?q=searched"
        big = {"Content-Length": str(10**8), "Content-Type": "application/json"}
        self.assertEqual(call(self.b, "POST", secret, None, big)[0], 413)
        time.sleep(1)  # gunicorn's last lines (the mail went from either service's worker)

        lines = service.output().splitlines()
        events = [json.loads(line) for line in lines]  # every line, from the first, parses

        for event in events:
            self.assertLessEqual({"time", "level", "logger", "event"}, set(event), event)
            self.assertRegex(event["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        access = [e for e in events if e["logger"] == "gunicorn.access"]
        self.assertTrue(all(len(e["request_id"]) == 32 for e in access), access)
        statuses = {e["status"] for e in access}
        self.assertLessEqual({"201", "400", "404", "302"}, statuses)
        self.assertNotIn("favicon", " ".join(e["event"] for e in events if e["level"] != "INFO"))
        nginx = [e["event"] for e in events if e["logger"] == "nginx"]
        self.assertTrue(any("too large body" in event for event in nginx), nginx)
        self.assertNotIn("s3cr3t", service.output())
        self.assertNotIn("searched", service.output())

    def test_every_web_process_answers_the_same_metrics(self):
        for _ in range(5):
            call(self.a, "GET", "/healthz")
        headers = {"Authorization": f"Bearer {self.key}"}

        # Each scrape on a new connection: gunicorn's two processes take them in turn.
        scraped = [samples(call(self.a, "GET", "/metrics", None, headers)[2]) for _ in range(6)]

        healthz = ("r4c_http_request_seconds_count", (("status", "200"), ("view", "healthz")))
        counts = {found[healthz] for found in scraped}
        self.assertEqual(len(counts), 1, counts)
        self.assertGreaterEqual(counts.pop(), 5)

    def test_errors_over_http_are_problems_and_keep_the_method(self):
        Version.objects.create(model=Model.objects.create(name="R2"), name="D2")
        status, headers, _ = call(self.a, "POST", "/download/")
        self.assertEqual((status, headers["Content-Type"]), (405, "application/problem+json"))
        status, headers, _ = post_robot(self.b, "R2-XX", self.key)
        self.assertEqual((status, headers["Content-Type"]), (400, "application/problem+json"))
        body = json.dumps({"model": "R2", "version": "D2", "created": "2023-10-03 23:59:12"})
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {self.key}"}
        status, _, _ = call(self.a, "POST", "/add_robot", body, headers)
        self.assertEqual(status, 201)  # no slash, no redirect

    def test_a_client_that_writes_x_forwarded_for_is_locked_out_as_the_address_nginx_saw(self):
        User.objects.create(  # hashed as the service checks it (the tests' own hasher is MD5)
            username="director",
            password=PBKDF2PasswordHasher().encode("the-right-password", "director-salt"),
            is_staff=True,
            is_superuser=True,
        )
        for written in ("unknown", "203.0.113.5:51234", "[2001:db8::1]:443"):
            with self.subTest(written=written):
                AccessAttempt.objects.all().delete()
                statuses = []
                for password in ["guess"] * 5 + ["the-right-password"]:
                    status, _, _ = Browser(self.a).submit(
                        "/admin/login/?next=/admin/",
                        {"username": "director", "password": password},
                        headers={"X-Forwarded-For": written},
                    )
                    statuses.append(status)
                self.assertEqual(statuses, [200] * 4 + [429, 429])
                self.assertEqual(
                    list(AccessAttempt.objects.values_list("ip_address", flat=True)),
                    ["127.0.0.1"],  # the address nginx saw
                )

    def test_after_a_forget_no_log_nor_database_file_holds_the_address_or_its_secret(self):
        Version.objects.create(model=Model.objects.create(name="R2"), name="D2")
        User.objects.create(  # hashed as the service checks it (the tests' own hasher is MD5)
            username="keeper",
            password=PBKDF2PasswordHasher().encode("a-long-password-for-it", "keeper-salt"),
            is_staff=True,
            is_superuser=True,
        )
        self.assertEqual(post_robot(self.a, "R2-D2", self.key)[0], 201)
        kept, gone = "kept.secretly@example.com", "gone.secretly@example.com"
        self.mailbox.refuse[gone] = f"550 5.1.1 <{gone}>: Recipient address rejected"
        self.addCleanup(self.mailbox.refuse.clear)
        for host, email in ((self.a, kept), (self.b, gone)):  # the second logs as JSON
            self.assertEqual(order(host, email, "R2-D2")[0], 201)
        self.assertTrue(wait_for(lambda: self.mailbox.recipients() == [kept], seconds=30))
        self.assertTrue(wait_for(lambda: Order.objects.filter(state="failed").exists(), 30))
        # The customer opens the stop link, and presses it; a manager searches for both.
        link = re.search(
            r"<https?://[^/]+(/stop/[^/]+/)>", self.mailbox.messages[0][1]["List-Unsubscribe"]
        )
        secret = link.group(1).split("/")[2]
        for host in (self.a, self.b):
            self.assertEqual(call(host, "GET", link.group(1))[0], 200)
            self.assertEqual(call(host, "GET", f"/stop/{secret}x/")[0], 404)  # logged by Django
            manager = Browser(host)
            manager.submit(
                "/admin/login/", {"username": "keeper", "password": "a-long-password-for-it"}
            )
            for email in (kept, gone):
                query = urllib.parse.urlencode({"q": email})
                self.assertEqual(
                    manager.request("GET", f"/admin/customers/customer/?{query}")[0], 200
                )
        self.assertEqual(call(self.a, "POST", link.group(1))[0], 200)

        for email in (kept, gone):
            subprocess.run(
                [sys.executable, "manage.py", "forget_customer", email],
                cwd=ROOT,
                env=environment(DATABASE_URL=database_url()),
                check=True,
                capture_output=True,
            )
        time.sleep(1)  # the last log lines reach the files
        files = {f"make serve {s.port}": s.output().encode() for s in self.services}
        if connection.vendor == "sqlite":
            name = connection.settings_dict["NAME"]
            files |= {
                path: Path(path).read_bytes()
                for path in (name, f"{name}-wal")
                if Path(path).exists()
            }
        self.assertIn(b"/stop/", files[f"make serve {self.a}"])  # the access log was written
        for where, content in files.items():
            for what in (kept, gone, secret, "secretly%40", "secretly@"):
                with self.subTest(where=where, what=what):
                    self.assertNotIn(what.encode(), content.lower())

    def test_the_api_answers_in_production_as_its_contract_says(self):
        Version.objects.create(model=Model.objects.create(name="R2"), name="D2")
        url = f"http://127.0.0.1:{self.a}"
        headers = ["-H", "X-Forwarded-Proto: https", "-H", f"Authorization: Bearer {self.key}"]
        # ignored_auth included: every keyed operation refuses a request without a valid key.
        run = schemathesis(url, *headers)
        self.assertEqual(run.returncode, 0, run.stdout[-6000:] + run.stderr)

    def test_keys_idempotency_and_limits_hold_over_http(self):
        Version.objects.create(model=Model.objects.create(name="R2"), name="D2")
        body = json.dumps({"model": "R2", "version": "D2", "created": "2023-10-03 23:59:12"})
        headers = {
            "Content-Type": "application/json",
            "Authorization": f"Bearer {self.key}",
            "Idempotency-Key": "line-1-0001",
        }
        # A retry after a timeout, to the other host: the first answer, no second robot.
        first = call(self.a, "POST", "/add_robot/", body, headers)
        retry = call(self.b, "POST", "/add_robot/", body, headers)
        self.assertEqual((first[0], retry[0]), (201, 201))
        self.assertEqual(retry[2], first[2])
        self.assertEqual(Robot.objects.count(), 1)

        # One address may be ordered for 5 times in 10 minutes, whichever host takes it.
        statuses = [
            order((self.a, self.b)[n % 2], "ann@example.com", "R2-D2")[0] for n in range(6)
        ]
        self.assertEqual(statuses[:5], [201, 200, 200, 200, 200])
        self.assertEqual(statuses[5], 429)

        # A chunked body is refused for what it is, not read as empty.
        with socket.create_connection(("127.0.0.1", self.a)) as sock:
            sock.sendall(
                b"POST /add_robot/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Forwarded-Proto: https\r\n"
                b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
                + f"Authorization: Bearer {self.key}\r\n\r\n".encode()
                + f"{len(body):x}\r\n{body}\r\n0\r\n\r\n".encode()
            )
            self.assertTrue(sock.recv(1000).startswith(b"HTTP/1.1 411"))

    def test_a_worker_killed_mid_batch_is_replaced_its_claims_come_back_and_the_site_answers(
        self,
    ):
        catalog()
        emails = [f"customer{i:02}@example.com" for i in range(40)]
        place("R2-D2", *emails)
        [worker] = self.services[0].worker_pids()
        killed = []

        def kill_after_the_fifth(accepted: int):
            if accepted == 5 and not killed:
                os.kill(worker, signal.SIGKILL)
                killed.append(time.monotonic())

        self.mailbox.delay = 0.3
        self.mailbox.on_accept = kill_after_the_fifth
        self.addCleanup(setattr, self.mailbox, "delay", 0)
        self.addCleanup(setattr, self.mailbox, "on_accept", None)
        produce("R2-D2")
        self.assertTrue(wait_for(lambda: bool(killed), 30))
        health = []  # /healthz every half second for 20 s after the kill
        with ThreadPoolExecutor(max_workers=1) as pool:
            polled = pool.submit(
                lambda: [
                    health.append(call(self.a, "GET", "/healthz")[0]) or time.sleep(0.5)
                    for _ in range(40)
                ]
            )
            # Its claims come back within 30 s of the kill: a killed worker beats no more.
            self.assertTrue(wait_for(lambda: set(self.mailbox.recipients()) == set(emails), 30))
            accepted_after = time.monotonic() - killed[0]
            polled.result()
        self.assertEqual(health, [200] * 40)
        self.assertEqual(set(self.mailbox.recipients()), set(emails))
        counts = Counter(self.mailbox.recipients())
        for email in [e for e, n in counts.items() if n > 1]:  # at most what was in flight
            ids = {m["Message-ID"] for [to], m in self.mailbox.messages if to == email}
            self.assertEqual(len(ids), 1)
        self.assertLessEqual(sum(n - 1 for n in counts.values()), 4)  # NOTICE_CONNECTIONS
        print(f"the killed worker's notices were all accepted {accepted_after:.1f} s after")

        # A new worker took its place, and beats.
        [new] = self.services[0].worker_pids()
        self.assertNotEqual(new, worker)
        self.assertIn("the notice worker was killed by SIGKILL", self.services[0].output())
        self.assertTrue(
            wait_for(lambda: Heartbeat.objects.filter(name__endswith=f":{new}").exists(), 10)
        )
        self.assertEqual(order(self.a, "later@example.com", "R2-D2")[0], 201)
        self.assertTrue(wait_for(lambda: "later@example.com" in self.mailbox.recipients(), 10))
        # The next test makes its catalog anew: the web keeps a serial's version for a
        # second (Version.by_serial), and a version made anew under it is another row.
        time.sleep(1.1)

    @skipUnless(connection.vendor == "postgresql", "pg_terminate_backend is PostgreSQL's")
    @skipIf(settings.DATABASE_POOLED, "behind a pooler, its server connections are not R4C's")
    def test_it_recovers_by_itself_when_the_database_drops_every_connection(self):
        Version.objects.create(model=Model.objects.create(name="R2"), name="D2")
        stop = threading.Event()
        answers = []  # (status, content type, robot id or None)

        def production_line(n: int):
            while not stop.is_set():
                status, headers, content = post_robot((self.a, self.b)[n % 2], "R2-D2", self.key)
                robot = json.loads(content).get("id") if status == 201 else None
                answers.append((status, headers["Content-Type"], robot))

        admin = psycopg.connect(database_url(), autocommit=True)
        self.addCleanup(admin.close)
        with ThreadPoolExecutor(max_workers=8) as pool:
            lines = [pool.submit(production_line, n) for n in range(8)]
            time.sleep(1.5)
            before = len(answers)
            dropped = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = %s",
                [APP_NAME],
            ).fetchone()[0]
            time.sleep(2)
            stop.set()
            for future in lines:
                future.result()

        self.assertGreater(dropped, 0)
        self.assertTrue(
            all(
                (status, kind) in {(201, "application/json"), (503, "application/problem+json")}
                for status, kind, _ in answers
            ),
            {(status, kind) for status, kind, _ in answers},
        )
        self.assertIn(201, [status for status, _, _ in answers[before + 20 :]])  # it recovered
        acknowledged = {robot for status, _, robot in answers if status == 201}
        self.assertLessEqual(acknowledged, set(Robot.objects.values_list("pk", flat=True)))
        self.assertEqual(call(self.a, "GET", "/healthz")[0], 200)
