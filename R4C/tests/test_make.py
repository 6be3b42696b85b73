"""`make run` and `make serve` start cleanly or say in one line why not, and stop cleanly."""

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg
import pytest
from django.test import SimpleTestCase

from orders.tests.smtp import free_port
from R4C.tests.world import IDENTITY, environment, wait_for

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def start(target: str, **env: str) -> tuple[subprocess.Popen, int, Path]:
    """`make TARGET` on a port and a database of its own, in a process group of its own."""
    port = free_port()
    folder = Path(tempfile.mkdtemp())
    log = folder / "make.log"
    process = subprocess.Popen(
        ["make", "--no-print-directory", target],
        cwd=ROOT,
        env=environment(
            **{
                "PORT": str(port),
                "DATABASE_URL": f"sqlite:///{folder / 'db.sqlite3'}",
                "SECRET_KEY": "make-test-" + "k" * 40,
            }
            | IDENTITY
            | env
        ),
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
        # A hangup is heard, also when the suite itself runs under nohup (its processes would
        # inherit SIGHUP ignored, and a shell cannot trap a signal ignored from its start).
        preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_DFL),  # noqa: PLW1509
    )
    return process, port, log


def answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"GET /healthz HTTP/1.0\r\nX-Forwarded-Proto: https\r\n\r\n")
            return sock.recv(20).startswith(b"HTTP/1.")
    except OSError:
        return False


def group_alive(process: subprocess.Popen) -> bool:
    process.poll()  # make itself, once it ended, is reaped: a zombie still counts as alive
    try:
        os.killpg(process.pid, 0)
    except ProcessLookupError:
        return False
    return True


class MakeTests(SimpleTestCase):
    def finish(self, process: subprocess.Popen) -> None:
        if group_alive(process):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def test_a_bad_or_missing_setting_stops_start_up_in_one_line_before_migrations(self):
        for target, env, named in [
            ("run", {"EMAIL_PORT": "abc"}, "EMAIL_PORT"),
            ("serve", {"SECRET_KEY": ""}, "SECRET_KEY"),
            ("serve", {"TRUSTED_PROXIES": "1"}, "TRUSTED_PROXIES"),
            ("serve", {"DATABASE_URL": "postgres://r4c@db1:1,db2:2/r4c"}, "DATABASE_URL"),
            ("run", {"LISTEN_DATABASE_URL": "postgres://r4c@db/r4c?x=1"}, "LISTEN_DATABASE_URL"),
        ]:
            with self.subTest(target=target, named=named):
                process, _, log = start(target, **env)
                self.addCleanup(self.finish, process)
                self.assertNotEqual(process.wait(60), 0)
                output = log.read_text()
                said = [line for line in output.splitlines() if named in line]
                self.assertEqual(len(said), 1, output)
                self.assertIn("R4C cannot start", said[0])
                self.assertNotIn("Traceback", output)
                self.assertNotIn("Applying", output)  # no migration ran

    def test_a_database_that_cannot_be_reached_stops_start_up_in_one_line_naming_it(self):
        for url, reason in [
            ("postgres://postgres@127.0.0.1:5432/r4c_never_made", "does not exist"),
            (f"postgres://postgres@127.0.0.1:{free_port()}/r4c", "refused"),
        ]:
            for target in ("make serve", "manage.py restore"):
                with self.subTest(target=target, reason=reason):
                    if target == "make serve":
                        process, _, log = start("serve", DATABASE_URL=url)
                        self.addCleanup(self.finish, process)
                        self.assertNotEqual(process.wait(60), 0)
                        output = log.read_text()
                    else:
                        run = subprocess.run(
                            [sys.executable, "manage.py", "restore", __file__],
                            cwd=ROOT, env=environment(DATABASE_URL=url), capture_output=True,
                            text=True, check=False,
                        )  # fmt: skip
                        self.assertNotEqual(run.returncode, 0)
                        output = run.stderr
                    said = [line for line in output.splitlines() if "cannot be reached" in line]
                    self.assertEqual(len(said), 1, output)
                    self.assertIn(reason, said[0])
                    self.assertIn("r4c", said[0])
                    self.assertNotIn("Traceback", output)
                    self.assertNotIn("Applying", output)

    def test_make_run_says_first_what_it_uses_and_what_came_from_dot_env(self):
        dotenv = ROOT / ".env"
        if dotenv.exists():
            self.skipTest("a .env of the developer's own is in the way")
        admin = psycopg.connect("postgres://postgres@127.0.0.1:5432/postgres", autocommit=True)
        self.addCleanup(admin.close)
        admin.execute("DROP DATABASE IF EXISTS r4c_make_run")
        admin.execute("CREATE DATABASE r4c_make_run")
        self.addCleanup(admin.execute, "DROP DATABASE r4c_make_run WITH (FORCE)")
        dotenv.write_text(
            "DATABASE_URL=postgres://postgres@127.0.0.1:5432/r4c_make_run\n"
            "EMAIL_HOST=127.0.0.1\nEMAIL_PORT=2525\n"
        )
        self.addCleanup(dotenv.unlink)
        unset = ("DATABASE_URL", "EMAIL_HOST", "EMAIL_PORT", "SITE_URL")
        env = {k: v for k, v in environment().items() if k not in unset}
        log, port = Path(tempfile.mkdtemp()) / "make.log", free_port()
        process = subprocess.Popen(
            ["make", "--no-print-directory", "run"],
            cwd=ROOT,
            env=env | {"PORT": str(port)},
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.addCleanup(self.finish, process)
        self.assertTrue(wait_for(lambda: "Links in the mail" in log.read_text(), 60))
        self.assertEqual(
            log.read_text().splitlines()[:3],
            [
                "Database: PostgreSQL 'r4c_make_run' at 127.0.0.1:5432 (from .env)",
                "Mail: SMTP 127.0.0.1:2525 (from .env)",
                f"Links in the mail: http://127.0.0.1:{port}",
            ],
        )

    def test_sigterm_to_make_or_a_hangup_stops_everything_and_frees_the_port(self):
        for target in ("run", "serve"):
            for sig in (signal.SIGTERM, signal.SIGHUP):
                with self.subTest(target=target, signal=sig.name):
                    process, port, log = start(target)
                    self.addCleanup(self.finish, process)
                    self.assertTrue(wait_for(lambda port=port: answers(port), 90), log.read_text())
                    if sig == signal.SIGTERM:  # to make alone, as a supervisor sends it
                        process.send_signal(sig)
                    else:  # to everything in the terminal's session, as a hangup is sent
                        os.killpg(process.pid, sig)
                    self.assertTrue(wait_for(lambda p=process: not group_alive(p), 30))
                    self.assertFalse(answers(port))
                    output = log.read_text()
                    self.assertNotRegex(output, r"Error 1[0-9]{2}", output)

    def test_a_worker_that_dies_at_once_is_started_again_ever_later_and_the_site_stays_up(self):
        # Loaded by every Python of the service at start-up: the worker exits with status 3.
        folder = Path(tempfile.mkdtemp())
        (folder / "sitecustomize.py").write_text(
            "import os, sys\nif 'send_notices' in sys.argv:\n    os._exit(3)\n"
        )
        restarts = re.compile(r"notice worker exited with status 3; .* in (\d+) s")
        for target in ("run", "serve"):
            with self.subTest(target=target):
                process, port, log = start(target, PYTHONPATH=str(folder))
                self.addCleanup(self.finish, process)
                self.assertTrue(wait_for(lambda port=port: answers(port), 90), log.read_text())
                self.assertTrue(
                    wait_for(lambda log=log: len(restarts.findall(log.read_text())) >= 4, 30)
                )
                self.assertTrue(answers(port))
                pauses = [int(p) for p in restarts.findall(log.read_text())]
                self.assertEqual(pauses[:4], [1, 2, 4, 8])  # growing, up to 60 s
                process.send_signal(signal.SIGTERM)  # heard during a pause too
                self.assertTrue(wait_for(lambda p=process: not group_alive(p), 30))
                self.assertNotRegex(log.read_text(), r"Error 1[0-9]{2}")

    def test_ctrl_c_stops_make_serve_with_no_error(self):
        process, port, log = start("serve")
        self.addCleanup(self.finish, process)
        self.assertTrue(wait_for(lambda: answers(port), 90), log.read_text())
        os.killpg(process.pid, signal.SIGINT)  # what a terminal's Ctrl-C sends
        self.assertTrue(wait_for(lambda: not group_alive(process), 30))
        self.assertNotRegex(log.read_text(), r"Error 1[0-9]{2}|Interrupt")
