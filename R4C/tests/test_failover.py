"""High availability as docs/production.md sets it up: a primary with a synchronous standby,
and R4C given one URL that names both. The primary crashes under traffic and the standby is
promoted, for real: two PostgreSQL servers of the test's own on 127.0.0.2 and 127.0.0.3, and
`make serve` in front of them.
"""

import json
import os
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from unittest import skipIf, skipUnless

import psycopg
import pytest
from django.db import connection
from django.test import SimpleTestCase

from orders.tests.smtp import free_port
from R4C.tests import postgres
from R4C.tests.service import call, order, post_robot, serve_on
from R4C.tests.world import wait_for

pytestmark = pytest.mark.slow

PRIMARY, STANDBY = "127.0.0.2", "127.0.0.3"


@skipUnless(connection.vendor == "postgresql", "run with the PostgreSQL tier")
@skipIf(postgres.missing() and not os.environ.get("CI"), postgres.missing() or "")
class FailoverTests(SimpleTestCase):
    def setUp(self):
        port = free_port()
        self.primary = postgres.Server(PRIMARY, port)
        self.addCleanup(self.primary.close)
        self.standby = postgres.Server(STANDBY, port)
        self.addCleanup(self.standby.close)
        self.primary.init()
        self.primary.start()
        self.primary.sql("CREATE DATABASE r4c")
        self.standby.standby_of(self.primary)
        self.standby.start()
        self.primary.wait_for_every_commit_on_a_standby()
        self.assertTrue(
            wait_for(
                lambda: (
                    self.primary.sql("SELECT sync_state FROM pg_stat_replication") == [("sync",)]
                ),
                30,
            )
        )
        # What docs/production.md tells the operator to set: both hosts, the writable one.
        self.url = (
            f"postgres://postgres@{PRIMARY},{STANDBY}:{port}/r4c"
            "?target_session_attrs=read-write&connect_timeout=2"
        )
        self.service, self.mailbox = serve_on(self, self.url, PGAPPNAME="r4c-drill")
        self.key = self.service.key

    def test_a_primary_that_crashes_under_traffic_loses_nothing_acknowledged(self):
        port = self.service.port
        self.assertEqual(post_robot(port, "R2-D2", self.key)[0], 201)  # in stock from now on
        stop = threading.Event()
        answers = []  # (kind, started, ended, status, headers, body)

        def line(n: int) -> None:
            while not stop.is_set():
                started = time.monotonic()
                status, headers, body = post_robot(port, "R2-A1", self.key)
                answers.append(("robot", started, time.monotonic(), status, headers, body))

        def customer(n: int) -> None:
            for i in range(10**6):
                if stop.is_set():
                    return
                started = time.monotonic()
                status, headers, body = order(port, f"c{n}-{i}@example.com", "R2-D2")
                answers.append(("order", started, time.monotonic(), status, headers, body))

        with ThreadPoolExecutor(max_workers=6) as pool:
            running = [pool.submit(line, n) for n in range(4)]
            running += [pool.submit(customer, n) for n in range(2)]
            time.sleep(3)
            self.primary.stop("immediate")  # a crash: every connection cut
            crashed = time.monotonic()
            time.sleep(1)
            promoted, promoted_at = time.monotonic(), datetime.now(UTC)
            self.standby.promote()  # what the failover tool does
            time.sleep(5)
            stop.set()
            for future in running:
                future.result()

        statuses = Counter(status for *_, status, _, _ in answers)
        self.assertLessEqual(set(statuses), {200, 201, 503}, statuses)  # never a 500
        for *_, status, headers, body in answers:
            if status == 503:
                self.assertEqual(headers["Content-Type"], "application/problem+json")
                self.assertEqual(headers["Retry-After"], "5")
        first_ok = min(
            ended
            for _, started, ended, status, *_ in answers
            if started > crashed and status in (200, 201)
        )
        self.assertLess(first_ok - promoted, 2)

        # Nothing acknowledged is missing on the new primary.
        kept = {row[0] for row in self.standby_rows('SELECT id FROM "robots_robot"')}
        orders = {
            json.loads(body)["id"]
            for kind, *_, status, _, body in answers
            if kind == "order" and status in (200, 201)
        }
        placed = {row[0] for row in self.standby_rows('SELECT id FROM "orders_order"')}
        self.assertLessEqual(orders, placed)
        acknowledged = {
            json.loads(body)["id"]
            for kind, *_, status, _, body in answers
            if kind == "robot" and status == 201
        }
        self.assertLessEqual(acknowledged, kept)

        # The worker LISTENs on the new primary within 5 s...
        listening = [
            datetime.fromisoformat(line.split()[0])
            for line in self.service.output().splitlines()
            if f"listening for due notices on {STANDBY}" in line
        ]
        self.assertTrue(listening, self.service.output()[-3000:])
        self.assertLess((listening[0] - promoted_at).total_seconds(), 5)
        # Every acknowledged order is mailed; a double (the message in flight at the crash)
        # carries its first Message-ID.
        emails = {
            json.loads(body)["email"]
            for kind, *_, status, _, body in answers
            if kind == "order" and status in (200, 201)
        }
        self.assertTrue(wait_for(lambda: emails <= set(self.mailbox.recipients()), 60))
        # A robot now, the backlog sent, is mailed at once (LISTEN), not at the next poll.
        waits = []
        for serial in ("13-XS", "X5-LT"):
            self.assertEqual(order(port, f"waiting-{serial}@example.com", serial)[0], 201)
            started = time.monotonic()
            self.assertEqual(post_robot(port, serial, self.key)[0], 201)
            self.assertTrue(
                wait_for(lambda s=serial: f"waiting-{s}@example.com" in self.mailbox.recipients())
            )
            waits.append(time.monotonic() - started)
        self.assertLess(max(waits), 0.5)

        counts = Counter(self.mailbox.recipients())
        for email in [e for e, n in counts.items() if n > 1]:
            ids = {m["Message-ID"] for [to], m in self.mailbox.messages if to == email}
            self.assertEqual(len(ids), 1, email)
        print(
            f"\nfailover drill: {statuses[201] + statuses[200]} acknowledged "
            f"({len(acknowledged)} robots, {len(orders)} orders), {statuses[503]} × 503, "
            f"0 lost; first 2xx {first_ok - promoted:.2f} s after the promotion; LISTEN on "
            f"the new primary {(listening[0] - promoted_at).total_seconds():.2f} s after; "
            f"robot → mail after it {max(waits) * 1000:.0f} ms; "
            f"{sum(n - 1 for n in counts.values())} doubles"
        )

        # The new primary turns read-only under R4C's open connections (a demoted primary):
        # nothing lands there, and /healthz says the node can record nothing.
        self.standby.sql("ALTER SYSTEM SET default_transaction_read_only = on")
        self.standby.sql("SELECT pg_reload_conf()")
        before = self.standby_rows('SELECT count(*) FROM "robots_robot"')
        refused = [post_robot(port, "R2-A1", self.key)[0] for _ in range(10)]
        self.assertEqual(refused, [503] * 10)
        self.assertEqual(self.standby_rows('SELECT count(*) FROM "robots_robot"'), before)
        status, _, body = call(port, "GET", "/healthz")
        self.assertEqual(status, 503, body)

    def standby_rows(self, query: str) -> list[tuple]:
        with psycopg.connect(
            host=STANDBY, port=self.standby.port, user="postgres", dbname="r4c"
        ) as conn:
            return conn.execute(query).fetchall()
