"""The worker as operators run it: its own process, killed, stopped, cut off from its database.

Each test starts `manage.py send_notices` as a process of its own against the test database
and a real SMTP server, and makes the fault happen for real.
"""

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from contextlib import closing, suppress
from pathlib import Path
from unittest import skipUnless

import psycopg
import pytest
from django.db import DatabaseError, connection
from django.test import Client, TransactionTestCase
from django.utils import timezone

from customers.models import Customer
from orders.models import Heartbeat, Order, StopLink
from orders.tests.smtp import smtp_server
from R4C.tests.world import catalog, database_url, drain, environment, place, produce, wait_for

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


# Loaded by the worker's Python at start-up (PYTHONPATH): one notice cannot be made.
POISON = """
import django

setup = django.setup


def poisoned_setup(*args, **kwargs):
    setup(*args, **kwargs)
    import orders.mail.worker

    made = orders.mail.worker.message_for

    def message_for(order):
        if order.customer.email.startswith("poison@"):
            raise RuntimeError("poisoned")
        return made(order)

    orders.mail.worker.message_for = message_for


django.setup = poisoned_setup
"""


class WorkerProcessTests(TransactionTestCase):
    def setUp(self):
        catalog()

    def start_worker(self, smtp_port: int, **env) -> subprocess.Popen:
        """The worker as its own process; `communicate()` gives what it logged. Its log goes
        to a file, not a pipe that nobody reads while it runs (a full pipe blocks it)."""
        env = environment(DEBUG="", NOTICE_CONNECTIONS="") | {
            "DATABASE_URL": database_url(),
            "EMAIL_HOST": "127.0.0.1",
            "EMAIL_PORT": str(smtp_port),
            "EMAIL_TIMEOUT": "2",
            "NOTICE_CONNECTIONS": "1",
            "PGAPPNAME": "r4c-worker",  # so that a test can find its database connections
            **env,
        }
        log = tempfile.TemporaryFile("w+")  # noqa: SIM115 - closed by the cleanup
        self.addCleanup(log.close)
        worker = subprocess.Popen(
            [sys.executable, "manage.py", "send_notices"],
            cwd=ROOT,
            env=env,
            stderr=log,
            text=True,
        )

        def communicate(timeout=None):
            worker.wait(timeout)
            log.seek(0)
            return None, log.read()

        worker.communicate = communicate
        self.addCleanup(worker.wait)
        self.addCleanup(worker.kill)
        return worker

    def test_a_worker_killed_mid_batch_mails_no_one_twice_but_the_one_in_flight(self):
        emails = [f"customer{i:02}@example.com" for i in range(20)]
        place("R2-D2", *emails)
        produce("R2-D2")

        with smtp_server() as server:
            server.delay = 0.2
            worker = self.start_worker(server.port, NOTICE_LEASE_SECONDS="10")
            killed = []

            def kill_after_the_seventh(accepted: int):
                # Right after the server accepted message 7, before the worker hears it.
                if accepted == 7 and not killed:
                    os.kill(worker.pid, signal.SIGKILL)
                    killed.append(accepted)

            server.on_accept = kill_after_the_seventh
            self.assertTrue(wait_for(lambda: bool(killed)))
            worker.wait()
            in_flight = Order.objects.filter(state="sending").count()
            self.assertGreater(in_flight, 0)  # the killed worker's claim is still there

            # The lease lapses; the next worker takes over.
            Order.objects.filter(state="sending").update(claimed_until=timezone.now())
            drain()

        counts = Counter(server.recipients())
        self.assertEqual(set(counts), set(emails))  # nobody is left out
        twice = [email for email, n in counts.items() if n > 1]
        self.assertEqual(len(twice), 1)  # one connection: its message in flight
        self.assertFalse(Order.objects.exclude(state="sent").exists())
        # ... went again as the same message, which receivers can recognise.
        ids = [message["Message-ID"] for [to], message in server.messages if to == twice[0]]
        self.assertEqual(len(ids), 2)
        self.assertEqual(ids[0], ids[1])

    def test_a_worker_paused_past_its_lease_writes_nothing_over_the_claims_it_lost(self):
        emails = [f"customer{i:02}@example.com" for i in range(30)]
        place("R2-D2", *emails)
        produce("R2-D2")

        with smtp_server() as server:
            server.delay = 0.2
            paused = self.start_worker(server.port, NOTICE_CONNECTIONS="2")
            stopped = []

            def pause_after_the_third(accepted: int):
                if accepted == 3 and not stopped:
                    os.kill(paused.pid, signal.SIGSTOP)
                    stopped.append(time.monotonic())

            server.on_accept = pause_after_the_third
            self.assertTrue(wait_for(lambda: bool(stopped)))
            # Another worker takes over the paused one's claims once its lease (15 s) lapses.
            other = self.start_worker(server.port, NOTICE_CONNECTIONS="2")
            time.sleep(40)
            os.kill(paused.pid, signal.SIGCONT)
            self.assertTrue(wait_for(lambda: set(server.recipients()) == set(emails), 30))
            time.sleep(3)  # what the woken worker still had to say
            for worker in (paused, other):
                worker.send_signal(signal.SIGTERM)
                worker.communicate(timeout=30)

        self.assertFalse(Order.objects.exclude(state="sent").exists())
        counts = Counter(server.recipients())
        twice = [email for email, n in counts.items() if n > 1]
        self.assertLessEqual(len(twice), 2)  # at most the paused worker's two in flight
        for email in twice:
            ids = {message["Message-ID"] for [to], message in server.messages if to == email}
            self.assertEqual(len(ids), 1)  # the same message again

    @skipUnless(connection.vendor == "postgresql", "pg_terminate_backend is PostgreSQL's")
    def test_a_database_that_drops_its_connections_mid_batch_doubles_nothing(self):
        emails = [f"customer{i:02}@example.com" for i in range(20)]
        place("R2-D2", *emails)
        produce("R2-D2")
        database = connection.settings_dict["NAME"]
        # A connection of its own: the SMTP handler runs in an event loop, where Django's
        # connections may not be used, and it must not terminate itself.
        admin = psycopg.connect(database_url(), autocommit=True)
        self.addCleanup(admin.close)

        def drop_the_workers_connections(accepted: int):
            if accepted in (5, 12):
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = %s AND application_name = 'r4c-worker'",
                    [database],
                )

        with smtp_server() as server:
            server.delay = 0.1
            server.on_accept = drop_the_workers_connections
            worker = self.start_worker(server.port)
            finished = wait_for(lambda: len(server.messages) >= 20, seconds=60)
            self.assertTrue(wait_for(lambda: not Order.objects.exclude(state="sent").exists(), 30))
            worker.send_signal(signal.SIGTERM)
            _, stderr = worker.communicate(timeout=30)

        self.assertTrue(finished)
        counts = Counter(server.recipients())
        self.assertEqual(set(counts), set(emails))
        # The worker carried on by itself; at most the messages in flight went twice.
        self.assertLessEqual(sum(n - 1 for n in counts.values()), 2)
        self.assertIn("database connection lost", stderr)

    @skipUnless(
        connection.vendor == "sqlite" and os.geteuid() == 0,
        "a small disk of its own (a tmpfs) takes root; CI runs as root",
    )
    def test_a_disk_full_for_15_s_mid_batch_doubles_nothing(self):
        emails = [f"customer{i:03}@example.com" for i in range(100)]
        place("R2-D2", *emails)
        produce("R2-D2")
        disk = Path(tempfile.mkdtemp())
        self.addCleanup(disk.rmdir)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", disk], check=True)
        self.addCleanup(subprocess.run, ["umount", disk], check=True)
        # The test database, copied onto that disk for the worker: its WAL grows there.
        database = disk / "r4c.sqlite3"
        connection.ensure_connection()
        with closing(sqlite3.connect(database)) as copy:
            connection.connection.backup(copy)
        filler = disk / "filler"

        def fill() -> None:
            with open(filler, "wb") as out, suppress(OSError):
                while True:
                    out.write(b"\0" * 65536)
                    out.flush()

        def outage(accepted: int):
            if accepted == 30:  # off the server's event loop, which must go on answering
                threading.Thread(target=fill).start()
                threading.Timer(15, filler.unlink).start()

        def unsent() -> int:
            with closing(sqlite3.connect(database)) as db:
                query = "SELECT COUNT(*) FROM orders_order WHERE state != 'sent'"
                return db.execute(query).fetchone()[0]

        with smtp_server() as server:
            server.on_accept = outage
            worker = self.start_worker(
                server.port,
                DATABASE_URL=f"sqlite:///{database}",
                NOTICE_CONNECTIONS="4",
                NOTICE_LEASE_SECONDS="30",
            )
            self.assertTrue(wait_for(lambda: len(server.messages) >= 100, seconds=90))
            self.assertTrue(wait_for(lambda: unsent() == 0, seconds=30))
            worker.send_signal(signal.SIGTERM)
            _, stderr = worker.communicate(timeout=30)

        self.assertEqual(server.recipients(), sorted(emails))  # each once
        self.assertIn("database or disk is full", stderr)

    def test_a_reply_that_trickles_in_for_longer_than_the_lease_mails_each_customer_once(self):
        emails = [f"customer{i}@example.com" for i in range(2)]
        place("R2-D2", *emails)
        produce("R2-D2")

        with smtp_server() as server:
            # Each byte of the reply to DATA within EMAIL_TIMEOUT (2 s), the reply 6 s: twice
            # the lease, which a second worker would take over if the first did not renew it.
            server.trickle = 6
            env = {"NOTICE_LEASE_SECONDS": "3", "EMAIL_TIMEOUT": "2"}
            workers = [self.start_worker(server.port, **env) for _ in range(2)]
            self.assertTrue(wait_for(lambda: len(server.messages) >= 2, seconds=60))
            self.assertFalse(wait_for(lambda: len(server.messages) > 2, seconds=5))
            for worker in workers:
                worker.send_signal(signal.SIGTERM)
                worker.communicate(timeout=30)

        self.assertEqual(server.recipients(), sorted(emails))

    def test_a_reply_trickled_for_a_minute_holds_only_its_own_notice(self):
        others = [f"customer{i}@example.com" for i in range(6)]
        place("R2-D2", "slow@example.com", *others)  # first in the batch
        produce("R2-D2")

        with smtp_server() as server:
            # A byte a second, each read well within EMAIL_TIMEOUT (2 s): only the whole
            # exchange's deadline (6 × 2 s) ends it.
            server.trickle_to = {"slow@example.com": 60}
            worker = self.start_worker(server.port, NOTICE_CONNECTIONS="4", EMAIL_TIMEOUT="2")
            self.assertTrue(wait_for(lambda: server.message_ids, seconds=30))  # on the wire
            # The rest of its batch does not wait for it: handed on, sent by another sender.
            self.assertTrue(wait_for(lambda: server.recipients() == sorted(others), seconds=5))
            slow = Order.objects.get(customer__email="slow@example.com")
            self.assertTrue(wait_for(lambda: slow.attempt_log.exists(), seconds=20))
            worker.send_signal(signal.SIGTERM)
            worker.communicate(timeout=30)

        attempt = slow.attempt_log.get()
        self.assertEqual(attempt.outcome, "retry")
        self.assertIn("no whole answer within 12 s", attempt.reply)
        self.assertLess(attempt.seconds, 15)
        self.assertEqual(Order.objects.filter(state="sent").count(), 6)

    def test_a_relay_that_turns_away_more_than_8_sessions_gets_8_within_10_s(self):
        emails = [f"customer{i:04}@example.com" for i in range(1000)]
        place("R2-D2", *emails)
        produce("R2-D2")

        with smtp_server() as server:
            # 421 at the greeting above 8 sessions; about 0.1 s a message, so that 8
            # connections take longer than 10 s for the 1,000.
            server.most_sessions = 8
            server.step_delay = 0.03
            worker = self.start_worker(server.port, NOTICE_CONNECTIONS="16")
            started = time.monotonic()
            self.assertTrue(wait_for(lambda: len(server.messages) == 1000, seconds=120))
            worker.send_signal(signal.SIGTERM)
            _, log = worker.communicate(timeout=30)

        self.assertTrue(server.turned_away)  # it opened more than 8
        self.assertLess(server.turned_away[-1] - started, 10)  # and settled within 10 s
        self.assertGreater(server.accepted_at[-1] - started, 10)  # while it still sent
        self.assertEqual(server.recipients(), emails)  # each once
        self.assertEqual(Order.objects.filter(state="sent").count(), 1000)
        self.assertIn("the mail server asks for fewer connections", log)

    def test_notice_max_rate_spaces_messages_evenly(self):
        emails = [f"customer{i:03}@example.com" for i in range(300)]
        place("R2-D2", *emails)
        produce("R2-D2")

        with smtp_server() as server:
            worker = self.start_worker(server.port, NOTICE_CONNECTIONS="16", NOTICE_MAX_RATE="50")
            self.assertTrue(wait_for(lambda: len(server.messages) == 300, seconds=60))
            worker.send_signal(signal.SIGTERM)
            worker.communicate(timeout=30)

        times = server.accepted_at
        busiest = max(sum(t <= u < t + 1 for u in times) for t in times)
        self.assertLessEqual(busiest, 55)  # no second holds more than 55
        self.assertGreater(times[-1] - times[0], 299 / 55)
        self.assertEqual(server.recipients(), emails)

    @skipUnless(connection.vendor == "sqlite", "on PostgreSQL the order's NOTIFY wakes it")
    def test_on_sqlite_an_order_in_stock_wakes_the_worker_and_a_second_worker_polls(self):
        produce("R2-D2")

        with smtp_server() as server:
            worker = self.start_worker(server.port, LOG_LEVEL="DEBUG")
            self.assertTrue(wait_for(lambda: Heartbeat.objects.exists()))  # it watches
            second = self.start_worker(server.port)
            self.assertTrue(wait_for(lambda: Heartbeat.objects.count() == 2))
            place("R2-D2", "ann@example.com")  # committed here: its commit wakes the worker
            self.assertTrue(wait_for(lambda: server.messages))
            for process in (worker, second):
                process.send_signal(signal.SIGTERM)
            _, log = worker.communicate(timeout=30)
            _, second_log = second.communicate(timeout=30)

        self.assertIn("woken by requests, and polling every 0.1 s", log)
        self.assertIn("woken by a request", log)  # not only by its poll
        self.assertIn("another worker is woken by requests; this one polls", second_log)
        self.assertEqual(server.recipients(), ["ann@example.com"])

    def test_a_stop_pressed_while_the_server_holds_data_then_answers_451_is_final(self):
        place("R2-D2", "ann@example.com")
        place("R2-A1", "ann@example.com")
        produce("R2-D2")
        with smtp_server() as server:
            drain()  # the first notice, with its stop link
        [secret] = StopLink.issue([Customer.objects.get()])
        produce("R2-A1")

        with smtp_server() as server:
            server.data_delay = 2
            server.temporary_failures = 1
            worker = self.start_worker(server.port, NOTICE_LEASE_SECONDS="10")
            self.assertTrue(wait_for(lambda: server.message_ids))  # on the wire now
            self.assertEqual(Client().post(f"/stop/{secret}/").status_code, 200)
            self.assertTrue(
                wait_for(lambda: Order.objects.get(robot_serial="R2-A1").attempt_log.exists())
            )
            # Were it put back to due, its retry would be due now.
            Order.objects.update(next_attempt_at=timezone.now())
            self.assertFalse(wait_for(lambda: len(server.message_ids) > 1, seconds=3))
            worker.send_signal(signal.SIGTERM)
            worker.communicate(timeout=30)

        self.assertEqual(server.recipients(), [])
        self.assertEqual(Order.objects.get(robot_serial="R2-A1").state, "stopped")

    def test_an_order_placed_again_while_its_notice_waits_to_retry_is_mailed_at_once(self):
        produce("R2-D2")
        order = {"email": "ann@example.com", "robot-serial": "R2-D2"}
        self.assertEqual(Client().post("/create_order/", order).status_code, 201)
        with smtp_server() as server:
            server.temporary_failures = 1
            worker = self.start_worker(server.port)
            self.assertTrue(wait_for(lambda: Order.objects.get().attempts == 1))
            waiting = Order.objects.get()
            self.assertEqual(waiting.state, "due")
            self.assertGreater(waiting.next_attempt_at, timezone.now())  # 30 s from now

            # Ann, who saw no mail, asks again: the worker hears of it and tries at once.
            self.assertEqual(Client().post("/create_order/", order).status_code, 200)
            self.assertTrue(wait_for(lambda: server.messages, seconds=5))
            worker.send_signal(signal.SIGTERM)
            worker.communicate(timeout=30)

        self.assertEqual(server.recipients(), ["ann@example.com"])
        self.assertEqual(Order.objects.get().state, "sent")

    @skipUnless(connection.vendor == "postgresql", "refusing connections is PostgreSQL's")
    def test_a_database_that_refuses_connections_for_8_s_mid_batch_doubles_nothing(self):
        emails = [f"customer{i:03}@example.com" for i in range(100)]
        place("R2-D2", *emails)
        produce("R2-D2")
        database = connection.settings_dict["NAME"]
        admin = psycopg.connect(database_url().rsplit("/", 1)[0] + "/postgres", autocommit=True)
        self.addCleanup(admin.close)

        def refuse(allow: bool) -> None:
            admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS {allow}')
            if not allow:
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = %s AND application_name = 'r4c-worker'",
                    [database],
                )

        self.addCleanup(refuse, True)

        def outage(accepted: int):
            # Off the server's event loop, which must go on answering.
            if accepted == 30:
                threading.Thread(target=refuse, args=[False]).start()
                threading.Timer(8, refuse, [True]).start()

        with smtp_server() as server:
            server.on_accept = outage
            worker = self.start_worker(
                server.port, NOTICE_CONNECTIONS="4", NOTICE_LEASE_SECONDS="30"
            )
            self.assertTrue(wait_for(lambda: len(server.messages) >= 100, seconds=60))
            self.assertTrue(wait_for(lambda: not Order.objects.exclude(state="sent").exists(), 30))
            worker.send_signal(signal.SIGTERM)
            _, stderr = worker.communicate(timeout=30)

        self.assertEqual(server.recipients(), sorted(emails))  # each once
        self.assertIn("database connection lost; recording again", stderr)

    def test_a_worker_killed_is_seen_as_gone_by_healthz(self):
        with smtp_server() as server:
            worker = self.start_worker(server.port)
            self.assertTrue(wait_for(self.worker_seen, seconds=30))
            self.assertLess(self.health()["worker_seen_seconds"], 10)
            os.kill(worker.pid, signal.SIGKILL)
            worker.wait()

            self.assertTrue(
                wait_for(lambda: self.health()["worker_seen_seconds"] > 25, seconds=60)
            )

    def health(self) -> dict:
        response = Client().get("/healthz")
        self.assertEqual(response.status_code, 200)  # a dead worker is no reason to leave
        return response.json()["notices"]

    def worker_seen(self) -> bool:
        return self.health()["worker_seen_seconds"] is not None

    def test_a_notice_that_raises_the_unforeseen_fails_alone_and_the_worker_lives_on(self):
        emails = ["ann@example.com", "poison@example.com", "bob@example.com"]
        place("R2-D2", *emails)
        produce("R2-D2")
        # The fault, injected into the worker's process at start-up.
        hooks = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, hooks)
        (hooks / "sitecustomize.py").write_text(POISON)

        with smtp_server() as server:
            worker = self.start_worker(server.port, PYTHONPATH=str(hooks))
            self.assertTrue(wait_for(lambda: len(server.messages) >= 2, seconds=30))
            place("R2-A1", "cid@example.com")
            produce("R2-A1")  # and the worker still serves
            self.assertTrue(wait_for(lambda: len(server.messages) >= 3, seconds=30))
            worker.send_signal(signal.SIGTERM)
            _, stderr = worker.communicate(timeout=30)

        self.assertEqual(
            server.recipients(), ["ann@example.com", "bob@example.com", "cid@example.com"]
        )
        poisoned = Order.objects.get(customer__email="poison@example.com")
        self.assertEqual(poisoned.state, "failed")
        self.assertEqual(poisoned.last_error, "RuntimeError: poisoned")
        self.assertIn("its notice could not be sent", stderr)

    @skipUnless(connection.vendor == "postgresql", "pg_terminate_backend is PostgreSQL's")
    def test_a_worker_whose_connections_were_all_dropped_hears_the_next_robot(self):
        place("R2-D2", "ann@example.com")
        admin = psycopg.connect(database_url(), autocommit=True)
        self.addCleanup(admin.close)
        with smtp_server() as server:
            worker = self.start_worker(server.port, NOTICE_CONNECTIONS="4")
            self.assertTrue(wait_for(self.worker_seen, seconds=30))
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND application_name = 'r4c-worker'",
                [connection.settings_dict["NAME"]],
            )
            time.sleep(1)  # quiet: nothing to do, the worker waits on LISTEN

            produce("R2-D2")
            self.assertTrue(wait_for(lambda: server.messages, seconds=5))
            worker.send_signal(signal.SIGTERM)
            worker.communicate(timeout=30)

    @skipUnless(
        connection.vendor == "postgresql" and os.geteuid() == 0 and shutil.which("pg_ctlcluster"),
        "restarting the machine's PostgreSQL takes root and pg_ctlcluster; CI has both",
    )
    def test_a_worker_hears_the_next_robot_after_postgresql_restarts(self):
        place("R2-D2", "ann@example.com")
        with smtp_server() as server:
            worker = self.start_worker(server.port, NOTICE_CONNECTIONS="4")
            self.assertTrue(wait_for(self.worker_seen, seconds=30))
            version = os.listdir("/etc/postgresql")[0]
            connection.close()  # this test's own, which the restart ends too
            subprocess.run(
                ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"],
                check=True, capture_output=True, timeout=60,
            )  # fmt: skip
            self.assertTrue(wait_for(self.database_answers, seconds=30))
            time.sleep(1)  # quiet: nothing to do, the worker waits on LISTEN again

            produce("R2-D2")
            self.assertTrue(wait_for(lambda: server.messages, seconds=5))
            worker.send_signal(signal.SIGTERM)
            worker.communicate(timeout=30)

    @staticmethod
    def database_answers() -> bool:
        try:
            connection.ensure_connection()
            return True
        except DatabaseError:
            connection.close()
            return False

    def test_sigterm_lets_the_worker_finish_the_message_in_flight_and_exit(self):
        place("R2-D2", "ann@example.com", "bob@example.com")
        produce("R2-D2")
        with smtp_server() as server:
            server.delay = 1
            worker = self.start_worker(server.port)
            self.assertTrue(wait_for(lambda: server.connections == 1))
            worker.send_signal(signal.SIGTERM)
            _, stderr = worker.communicate(timeout=30)

        self.assertEqual(worker.returncode, 0, stderr)
        self.assertIn("notice worker stopped", stderr)
        self.assertEqual(server.recipients(), ["ann@example.com"])
        # The rest is given back at once, not held until a lease runs out.
        self.assertEqual(
            dict(Order.objects.values_list("customer__email", "state")),
            {"ann@example.com": "sent", "bob@example.com": "due"},
        )
