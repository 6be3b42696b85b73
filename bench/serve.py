"""`make bench`: the service as `make serve` runs it, under load from wrk, on both databases.

    .venv/bin/python bench/serve.py              # SQLite, then PostgreSQL if it answers
    .venv/bin/python bench/serve.py --seconds 20

For each database, in one run: `make serve` (nginx in front of gunicorn, and the mail
worker; DEBUG off) serves the product and two references from bench/views.py; wrk (loopback only, bounded by --seconds)
measures requests/s, p50 and p99 of
- a trivial JSON view, a bare parse-and-insert view, and POST /add_robot/ without and with
  an Idempotency-Key (a new one each request);
- POST /create_order/ (a new customer each time) and GET /download/ with 100,000 robots in
  the week;
then, with the mail worker running and an aiosmtpd server on a loopback port, the latency
from /add_robot/'s 201 to the server's acceptance of the waiting customer's notice, and the
delivery rate of 2,000 notices. Prints one table.

PostgreSQL: --postgres (default postgres://postgres@127.0.0.1:5432/r4c_bench); the database
is created if missing, and its robots, orders and customers are replaced.
"""

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ROBOT = '{"model": "R2", "version": "D2", "created": "2023-10-03 23:59:12"}'
POST_JSON = f"""wrk.method = "POST"
wrk.body = '{ROBOT}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer KEY"
"""
# A robot with an Idempotency-Key of its own each time, as a line that may retry sends it.
POST_KEYED = f"""local n = 0
local prefix = tostring(math.random(1, 1000000000))
request = function()
  n = n + 1
  local headers = {{["Content-Type"] = "application/json", ["Authorization"] = "Bearer KEY",
                   ["Idempotency-Key"] = prefix .. "-" .. n}}
  return wrk.format("POST", nil, headers, '{ROBOT}')
end
"""
GET_WITH_KEY = 'wrk.headers["Authorization"] = "Bearer KEY"\n'
# A new customer for every order: counters per wrk thread, told apart by a random prefix.
POST_ORDER = """local n = 0
local prefix = tostring(math.random(1, 1000000000))
request = function()
  n = n + 1
  local body = "email=c" .. prefix .. "x" .. n .. "%40example.com&robot-serial=R2-A1"
  return wrk.format("POST", nil, {["Content-Type"] = "application/x-www-form-urlencoded"}, body)
end
"""


def wrk(port: int, path: str, seconds: float, script: str | None, connections: int = 8):
    """(requests/s, p50 ms, p99 ms, non-2xx) of `path` under wrk."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as lua:
        lua.write(script or "")
        lua.flush()
        out = subprocess.run(
            ["wrk", "-t2", f"-c{connections}", f"-d{seconds:g}s", "--latency", "-s", lua.name,
             f"http://127.0.0.1:{port}{path}"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)

    def percentile(p: str) -> float:
        value, unit = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out).groups()
        return float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]

    return rate, percentile("50"), percentile("99"), int(errors.group(1)) if errors else 0


def measure(database_url: str, seconds: float, rounds: int) -> dict:
    """Run in a process of its own (Django is set up once per process, for one database)."""
    os.environ |= {
        "DATABASE_URL": database_url,
        "SECRET_KEY": "benchmark-only",
        "DEBUG": "false",
        "HTTPS": "false",
        "API_KEYS_REQUIRED": "true",  # as in production: every robot comes with a key
        # Throughput, not the limits: wrk is one client placing thousands of orders.
        "ORDER_LIMIT_PER_CLIENT": "0",
        "ORDER_LIMIT_PER_EMAIL": "0",
        "SITE_URL": "https://r4c.example.com",  # the stop links in the notices
        "LOG_LEVEL": "WARNING",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DJANGO_SETTINGS_MODULE": "bench.settings",
    }
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from aiosmtpd.controller import Controller
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    from bench.world import Clock, reset, wait_orders, wait_until
    from orders.tests.smtp import free_port
    from robots.models import ApiKey, Model, Robot, Version

    call_command("migrate", verbosity=0)
    reset()
    r2 = Model.objects.create(name="R2")
    Version.objects.create(model=r2, name="D2")
    a1 = Version.objects.create(model=r2, name="A1")
    _, key = ApiKey.issue("benchmark")
    post_json, post_keyed, get_with_key = (
        lua.replace("KEY", key) for lua in (POST_JSON, POST_KEYED, GET_WITH_KEY)
    )
    clock = Clock()
    smtp = Controller(clock, hostname="127.0.0.1", port=free_port())
    smtp.start()
    port = free_port()
    env = os.environ | {"EMAIL_HOST": "127.0.0.1", "EMAIL_PORT": str(smtp.port)}
    # As it runs in production: nginx in front, gunicorn, the mail worker (make serve).
    server = subprocess.Popen(
        ["make", "--no-print-directory", "serve"],
        cwd=ROOT, env=env | {"PORT": str(port)}, start_new_session=True,
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    row = {"database": connection.vendor}
    try:
        http_call = http.client.HTTPConnection

        def post(path: str, body: str) -> float:
            conn = http_call("127.0.0.1", port, timeout=30)
            headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
            conn.request("POST", path, body, headers)
            response = conn.getresponse()
            response.read()
            conn.close()
            assert response.status == 201, response.status
            return time.perf_counter()

        wait_until(lambda: _answers(port), 30, step=0.2)
        # Persistent connections must not keep SQLite from checkpointing its WAL: watch it.
        wal = Path(f"{connection.settings_dict['NAME']}-wal")
        wal_peak, sampling = [0], threading.Event()

        def sample():
            while not sampling.wait(0.05):
                wal_peak[0] = max(wal_peak[0], wal.stat().st_size if wal.exists() else 0)

        if connection.vendor == "sqlite":
            threading.Thread(target=sample, daemon=True).start()
        for path in ["/bench/trivial/", "/bench/insert/", "/add_robot/"]:
            wrk(port, path, 1, post_json)  # warm every worker up
        # In turns, --rounds times, the median of each: the machine's noise falls on all three.
        runs = {"trivial": [], "insert": [], "add_robot": [], "add_robot_key": []}
        for _ in range(rounds):
            for name, path, script in [
                ("trivial", "/bench/trivial/", post_json),
                ("insert", "/bench/insert/", post_json),
                ("add_robot", "/add_robot/", post_json),
                ("add_robot_key", "/add_robot/", post_keyed),
            ]:
                runs[name].append(wrk(port, path, seconds, script))
        for name, results in runs.items():
            row[name] = sorted(results)[len(results) // 2]
        row["create_order"] = wrk(port, "/create_order/", seconds, POST_ORDER)
        sampling.set()
        row["wal_peak"] = wal_peak[0]

        # The report over a week with 100,000 robots.
        Robot.objects.all().delete()
        now = timezone.now()
        Robot.objects.bulk_create(
            (
                Robot(model=r2, version=a1, serial="R2-A1", created=now - timedelta(
                    seconds=i % 600_000))
                for i in range(100_000)
            ),
            batch_size=5000,
        )  # fmt: skip
        row["download"] = wrk(port, "/download/", seconds, get_with_key, connections=2)

        # Latency: one waiting customer per serial, one robot at a time.
        b1 = Model.objects.create(name="B1")
        versions = [Version.objects.create(model=b1, name=f"{n:02}") for n in range(50)]
        for n, version in enumerate(versions):
            wait_orders(version, [f"robot{n}@example.com"])
        time.sleep(1)
        latency = []
        for n, version in enumerate(versions):
            body = json.dumps(
                {"model": "B1", "version": version.name, "created": "2023-10-03 23:59:12"}
            )
            answered = post("/add_robot/", body)
            wait_until(lambda n=n: f"robot{n}@example.com" in clock.accepted, 30)
            latency.append((clock.accepted[f"robot{n}@example.com"] - answered) * 1000)
            time.sleep(0.05)
        latency.sort()
        row["latency"] = (statistics.median(latency), latency[round(0.95 * len(latency)) - 1])

        # Delivery: 2,000 customers wait, one robot arrives.
        crowd = [f"crowd{i}@example.com" for i in range(2000)]
        fan = Version.objects.create(model=b1, name="FF")
        wait_orders(fan, crowd)
        answered = post(
            "/add_robot/", '{"model": "B1", "version": "FF", "created": "2023-10-03 23:59:12"}'
        )
        wait_until(lambda: all(e in clock.accepted for e in crowd), 600, step=0.2)
        row["delivery"] = len(crowd) / (max(clock.accepted[e] for e in crowd) - answered)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait()
        smtp.stop()
    return row


def _answers(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        conn.request("GET", "/healthz")
        return conn.getresponse().status == 200
    except OSError:
        return False


def postgres_ready(url: str) -> bool:
    import psycopg

    name = url.rsplit("/", 1)[1]
    try:
        with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as admin:
            if not admin.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", [name]
            ).fetchone():
                admin.execute(f'CREATE DATABASE "{name}"')
        return True
    except psycopg.OperationalError:
        return False


def table(rows: list[dict], seconds: float, rounds: int) -> str:
    title = (
        f"make bench: gunicorn gthread 2 x 8, wrk -t2 -c8 -d{seconds:g}s on loopback "
        f"(-c2 for /download/), the three first rows of each database the median of "
        f"{rounds} runs in turn, {time.strftime('%Y-%m-%d %H:%M')}"
    )
    lines = [
        title,
        "",
        "| database | what | requests/s | p50 ms | p99 ms | non-2xx |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    names = {
        "trivial": "trivial JSON view (reference)",
        "insert": "bare parse-and-insert (reference)",
        "add_robot": "POST /add_robot/",
        "add_robot_key": "POST /add_robot/ with an Idempotency-Key",
        "create_order": "POST /create_order/",
        "download": "GET /download/, 100,000 robots in the week",
    }
    for row in rows:
        for key, label in names.items():
            rate, p50, p99, errors = row[key]
            lines.append(
                f"| {row['database']} | {label} | {rate:,.0f} | {p50:.1f} | {p99:.1f} | {errors} |"
            )
    lines += [
        "",
        "| database | /add_robot/ ÷ bare insert | with a key ÷ bare insert | ÷ trivial "
        + "| notice latency p50 / p95 | delivery | WAL peak under the write load |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        wal = f"{row['wal_peak'] / 2**20:.1f} MiB" if row["database"] == "sqlite" else "-"
        lines.append(
            f"| {row['database']} | {row['add_robot'][0] / row['insert'][0]:.2f} "
            f"| {row['add_robot_key'][0] / row['insert'][0]:.2f} "
            f"| {row['add_robot'][0] / row['trivial'][0]:.2f} "
            f"| {row['latency'][0]:.0f} / {row['latency'][1]:.0f} ms "
            f"| {row['delivery']:,.0f} mails/s | {wal} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5, help="of each wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="turns of the three views")
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432/r4c_bench")
    parser.add_argument("--database", help=argparse.SUPPRESS)  # one database, in a child
    args = parser.parse_args()
    if args.database:
        print(json.dumps(measure(args.database, args.seconds, args.rounds)))
        return
    if not shutil.which("wrk"):
        raise SystemExit("wrk is missing: `make bench` installs it (apt-get install wrk).")
    urls = [f"sqlite:///{ROOT / 'bench' / 'serve.sqlite3'}"]
    if postgres_ready(args.postgres):
        urls.append(args.postgres)
    else:
        print(f"PostgreSQL at {args.postgres} does not answer: SQLite only.", file=sys.stderr)
    rows = []
    for url in urls:
        child = subprocess.run(
            [sys.executable, __file__, "--database", url, "--seconds", str(args.seconds),
             "--rounds", str(args.rounds)],
            capture_output=True, text=True, cwd=ROOT, check=False,
        )  # fmt: skip
        if child.returncode:
            raise SystemExit(child.stderr)
        rows.append(json.loads(child.stdout.strip().splitlines()[-1]))
    print(table(rows, args.seconds, args.rounds))


if __name__ == "__main__":
    main()
