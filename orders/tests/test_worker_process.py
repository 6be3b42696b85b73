"""The worker as operators run it: its own process, killed, stopped, cut off from its database.

Each test starts `manage.py send_notices` as a process of its own against the test database
and a real SMTP server, and makes the fault happen for real.
"""

import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from unittest import skipUnless

import psycopg
from django.db import connection
from django.test import TransactionTestCase
from django.utils import timezone

from orders.models import Order
from orders.tests.smtp import smtp_server
from R4C.tests.world import catalog, database_url, drain, place, produce, wait_for

ROOT = Path(__file__).resolve().parents[2]


class WorkerProcessTests(TransactionTestCase):
    def setUp(self):
        catalog()

    def start_worker(self, smtp_port: int, **env) -> subprocess.Popen:
        env = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "NOTICE_CONNECTIONS"}} | {
            "DATABASE_URL": database_url(),
            "EMAIL_HOST": "127.0.0.1",
            "EMAIL_PORT": str(smtp_port),
            "EMAIL_TIMEOUT": "2",
            "NOTICE_CONNECTIONS": "1",
            "PGAPPNAME": "r4c-worker",  # so that a test can find its database connections
            **env,
        }
        worker = subprocess.Popen(
            [sys.executable, "manage.py", "send_notices"],
            cwd=ROOT,
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
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
            in_flight = Order.objects.filter(notice="sending").count()
            self.assertGreater(in_flight, 0)  # the killed worker's claim is still there

            # The lease lapses; the next worker takes over.
            Order.objects.filter(notice="sending").update(claimed_until=timezone.now())
            drain()

        counts = Counter(server.recipients())
        self.assertEqual(set(counts), set(emails))  # nobody is left out
        twice = [email for email, n in counts.items() if n > 1]
        self.assertLessEqual(len(twice), 1)  # one connection: at most its message in flight
        self.assertFalse(Order.objects.exclude(notice="sent").exists())

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
            self.assertTrue(
                wait_for(lambda: not Order.objects.exclude(notice="sent").exists(), 30)
            )
            worker.send_signal(signal.SIGTERM)
            _, stderr = worker.communicate(timeout=30)

        self.assertTrue(finished)
        counts = Counter(server.recipients())
        self.assertEqual(set(counts), set(emails))
        # The worker carried on by itself; at most the messages in flight went twice.
        self.assertLessEqual(sum(n - 1 for n in counts.values()), 2)
        self.assertIn("database connection lost", stderr)

    def test_a_server_slow_at_every_step_with_two_workers_mails_each_customer_once(self):
        emails = [f"customer{i}@example.com" for i in range(3)]
        place("R2-D2", *emails)
        produce("R2-D2")

        with smtp_server() as server:
            # Each reply within EMAIL_TIMEOUT (2 s), a message 3 x 1.5 s: longer than a lease
            # that was renewed only between messages would allow without the 5 x rule.
            server.step_delay = 1.5
            env = {"NOTICE_LEASE_SECONDS": "10", "EMAIL_TIMEOUT": "2"}
            workers = [self.start_worker(server.port, **env) for _ in range(2)]
            self.assertTrue(wait_for(lambda: len(server.messages) >= 3, seconds=60))
            self.assertFalse(wait_for(lambda: len(server.messages) > 3, seconds=3))
            for worker in workers:
                worker.send_signal(signal.SIGTERM)
                worker.communicate(timeout=30)

        self.assertEqual(server.recipients(), sorted(emails))

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
            dict(Order.objects.values_list("customer__email", "notice")),
            {"ann@example.com": "sent", "bob@example.com": "due"},
        )

    def test_a_lease_shorter_than_five_smtp_timeouts_stops_start_up(self):
        worker = self.start_worker(1, NOTICE_LEASE_SECONDS="10", EMAIL_TIMEOUT="3")
        _, stderr = worker.communicate(timeout=30)
        self.assertNotEqual(worker.returncode, 0)
        last_line = stderr.strip().splitlines()[-1]
        self.assertIn("NOTICE_LEASE_SECONDS", last_line)
        self.assertIn("EMAIL_TIMEOUT", last_line)
