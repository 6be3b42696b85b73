"""manage.py backup and restore: a consistent copy while R4C serves, restored elsewhere."""

import io
import sqlite3
import subprocess
import sys
import tempfile
import threading
from contextlib import closing
from pathlib import Path

import psycopg
import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client, TransactionTestCase

from orders.models import Order
from orders.tests.smtp import smtp_server
from R4C.tests.world import catalog, database_url, environment, place, produce
from robots.models import Robot

pytestmark = pytest.mark.slow  # processes and a second database
ROOT = Path(__file__).resolve().parents[2]
ROBOT = '{"model": "13", "version": "XS", "created": "2023-10-03 23:59:12"}'


class BackupTests(TransactionTestCase):
    def setUp(self):
        catalog()
        produce("R2-A1")
        place("R2-D2", "ann@example.com")  # waits for a robot
        place("R2-A1", "bob@example.com")  # in stock: due, not sent yet
        self.folder = Path(tempfile.mkdtemp())
        self.addCleanup(subprocess.run, ["rm", "-rf", str(self.folder)], check=True)

    def new_database(self) -> str:
        """The URL of a new, empty database, dropped after the test."""
        if connection.vendor == "sqlite":
            return f"sqlite:///{self.folder / 'restored.sqlite3'}"
        url = database_url().rsplit("/", 1)[0]
        name = f"{connection.settings_dict['NAME']}_restored"
        with psycopg.connect(f"{url}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
            admin.execute(f'CREATE DATABASE "{name}"')
        self.addCleanup(self.drop, url, name)
        return f"{url}/{name}"

    @staticmethod
    def drop(url: str, name: str) -> None:
        with psycopg.connect(f"{url}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def manage(self, url: str, *args: str, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, capture_output=True, text=True,
            env=environment(DATABASE_URL=url, **env), check=False,
        )  # fmt: skip

    def rows(self, url: str, sql: str) -> list[tuple]:
        if url.startswith("sqlite"):
            with closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as db:
                return db.execute(sql).fetchall()
        with psycopg.connect(url) as db:
            return db.execute(sql).fetchall()

    def tables(self, url: str) -> int:
        if url.startswith("sqlite"):
            return self.rows(url, "SELECT COUNT(*) FROM sqlite_master")[0][0]
        return self.rows(url, "SELECT COUNT(*) FROM pg_tables WHERE schemaname = 'public'")[0][0]

    def test_a_backup_under_write_load_restores_whole_and_its_pending_mail_goes(self):
        before = Robot.objects.count()
        writing, wrote = threading.Event(), []

        def produce_robots():
            client = Client()
            try:
                while not writing.is_set():
                    wrote.append(client.post("/add_robot/", ROBOT, "application/json").status_code)
            finally:
                connection.close()

        load = threading.Thread(target=produce_robots)
        load.start()
        try:
            path = self.folder / "r4c.backup"
            call_command("backup", str(path), stdout=io.StringIO())
        finally:
            writing.set()
            load.join()
        self.assertTrue(wrote and set(wrote) == {201})

        restored = self.new_database()
        done = self.manage(restored, "restore", str(path))
        self.assertEqual(done.returncode, 0, done.stderr)

        robots = self.rows(restored, "SELECT COUNT(*) FROM robots_robot")[0][0]
        self.assertTrue(before <= robots <= Robot.objects.count())
        orders = "SELECT robot_serial, state FROM orders_order ORDER BY robot_serial"
        self.assertEqual(self.rows(restored, orders), [("R2-A1", "due"), ("R2-D2", "waiting")])
        self.assertEqual(len(Order.objects.all()), 2)

        with smtp_server() as server:
            sent = self.manage(
                restored, "send_notices", "--once",
                EMAIL_HOST="127.0.0.1", EMAIL_PORT=str(server.port),
            )  # fmt: skip
        self.assertEqual(sent.returncode, 0, sent.stderr)
        self.assertEqual(server.recipients(), ["bob@example.com"])

    def test_a_backup_of_another_schema_version_is_refused_naming_both(self):
        path = self.folder / "r4c.backup"
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT id, app, name, applied FROM django_migrations "
                "WHERE app = 'orders' ORDER BY name DESC LIMIT 1"
            )
            newest = cursor.fetchone()
            cursor.execute("DELETE FROM django_migrations WHERE id = %s", [newest[0]])
        try:
            call_command("backup", str(path), stdout=io.StringIO())
        finally:
            with connection.cursor() as cursor:
                cursor.execute(
                    "INSERT INTO django_migrations (id, app, name, applied) "
                    "VALUES (%s, %s, %s, %s)",
                    newest,
                )

        restored = self.new_database()
        refused = self.manage(restored, "restore", str(path))

        self.assertNotEqual(refused.returncode, 0)
        last = refused.stderr.strip().splitlines()[-1]
        self.assertIn(f"{newest[2]} here", last)  # what this R4C has
        self.assertRegex(last, r"orders: 00\d\d_\w+ in it")  # what the backup has
        self.assertNotIn("robots", last)  # only the app that differs
        self.assert_as_it_was(restored)

    def assert_as_it_was(self, url: str) -> None:
        """A refused restore wrote nothing: no file where there was none, an empty database."""
        if url.startswith("sqlite"):
            self.assertFalse(Path(url.removeprefix("sqlite:///")).exists())
        else:
            self.assertEqual(self.tables(url), 0)

    def test_a_backup_is_private_to_its_owner_from_its_first_byte(self):
        path = self.folder / "r4c.backup"
        call_command("backup", str(path), stdout=io.StringIO())
        self.assertEqual(path.stat().st_mode & 0o777, 0o600)

    def test_a_cut_damaged_or_foreign_backup_is_refused_whole_and_the_good_one_restores(self):
        good = self.folder / "r4c.backup"
        call_command("backup", str(good), stdout=io.StringIO())
        data = good.read_bytes()
        bad = {}
        for share in (0.97, 0.999):  # cut short, as a full disk or a broken copy leaves it
            bad[f"cut at {share:.1%}"] = data[: int(len(data) * share)]
        if connection.vendor == "sqlite":  # the page that holds the orders, overwritten
            with closing(sqlite3.connect(good)) as db:
                [(root,)] = db.execute(
                    "SELECT rootpage FROM sqlite_master WHERE name = ?", ["orders_order"]
                )
                size = db.execute("PRAGMA page_size").fetchone()[0]
            damaged = bytearray(data)
            start = (root - 1) * size + 8
            damaged[start : start + 600] = bytes(range(256)) * 2 + bytes(88)
            bad["with damaged pages"] = bytes(damaged)
        # A trigger of someone else's, in an otherwise good backup.
        with connection.cursor() as cursor:
            if connection.vendor == "sqlite":
                cursor.execute(
                    "CREATE TRIGGER smuggled AFTER INSERT ON robots_robot "
                    "BEGIN DELETE FROM orders_order; END"
                )
            else:
                cursor.execute(
                    "CREATE FUNCTION smuggled() RETURNS trigger LANGUAGE plpgsql AS "
                    "$$ BEGIN DELETE FROM orders_order; RETURN NEW; END $$"
                )
                cursor.execute(
                    "CREATE TRIGGER smuggled AFTER INSERT ON robots_robot "
                    "FOR EACH ROW EXECUTE FUNCTION smuggled()"
                )
        foreign = self.folder / "foreign.backup"
        try:
            call_command("backup", str(foreign), stdout=io.StringIO())
        finally:
            with connection.cursor() as cursor:
                cursor.execute(
                    "DROP TRIGGER smuggled"
                    + (" ON robots_robot" if connection.vendor == "postgresql" else "")
                )
                if connection.vendor == "postgresql":
                    cursor.execute("DROP FUNCTION smuggled()")
        bad["with a trigger R4C never made"] = foreign.read_bytes()

        restored = self.new_database()
        for case, content in bad.items():
            with self.subTest(case=case):
                path = self.folder / "bad.backup"
                path.write_bytes(content)
                refused = self.manage(restored, "restore", str(path))
                self.assertNotEqual(refused.returncode, 0, refused.stdout)
                self.assertNotIn("Traceback", refused.stderr)
                self.assertIn("CommandError", refused.stderr.strip().splitlines()[-1])
                self.assert_as_it_was(restored)
        self.assertIn("smuggled", refused.stderr)

        done = self.manage(restored, "restore", str(good))  # the good one, into the same
        self.assertEqual(done.returncode, 0, done.stderr)
        orders = "SELECT robot_serial, state FROM orders_order ORDER BY robot_serial"
        self.assertEqual(self.rows(restored, orders), [("R2-A1", "due"), ("R2-D2", "waiting")])
        check = self.manage(restored, "check", "--database", "default")
        self.assertEqual(check.returncode, 0, check.stderr)

    def test_it_refuses_to_overwrite_a_file_or_restore_into_a_database_in_use(self):
        path = self.folder / "r4c.backup"
        path.write_text("keep me")
        with self.assertRaisesRegex(CommandError, "exists already"):
            call_command("backup", str(path))
        self.assertEqual(path.read_text(), "keep me")

        done = self.manage(database_url(), "restore", str(path))
        self.assertNotEqual(done.returncode, 0)
        self.assertIn("not empty", done.stderr)

        restored = self.new_database()  # empty, but the file is no backup
        done = self.manage(restored, "restore", str(path))
        self.assertNotEqual(done.returncode, 0)
        self.assertIn("CommandError", done.stderr.strip().splitlines()[-1])
        self.assert_as_it_was(restored)

    @pytest.mark.skipif("connection.vendor != 'postgresql'")
    def test_a_role_that_may_not_make_the_scratch_database_is_told_so_in_one_line(self):
        call_command("backup", str(path := self.folder / "r4c.backup"), stdout=io.StringIO())
        role = "r4c_no_createdb"
        with psycopg.connect(database_url(), autocommit=True) as admin:
            admin.execute(f"CREATE ROLE {role} LOGIN")
        self.addCleanup(self.drop_role, role)  # after its database is dropped
        url = self.new_database()
        name = url.rsplit("/", 1)[1]
        with psycopg.connect(database_url(), autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{name}" OWNER TO {role}')
        done = self.manage(url.replace("://postgres@", f"://{role}@"), "restore", str(path))
        self.assertEqual(done.returncode, 1, done.stderr)
        [line] = done.stderr.strip().splitlines()
        self.assertIn(f"ALTER ROLE {role} CREATEDB", line)
        self.assert_as_it_was(url)

    def drop_role(self, role: str) -> None:
        with psycopg.connect(database_url(), autocommit=True) as admin:
            admin.execute(f"DROP ROLE {role}")
