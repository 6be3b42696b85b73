"""Errors that are not the request's fault still answer in the API's shape."""

import io
import json
import logging
import sqlite3
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path
from unittest import skipUnless

from django.db import connection, transaction
from django.test import Client, TestCase, TransactionTestCase, override_settings
from django.urls import get_resolver
from django.utils import timezone

from orders.models import Heartbeat, Order
from orders.tests.smtp import smtp_server
from R4C.logs import Redact
from R4C.tests.problem import ProblemAssertions
from R4C.tests.world import catalog, database_down, drain, json_log, place, produce
from robots.models import Robot

ROBOT = '{"model": "R2", "version": "D2", "created": "2023-10-03 23:59:12"}'


class HealthTests(TestCase):
    def test_it_says_the_database_answers_and_what_the_worker_has_to_do(self):
        catalog()
        place("R2-D2", "ann@example.com", "bob@example.com")
        produce("R2-D2")

        response = self.client.get("/healthz")

        self.assertEqual(response.status_code, 200)
        self.assertEqual(
            response.json(),
            {
                "status": "ok",
                "database": "ok",
                "notices": {
                    "due": 0,
                    "oldest_due_seconds": 0,
                    "unsent": 0,
                    "oldest_unsent_seconds": 0,
                    "arrivals": 1,
                    "worker_seen_seconds": None,  # no worker ever ran
                    # How a worker hears of due mail: LISTEN, or polling (SQLite, a pooler).
                    "wakeup": "listen" if connection.vendor == "postgresql" else "poll",
                },
            },
        )
        self.assertNotIn("SECRET", response.content.decode().upper())

    def notices(self) -> dict:
        response = self.client.get("/healthz")
        self.assertEqual(response.status_code, 200)  # stuck mail is no reason to leave
        return response.json()["notices"]

    def test_a_notice_waiting_to_retry_counts_as_unsent_until_the_server_takes_it(self):
        catalog()
        produce("R2-D2")
        place("R2-D2", "ann@example.com")
        with smtp_server() as server:
            server.temporary_failures = 1
            drain()
            first = self.notices()
            time.sleep(0.3)
            later = self.notices()
            self.assertEqual((first["due"], first["unsent"]), (0, 1))  # due later, unsent now
            self.assertGreater(later["oldest_unsent_seconds"], first["oldest_unsent_seconds"])

            Order.objects.update(next_attempt_at=timezone.now())
            drain()

        self.assertEqual(server.recipients(), ["ann@example.com"])
        self.assertEqual(
            (self.notices()["unsent"], self.notices()["oldest_unsent_seconds"]), (0, 0)
        )

    def test_it_says_how_long_ago_a_worker_was_seen(self):
        Heartbeat.objects.create(name="host:1", seen_at=timezone.now() - timedelta(seconds=42))
        self.assertAlmostEqual(self.notices()["worker_seen_seconds"], 42, delta=2)


class DatabaseDownTests(ProblemAssertions, TransactionTestCase):
    def assert_nothing_written(self):
        pass  # nothing can be: the database does not answer

    def test_health_is_503_when_the_database_does_not_answer(self):
        with database_down():
            response = self.client.get("/healthz")
        self.assert_problem(response, 503)
        self.assertEqual(response["Retry-After"], "5")

    def test_the_api_answers_503_problem_when_the_database_does_not_answer(self):
        catalog()
        with database_down():
            responses = [
                self.client.post("/add_robot/", ROBOT, content_type="application/json"),
                self.client.post(
                    "/create_order/", {"email": "ann@example.com", "robot-serial": "R2-D2"}
                ),
                self.client.get("/download/"),
            ]
        for response in responses:
            self.assert_problem(response, 503)
            self.assertEqual(response["Retry-After"], "5")
        # And it recovers by itself once the database is back.
        response = self.client.post("/add_robot/", ROBOT, content_type="application/json")
        self.assertEqual(response.status_code, 201)


@skipUnless(connection.vendor == "sqlite", "SQLite's write lock")
class LockedDatabaseTests(ProblemAssertions, TransactionTestCase):
    def assert_nothing_written(self):
        self.assertEqual(Robot.objects.count(), 0)

    def test_a_database_locked_for_too_long_is_a_503_and_nothing_is_written(self):
        catalog()
        other = sqlite3.connect(connection.settings_dict["NAME"], isolation_level=None)
        self.addCleanup(other.close)
        connection.ensure_connection()
        connection.connection.execute("PRAGMA busy_timeout = 200")  # not 20 s, for the test
        self.addCleanup(connection.close)

        other.execute("BEGIN IMMEDIATE")  # another writer holds the lock, and holds it
        response = self.client.post("/add_robot/", ROBOT, content_type="application/json")
        other.execute("ROLLBACK")

        self.assert_problem(response, 503)
        self.assertEqual(response["Retry-After"], "5")


@skipUnless(connection.vendor == "sqlite", "R4C's SQLite backend")
class WritersTakeTurnsTests(TransactionTestCase):
    def test_the_writers_of_one_process_take_turns_without_sqlite_s_busy_wait(self):
        # SQLite's own wait cut to 1 ms: a thread that met another's lock in SQLite itself,
        # rather than in the backend's queue, would fail with "database is locked".
        catalog()
        errors = []

        def writer() -> None:
            try:
                connection.ensure_connection()
                connection.connection.execute("PRAGMA busy_timeout = 1")
                for _ in range(10):
                    with transaction.atomic():
                        Robot.objects.produce("R2", "D2", timezone.now())
                        time.sleep(0.005)  # holding the write lock a while
            except Exception as error:  # noqa: BLE001 (the test reports what any thread met)
                errors.append(error)
            finally:
                connection.close()

        threads = [threading.Thread(target=writer) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.assertEqual(errors, [])
        self.assertEqual(Robot.objects.count(), 80)


@skipUnless(connection.vendor == "postgresql", "a read-only server (a standby) is PostgreSQL's")
class ReadOnlyDatabaseTests(ProblemAssertions, TransactionTestCase):
    """A server that turns read-only under R4C's open connections, as a primary demoted by a
    failover does: nothing is written there, and the request goes to a writable one."""

    def setUp(self):
        catalog()
        self.client.get("/healthz")  # the connection the requests below find open

    def assert_nothing_written(self):
        pass  # read once the server is writable again, below

    def turn_read_only(self):
        with connection.cursor() as cursor:
            cursor.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")

    def test_a_write_that_meets_a_read_only_server_is_tried_once_more_on_a_new_connection(self):
        self.turn_read_only()
        response = self.client.post("/add_robot/", ROBOT, content_type="application/json")
        self.assertEqual(response.status_code, 201)
        self.assertEqual(Robot.objects.count(), 1)

    def test_a_database_that_stays_read_only_is_a_503_and_nothing_is_written(self):
        name = connection.settings_dict["NAME"]
        with connection.cursor() as cursor:  # new connections find it read-only too
            cursor.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
        self.turn_read_only()
        try:
            robot = self.client.post("/add_robot/", ROBOT, content_type="application/json")
            order = self.client.post(
                "/create_order/", {"email": "ann@example.com", "robot-serial": "R2-D2"}
            )
            health = self.client.get("/healthz")
        finally:
            connection.close()
            with connection.cursor() as cursor:
                cursor.execute("SET default_transaction_read_only = off")
                cursor.execute(f'ALTER DATABASE "{name}" RESET default_transaction_read_only')
            connection.close()
        for response in (robot, order, health):
            self.assert_problem(response, 503)
            self.assertEqual(response["Retry-After"], "5")
        self.assertIn("read-only", health.json()["detail"])
        self.assertEqual((Robot.objects.count(), Order.objects.count()), (0, 0))


@skipUnless(connection.vendor == "sqlite", "a size-capped database is SQLite's")
class FullDiskTests(ProblemAssertions, TransactionTestCase):
    def setUp(self):
        catalog()
        produce("R2-D2")
        with connection.cursor() as cursor:
            # The database may not grow by a single page: what a full disk does to a write.
            pages = cursor.execute("PRAGMA page_count").fetchone()[0]
            cursor.execute(f"PRAGMA max_page_count = {pages}")
        self.addCleanup(connection.close)

    def assert_nothing_written(self):
        self.assertEqual(Robot.objects.count(), self.robots)
        self.assertEqual(Order.objects.count(), 0)

    def fill(self):
        # Fill what room the last pages have, so that the next write needs a new one.
        while True:
            response = self.client.post("/add_robot/", ROBOT, content_type="application/json")
            if response.status_code != 201:
                return response

    def test_writes_get_503_and_reads_are_still_served(self):
        self.assertEqual(self.fill().status_code, 503)
        self.robots = Robot.objects.count()

        response = self.client.post("/add_robot/", ROBOT, content_type="application/json")
        self.assert_problem(response, 503)  # and nothing half written
        self.assertEqual(response["Retry-After"], "5")

        with (
            tempfile.TemporaryDirectory() as folder,
            override_settings(PRODUCTION_LIST_DIR=folder),
        ):
            self.assertEqual(self.client.get("/download/").status_code, 200)
            self.assertEqual(self.client.get("/healthz").status_code, 200)


class ApiShapeTests(ProblemAssertions, TestCase):
    def setUp(self):
        catalog()

    def assert_nothing_written(self):
        self.assertEqual(Robot.objects.count(), 0)

    def test_the_api_paths_work_without_their_final_slash(self):
        response = self.client.post("/add_robot", ROBOT, content_type="application/json")
        self.assertEqual(response.status_code, 201)
        response = self.client.post(
            "/create_order", {"email": "ann@example.com", "robot-serial": "R2-D2"}
        )
        self.assertEqual(response.status_code, 201)
        self.assertEqual(self.client.get("/download").status_code, 200)

    def test_read_only_endpoints_answer_other_methods_with_405_not_a_csrf_page(self):
        client = Client(enforce_csrf_checks=True)
        for path in ["/download/", "/healthz", "/metrics", "/openapi.json"]:
            for method in ["post", "put", "delete"]:
                with self.subTest(path=path, method=method):
                    response = getattr(client, method)(path)
                    self.assert_problem(response, 405)
                    self.assertEqual(response["Allow"], "GET, HEAD")

    def test_an_unknown_path_is_a_404_problem(self):
        self.assert_problem(self.client.get("/no_such_thing/"), 404)

    def test_what_nobody_foresaw_is_a_500_problem(self):
        handler = get_resolver().resolve_error_handler(500)
        response = handler(None)
        self.assertEqual(response.status_code, 500)
        self.assertEqual(response["Content-Type"], "application/problem+json")

    def test_the_report_is_served_when_its_folder_cannot_be_written(self):
        with (
            tempfile.NamedTemporaryFile() as blocker,
            override_settings(PRODUCTION_LIST_DIR=Path(blocker.name) / "production_list"),
            self.assertLogs("robots.utils", "ERROR"),
        ):
            response = self.client.get("/download/")
        self.assertEqual(response.status_code, 200)
        self.assertTrue(response.content.startswith(b"PK"))


class RequestIdTests(TestCase):
    def test_every_answer_carries_a_request_id_and_keeps_a_sane_one_from_the_proxy(self):
        made = self.client.get("/healthz")["X-Request-ID"]
        self.assertRegex(made, r"^[0-9a-f]{32}$")
        self.assertEqual(
            self.client.get("/healthz", HTTP_X_REQUEST_ID="lb-42")["X-Request-ID"], "lb-42"
        )
        for insane in ["x" * 65, "tab\tinside", "ünïcode"]:
            with self.subTest(insane=insane):
                answer = self.client.get("/healthz", HTTP_X_REQUEST_ID=insane)
                self.assertRegex(answer["X-Request-ID"], r"^[0-9a-f]{32}$")

    def test_django_s_log_line_about_a_request_names_its_id_as_json(self):
        stream = json_log(self, "django.request")

        answer = self.client.get("/nowhere", HTTP_X_REQUEST_ID="lb-43")

        self.assertEqual(answer.status_code, 404)
        [line] = [json.loads(text) for text in stream.getvalue().splitlines()]
        self.assertEqual((line["logger"], line["request_id"]), ("django.request", "lb-43"))


class RedactionTests(TestCase):
    def test_no_log_line_keeps_an_address_a_stop_secret_or_an_admin_search(self):
        stream = io.StringIO()
        handler = logging.StreamHandler(stream)
        handler.addFilter(Redact())
        logger = logging.getLogger("R4C.tests.redaction")
        logger.addHandler(handler)
        self.addCleanup(logger.removeHandler, handler)
        logger.warning("order 7: failed: 550 5.1.1 <Ann.Lee+x@Example.com>: no such user")
        logger.warning("Not Found: %s", "/stop/Zx9_secret-1/")
        access = logging.LogRecord(
            "gunicorn.access", logging.INFO, "", 0, '"%(r)s" %(s)s', None, None
        )
        access.args = {
            "r": "GET /admin/customers/customer/?q=ann%40example.com&o=1 HTTP/1.1",
            "s": "200",
        }
        handler.handle(access)

        written = stream.getvalue()
        for secret in ["Ann.Lee", "Example.com", "Zx9_secret", "ann%40example"]:
            self.assertNotIn(secret, written)
        self.assertIn("550 5.1.1 <<address>>", written)
        self.assertIn("/stop/…/", written)
        self.assertIn("?q=…&o=1", written)
