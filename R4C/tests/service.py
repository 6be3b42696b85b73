"""`make serve` as a test runs it: a service of its own, driven over HTTP only.

Requests come as the TLS-terminating proxy forwards them (X-Forwarded-Proto: https).
"""

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import urllib.parse
from pathlib import Path

from django.utils import timezone

from orders.tests.smtp import free_port, smtp_server
from R4C.tests.world import IDENTITY, database_url, environment, listen_url, wait_for

ROOT = Path(__file__).resolve().parents[2]
APP_NAME = "r4c-service"  # how the services' database connections are told apart


def call(port: int, method: str, path: str, body=None, headers=None):
    """One request through a new connection, as the proxy forwards it: (status, headers, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body, {"X-Forwarded-Proto": "https", **(headers or {})})
        response = conn.getresponse()
        return response.status, response.headers, response.read()
    finally:
        conn.close()


def post_robot(port: int, serial: str, key: str):
    model, version = serial.split("-")
    now = timezone.localtime().strftime("%Y-%m-%d %H:%M:%S")
    body = json.dumps({"model": model, "version": version, "created": now})
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
    return call(port, "POST", "/add_robot/", body, headers)


def order(port: int, email: str, serial: str):
    body = urllib.parse.urlencode({"email": email, "robot-serial": serial})
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    return call(port, "POST", "/create_order/", body, headers)


class Browser:
    """A manager's browser on the admin: cookies and CSRF as a browser sends them over HTTPS."""

    def __init__(self, port: int):
        self.port = port
        self.cookies = {}

    def request(self, method: str, path: str, form: dict | None = None, headers=None):
        headers = (headers or {}) | {
            "Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items()),
            "Origin": f"https://127.0.0.1:{self.port}",
            "Referer": f"https://127.0.0.1:{self.port}{path}",
        }
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        status, response_headers, content = call(self.port, method, path, body, headers)
        for cookie in response_headers.get_all("Set-Cookie") or []:
            name, value = cookie.split(";", 1)[0].split("=", 1)
            self.cookies[name] = value
        return status, response_headers, content

    def submit(self, path: str, form: dict, headers=None):
        """GET the page for its CSRF token, then POST the form to it."""
        _, _, page = self.request("GET", path, headers=headers)
        token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1).decode()
        return self.request("POST", path, form | {"csrfmiddlewaretoken": token}, headers)


class Service:
    """`make serve` on a port of its own, in a process group of its own."""

    def __init__(self, smtp_port: int, log_dir: str, **settings: str):
        self.port = free_port()
        self.log = open(Path(log_dir) / f"serve-{self.port}.log", "w+")  # noqa: SIM115
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST"))}
        self.process = subprocess.Popen(
            ["make", "--no-print-directory", "serve"],
            cwd=ROOT,
            env=env
            | IDENTITY
            | {
                "LISTEN_DATABASE_URL": listen_url(),
                "PORT": str(self.port),
                "DATABASE_URL": database_url(),
                "SECRET_KEY": "end-to-end-only-" + "k" * 40,
                "HTTPS": "true",
                "PROXY_SSL_HEADER": "true",
                "API_KEYS_REQUIRED": "true",
                # Production's limits, but room for the test's 30 customers on one address.
                "ORDER_LIMIT_PER_CLIENT": "1000",
                "ORDER_LIMIT_PER_EMAIL": "5",
                "EMAIL_HOST": "127.0.0.1",
                "EMAIL_PORT": str(smtp_port),
                "NOTICE_CONNECTIONS": "4",
                "LOG_LEVEL": "WARNING",
                "PGAPPNAME": APP_NAME,
                **settings,
            },
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def worker_pids(self) -> list[int]:
        """The mail worker's process in this service (not the script that keeps it running)."""
        pids = []
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                argv = cmdline.read_bytes().split(b"\0")
                pid = int(cmdline.parent.name)
                mine = os.getpgid(pid) == self.process.pid
            except (OSError, ValueError):
                continue  # gone meanwhile
            if mine and b"send_notices" in argv and b"keep-running" not in argv[1]:
                pids.append(pid)
        return pids

    def ready(self) -> bool:
        try:
            return call(self.port, "GET", "/healthz")[0] == 200
        except OSError:
            return False

    def stop(self) -> None:
        """SIGTERM to make alone, as a supervisor sends it: everything it started must end."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                pass
        self.left_running = wait_for(lambda: not self._group_alive(), 30) is False
        if self.left_running:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.log.close()

    def _group_alive(self) -> bool:
        try:
            os.killpg(self.process.pid, 0)
        except ProcessLookupError:
            return False
        return True

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read()


def manage(url: str, *args: str) -> str:
    """`manage.py ARGS` on the database at `url`, as an operator runs it: what it printed."""
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=environment(DATABASE_URL=url),
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def serve_on(test, url: str, **settings: str) -> tuple[Service, object]:
    """`make serve` on the database at `url`, mailing through a server of its own, with the
    demo catalog and an API key (`service.key`): stopped when `test` ends. (service, mailbox)"""
    smtp = smtp_server()
    mailbox = smtp.__enter__()
    test.addCleanup(smtp.__exit__, None, None, None)
    logs = tempfile.TemporaryDirectory()
    test.addCleanup(logs.cleanup)
    service = Service(mailbox.port, logs.name, DATABASE_URL=url, LOG_LEVEL="INFO", **settings)
    test.addCleanup(service.stop)
    test.assertTrue(wait_for(service.ready, 90), service.output())
    manage(url, "load_demo_catalog")
    service.key = manage(url, "create_api_key", "line")
    return service, mailbox


def schemathesis(url: str, *options: str) -> subprocess.CompletedProcess:
    """`st run` with the project's schemathesis.toml, deterministic, as make check runs it."""
    return subprocess.run(
        [Path(sys.executable).parent / "st", "run", f"{url}/openapi.json", "--no-color"]
        + ["--generation-deterministic", "--request-timeout", "30", *options],
        check=False,
        cwd=ROOT,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=600,
    )
