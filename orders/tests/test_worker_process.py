"""The worker as operators run it: its own process, stopped by a signal or killed outright."""

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from django.db import connection
from django.test import TransactionTestCase
from django.utils import timezone

from customers.models import Customer
from orders.models import Notice, Order
from orders.tests.smtp import smtp_server
from orders.tests.test_send_notifications import drain
from robots.models import Model, Robot, Version

ROOT = Path(__file__).resolve().parents[2]


def database_url() -> str:
    """The test database, for a worker in another process."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    password = f":{db['PASSWORD']}" if db["PASSWORD"] else ""
    return f"postgres://{db['USER']}{password}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def eventually(condition, seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


class WorkerProcessTests(TransactionTestCase):
    def setUp(self):
        version = Version.objects.create(model=Model.objects.create(name="R2"), name="D2")
        Order.objects.create(
            customer=Customer.objects.create(email="ann@example.com"), robot_serial="R2-D2"
        )
        Robot.objects.create(model=version.model, version=version, created=datetime.now(UTC))

    def start_worker(self, smtp_port: int) -> subprocess.Popen:
        env = os.environ | {
            "DATABASE_URL": database_url(),
            "DEBUG": "false",
            "EMAIL_HOST": "127.0.0.1",
            "EMAIL_PORT": str(smtp_port),
        }
        worker = subprocess.Popen(
            [sys.executable, "manage.py", "send_notifications", "--idle", "0.1"],
            cwd=ROOT,
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.addCleanup(worker.kill)
        return worker

    def test_a_worker_killed_mid_send_leaves_its_notice_to_the_next_after_the_lease(self):
        with smtp_server() as server:
            server.delay = 3
            worker = self.start_worker(server.port)
            self.assertTrue(eventually(lambda: server.connections == 1))
            worker.kill()
            worker.wait()

            notice = Notice.objects.get()
            self.assertEqual(notice.state, "sending")
            self.assertEqual(server.recipients(), [])
            server.delay = 0
            drain()
            self.assertEqual(server.recipients(), [])  # the lease still holds

            Notice.objects.update(claimed_until=timezone.now() - timedelta(seconds=1))
            drain()

        self.assertEqual(server.recipients(), ["ann@example.com"])
        self.assertTrue(Order.objects.get().is_notified)

    def test_sigterm_lets_the_worker_finish_its_batch_and_exit(self):
        with smtp_server() as server:
            server.delay = 1
            worker = self.start_worker(server.port)
            self.assertTrue(eventually(lambda: server.connections == 1))
            worker.send_signal(signal.SIGTERM)
            _, stderr = worker.communicate(timeout=30)

        self.assertEqual(worker.returncode, 0, stderr)
        self.assertIn("notification worker stopped", stderr)
        self.assertEqual(server.recipients(), ["ann@example.com"])
        self.assertEqual(Notice.objects.get().state, "sent")
