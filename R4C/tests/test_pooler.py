"""R4C behind PgBouncer in transaction mode, as docs/production.md sets it up: make check's
pooled tier runs these (and the production suite) with DATABASE_URL at the pooler,
DATABASE_POOLED on and the worker's LISTEN on a direct LISTEN_DATABASE_URL.

A pooler in transaction mode gives a client a server connection for one transaction only:
LISTEN, session settings and cursors that outlive a transaction do not survive it.
"""

import subprocess
import sys
import tempfile
import time
import warnings
from unittest import skipUnless

import psycopg
import pytest
from django.conf import settings
from django.db import connection
from django.test import Client, TransactionTestCase

from orders.tests.smtp import smtp_server
from R4C.tests.service import ROOT
from R4C.tests.world import catalog, database_url, environment, place, produce, wait_for

pytestmark = pytest.mark.slow


@skipUnless(settings.DATABASE_POOLED, "make check's pooled tier (behind PgBouncer)")
class PoolerTests(TransactionTestCase):
    def setUp(self):
        catalog()

    def start_worker(self, smtp_port: int, **env: str) -> tuple[subprocess.Popen, object]:
        log = tempfile.TemporaryFile("w+")  # noqa: SIM115 - closed by the cleanup
        self.addCleanup(log.close)
        worker = subprocess.Popen(
            [sys.executable, "manage.py", "send_notices"],
            cwd=ROOT,
            env=environment(
                DATABASE_URL=database_url(),
                EMAIL_HOST="127.0.0.1",
                EMAIL_PORT=str(smtp_port),
                LOG_LEVEL="INFO",
                **env,
            ),
            stderr=log,
            text=True,
        )
        self.addCleanup(worker.wait)
        self.addCleanup(worker.terminate)
        return worker, log

    def test_every_connection_goes_through_pgbouncer(self):
        with connection.cursor() as cursor:
            cursor.execute("SELECT inet_server_port()")
            server_port = cursor.fetchone()[0]
        self.assertNotEqual(server_port, int(connection.settings_dict["PORT"]))  # a pooler's
        self.assertTrue(connection.settings_dict["DISABLE_SERVER_SIDE_CURSORS"])

    def mailed_after_a_robot(self, server) -> float:
        place("R2-D2", "ann@example.com")
        started = time.monotonic()
        produce("R2-D2")
        self.assertTrue(wait_for(lambda: server.recipients() == ["ann@example.com"], 10))
        return time.monotonic() - started

    def test_the_worker_listens_past_the_pooler_and_mails_at_once(self):
        with smtp_server() as server:
            _, log = self.start_worker(server.port)
            self.assertTrue(
                wait_for(lambda: "listening for due notices" in log_of(log), 30), log_of(log)
            )
            waits = [self.mailed_after_a_robot(server)]
        self.assertEqual(Client().get("/healthz").json()["notices"]["wakeup"], "listen")
        self.assertLess(max(waits), 0.5)  # woken, not polled (every second)

    def test_without_a_direct_url_the_worker_polls_every_second_and_healthz_says_so(self):
        with smtp_server() as server:
            _, log = self.start_worker(server.port, LISTEN_DATABASE_URL="")
            self.assertTrue(wait_for(lambda: "sending notices" in log_of(log), 30))
            waited = self.mailed_after_a_robot(server)
        self.assertNotIn("listening for due notices", log_of(log))
        self.assertLess(waited, 2)
        # What a web process behind the pooler without LISTEN_DATABASE_URL says.
        direct = {"default": settings.DATABASES["default"]}
        with warnings.catch_warnings(action="ignore"), self.settings(DATABASES=direct):
            health = Client().get("/healthz").json()  # DATABASES is only read here
        self.assertEqual(health["notices"]["wakeup"], "poll")

    def test_a_transaction_scoped_lock_holds_through_the_pooler(self):
        # Placing locks the version with pg_advisory_xact_lock: held by the server connection
        # for the transaction, whichever client the pooler gives that connection to next.
        direct = psycopg.connect(environment()["LISTEN_DATABASE_URL"], autocommit=True)
        self.addCleanup(direct.close)
        pooled = [psycopg.connect(database_url(), autocommit=False) for _ in range(2)]
        for conn in pooled:
            self.addCleanup(conn.close)
        pooled[0].execute("SELECT pg_advisory_xact_lock(1, 1)")
        held = direct.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
        ).fetchone()[0]
        self.assertEqual(held, 1)
        taken = pooled[1].execute("SELECT pg_try_advisory_xact_lock(1, 1)").fetchone()[0]
        self.assertFalse(taken)  # another client, another server connection: it waits
        pooled[0].commit()
        self.assertTrue(pooled[1].execute("SELECT pg_try_advisory_xact_lock(1, 1)").fetchone()[0])


def log_of(log) -> str:
    log.seek(0)
    return log.read()
