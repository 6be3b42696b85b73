"""`make bench`: the service as `make serve` runs it, under load from wrk, on both databases.

    .venv/bin/python bench/serve.py              # SQLite, then PostgreSQL if it answers
    .venv/bin/python bench/serve.py --seconds 5 --rounds 7

For each database, in one run: `make serve` (nginx in front of gunicorn, and the mail
worker; DEBUG off; API keys required; the order limits on, but high) serves the product and
the references in bench/views.py. wrk (loopback only) runs every row of RUNS in turn,
--rounds times, and each ratio of RATIOS is taken within a round, so that the machine's
noise falls on both of its sides alike. Then GET /download/ with 100,000 robots in the week;
then, with an aiosmtpd server on a loopback port, the floor (a message sent straight with
smtplib), the latency from /add_robot/'s 201 to the server's acceptance of the waiting
customer's notice (the worker idle before each), quiet and while wrk writes robots, and from
an order's answer (a robot in stock) to its notice's acceptance; and a fan-out of 1,000
notices at 1 s a message. Prints two tables: what each row costs, and each figure against its goal.

PostgreSQL: --postgres (default postgres://postgres@127.0.0.1:5432/r4c_bench); the database
is created if missing, and its robots, orders and customers are replaced.
"""

import argparse
import http.client
import json
import os
import random
import re
import shutil
import signal
import smtplib
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CREATED = "2023-10-03 23:59:12"
ROBOT = f'{{"model": "R2", "version": "D2", "created": "{CREATED}"}}'
FORM = "application/x-www-form-urlencoded"
POST_JSON = f"""wrk.method = "POST"
wrk.body = '{ROBOT}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer KEY"
"""
# A robot with an Idempotency-Key of its own each time, as a line that may retry sends it.
# THREADS gives each wrk thread an `id`; wrk() puts a token of its own run in place of RUN.
THREADS = """local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("id", threads)
end
local n = 0
"""
POST_KEYED = f"""{THREADS}
request = function()
  n = n + 1
  local headers = {{["Content-Type"] = "application/json", ["Authorization"] = "Bearer KEY",
                   ["Idempotency-Key"] = "RUN-" .. id .. "-" .. n}}
  return wrk.format("POST", nil, headers, '{ROBOT}')
end
"""
GET_WITH_KEY = 'wrk.headers["Authorization"] = "Bearer KEY"\n'
# Orders. ADDRESS and SERIAL are Lua expressions: a new customer each time, or one of 200
# placing again; one serial for all, or one of 100.
POST_ORDER = (
    THREADS
    + """
request = function()
  n = n + 1
  local body = "email=" .. ADDRESS .. "%40example.com&robot-serial=" .. SERIAL
  return wrk.format("POST", nil, {["Content-Type"] = "application/x-www-form-urlencoded"}, body)
end
"""
)


def order_script(address: str = '"RUN-" .. id .. "-" .. n', serial: str = '"R2-A1"') -> str:
    return POST_ORDER.replace("ADDRESS", address).replace("SERIAL", serial)


NEW, AGAIN = order_script(), order_script(address='"again-" .. id .. "-" .. (n % 200)')
SPREAD = order_script(serial='"S1-" .. string.format("%02d", n % 100)')


def wrk(port: int, path: str, seconds: float, script: str | None, connections: int = 8):
    """(requests/s, p50 ms, p99 ms, non-2xx) of `path` under wrk."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as lua:
        lua.write((script or "").replace("RUN", uuid.uuid4().hex[:12]))
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


# What each round runs, in turn: (row, path, script). The references come first.
RUNS = [
    ("trivial", "/bench/trivial/", "robot"),
    ("insert", "/bench/insert/", "robot"),
    ("add_robot_open", "/bench/add_robot_without_key/", "robot"),
    ("add_robot", "/add_robot/", "robot"),
    ("add_robot_keyed", "/add_robot/", "keyed"),
    ("insert_keyed", "/bench/insert/", "keyed"),
    ("insert_order", "/bench/insert_order/", NEW),
    ("order_new", "/create_order/", NEW),
    ("order_again", "/create_order/", AGAIN),
    ("order_spread", "/create_order/", SPREAD),
]
# The ratios `make bench` checks, each within a round: (what, row, reference, goal).
RATIOS = [
    ("POST /add_robot/ where keys are off ÷ bare insert", "add_robot_open", "insert", "PG 0.9, SQLite 0.95"),
    ("POST /add_robot/ with its API key ÷ bare insert", "add_robot", "insert", "0.85"),
    ("... and an Idempotency-Key ÷ bare insert", "add_robot_keyed", "insert", "SQLite 0.85, PG 0.7"),
    ("... the same, ÷ bare insert sent by the same wrk script", "add_robot_keyed", "insert_keyed", "-"),
    ("POST /create_order/, new customer ÷ bare 2-row insert", "order_new", "insert_order", "0.7"),
    ("POST /create_order/, placing again ÷ bare 2-row insert", "order_again", "insert_order", "0.7"),
    ("orders for one serial ÷ spread over 100", "order_new", "order_spread", "PG 0.9"),
]  # fmt: skip


def measure(database_url: str, seconds: float, rounds: int) -> dict:
    """Run in a process of its own (Django is set up once per process, for one database)."""
    os.environ |= {
        "DATABASE_URL": database_url,
        "SECRET_KEY": "benchmark-only",
        "DEBUG": "false",
        "HTTPS": "false",
        "API_KEYS_REQUIRED": "true",  # as in production: every robot comes with a key
        # The limits are on, as in production, but high: wrk is one client placing
        # thousands of orders, and what is measured is what counting them costs.
        "ORDER_LIMIT_PER_CLIENT": "1000000000",
        "ORDER_LIMIT_PER_EMAIL": "1000000000",
        # The stop links in the notices, and a sender make serve takes (not a placeholder).
        "SITE_URL": "https://localhost",
        "DEFAULT_FROM_EMAIL": "R4C <robots@r4c.ru>",
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
    from customers.models import Customer
    from orders.models import Order
    from orders.tests.smtp import free_port
    from robots.models import ApiKey, Model, Robot, Version

    call_command("migrate", verbosity=0)
    reset()
    _vacuum(connection)
    r2 = Model.objects.create(name="R2")
    Version.objects.create(model=r2, name="D2")
    a1 = Version.objects.create(model=r2, name="A1")
    s1 = Model.objects.create(name="S1")
    Version.objects.bulk_create(Version(model=s1, name=f"{n:02}") for n in range(100))
    _, key = ApiKey.issue("benchmark")
    scripts = {"robot": POST_JSON.replace("KEY", key), "keyed": POST_KEYED.replace("KEY", key)}
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

        def post(path: str, body: str, kind: str = "application/json") -> float:
            conn = http_call("127.0.0.1", port, timeout=30)
            headers = {"Content-Type": kind, "Authorization": f"Bearer {key}"}
            conn.request("POST", path, body, headers)
            response = conn.getresponse()
            response.read()
            conn.close()
            assert response.status in (200, 201), response.status
            return time.perf_counter()

        def notices(model: Model, count: int, order=False, until=None) -> list:
            """ms from each answer to its mail's acceptance, the worker idle before each: a
            robot's 201 with one customer waiting for it (a serial each), or an order's
            answer for a robot in stock; until `until()` is false, at most `count`."""
            versions = [Version.objects.create(model=model, name=f"{n:02}") for n in range(count)]
            for n, version in enumerate(versions):
                address = f"{model.name}-{n}@example.com"
                if order:
                    Robot.objects.create(model=model, version=version, created=timezone.now())
                else:
                    wait_orders(version, [address])
            time.sleep(1)
            latency = []
            for n, version in enumerate(versions):
                if until is not None and not until():
                    break
                address = f"{model.name}-{n}@example.com"
                if order:
                    body = f"email={address.replace('@', '%40')}&robot-serial={version.serial}"
                    answered = post("/create_order/", body, FORM)
                else:
                    robot = {"model": model.name, "version": version.name, "created": CREATED}
                    answered = post("/add_robot/", json.dumps(robot))
                wait_until(lambda address=address: address in clock.accepted, 30)
                latency.append((clock.accepted[address] - answered) * 1000)
                time.sleep(random.uniform(0.05, 0.15))  # idle again, at no fixed phase
            return latency

        wait_until(lambda: _answers(port), 30, step=0.2)
        # Persistent connections must not keep SQLite from checkpointing its WAL: watch it.
        wal = Path(f"{connection.settings_dict['NAME']}-wal")
        wal_peak, sampling = [0], threading.Event()

        def sample():
            while not sampling.wait(0.05):
                wal_peak[0] = max(wal_peak[0], wal.stat().st_size if wal.exists() else 0)

        if connection.vendor == "sqlite":
            threading.Thread(target=sample, daemon=True).start()
        for _, path, script in RUNS:
            wrk(port, path, 1, scripts.get(script, script))  # warm every worker up
        # In turns, --rounds times: the machine's noise falls on every row of a round alike.
        runs = {name: [] for name, _, _ in RUNS}
        for _ in range(rounds):
            for name, path, script in RUNS:
                runs[name].append(wrk(port, path, seconds, scripts.get(script, script)))
        sampling.set()
        row |= {"runs": runs, "wal_peak": wal_peak[0]}

        # The report over a week with 100,000 robots (and no orders left waiting for them,
        # once the server has answered what wrk left in flight).
        time.sleep(2)
        Order.objects.all().delete()
        Customer.objects.all().delete()
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
        get_with_key = GET_WITH_KEY.replace("KEY", key)
        row["download"] = wrk(port, "/download/", seconds, get_with_key, connections=2)

        _vacuum(connection)
        # The floor: a message sent straight to the same server with smtplib.
        floor = []
        for n in range(100):
            started = time.perf_counter()
            with smtplib.SMTP("127.0.0.1", smtp.port) as direct:
                direct.sendmail(
                    "r4c@example.com", [f"floor{n}@example.com"], b"Subject: x\r\n\r\nx"
                )
            floor.append((clock.accepted[f"floor{n}@example.com"] - started) * 1000)
        row["floor"] = _p50_p95(floor)

        # Latency: one robot at a time, one customer waiting for each; then the same while
        # wrk writes robots nobody waits for as fast as it can; then orders in stock.
        row["latency"] = _p50_p95(notices(Model.objects.create(name="B1"), 100))
        load = threading.Thread(target=wrk, args=(port, "/add_robot/", 20, scripts["robot"], 4))
        load.start()
        time.sleep(1)
        loaded = notices(Model.objects.create(name="B2"), 100, until=load.is_alive)
        load.join()
        row["latency_loaded"] = (*_p50_p95(loaded), len(loaded))
        row["latency_order"] = _p50_p95(notices(Model.objects.create(name="B3"), 100, order=True))

        # Fan-out: 1,000 customers wait, one robot arrives, the server takes 1 s a message.
        crowd = [f"crowd{i}@example.com" for i in range(1000)]
        fan = Version.objects.create(model=Model.objects.get(name="B1"), name="FF")
        wait_orders(fan, crowd)
        clock.per_message = 1.0
        answered = post(
            "/add_robot/", '{"model": "B1", "version": "FF", "created": "2023-10-03 23:59:12"}'
        )
        deadline = time.monotonic() + 300
        while len(set(crowd) & clock.accepted.keys()) < len(crowd):
            if time.monotonic() > deadline:  # say how far it got, not only that it failed
                row["fan_out"] = f"{len(set(crowd) & clock.accepted.keys())} of 1,000 in 300 s"
                break
            time.sleep(0.5)
        else:
            row["fan_out"] = max(clock.accepted[e] for e in crowd) - answered
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait()
        smtp.stop()
    return row


def _vacuum(connection) -> None:
    """What autovacuum does in production, now: the rows that earlier phases deleted must
    not weigh on the next (this machine's PostgreSQL may run with autovacuum off)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")


def _p50_p95(samples: list[float]) -> tuple[float, float]:
    samples = sorted(samples)
    return statistics.median(samples), samples[round(0.95 * len(samples)) - 1]


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


LABELS = {
    "trivial": "trivial JSON view (reference)",
    "insert": "bare parse-and-insert of a robot (reference)",
    "add_robot_open": "POST /add_robot/ where keys are off",
    "add_robot": "POST /add_robot/ with its API key",
    "add_robot_keyed": "... and an Idempotency-Key",
    "insert_keyed": "bare insert, sent as wrk sends a robot with a key (reference)",
    "insert_order": "bare parse-and-insert of a customer and an order (reference)",
    "order_new": "POST /create_order/, a new customer, one serial",
    "order_again": "POST /create_order/, one of 200 customers placing again",
    "order_spread": "POST /create_order/, a new customer, 100 serials",
}


def _spread(values: list[float], digits: int = 2) -> str:
    """The median, and the least and the most, of one figure over the rounds."""
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}–{max(values):.{digits}f})"


def table(rows: list[dict], seconds: float, rounds: int) -> str:
    names = [row["database"] for row in rows]
    lines = [
        (
            f"make bench, {time.strftime('%Y-%m-%d %H:%M')}: make serve (nginx, gunicorn, the "
            f"worker), wrk -t2 -c8 -d{seconds:g}s on loopback, {rounds} rounds of every row "
            "in turn; medians, and (min–max) over the rounds."
        ),
        "",
        "| database | what | requests/s | p50 ms | p99 ms | non-2xx |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        for name, label in LABELS.items():
            results = row["runs"][name]
            rate, p50, p99 = (statistics.median(r[i] for r in results) for i in range(3))
            lines.append(
                f"| {row['database']} | {label} | {_spread([r[0] for r in results], 0)} "
                f"| {p50:.1f} | {p99:.1f} | {sum(r[3] for r in results)} |"
            )
        rate, p50, p99, errors = row["download"]
        lines.append(
            f"| {row['database']} | GET /download/, 100,000 robots in the week (wrk -c2) "
            f"| {rate:,.1f} | {p50:.1f} | {p99:.1f} | {errors} |"
        )
    lines += [
        "",
        f"| figure | goal | {' | '.join(names)} |",
        "| --- | --- |" + " --- |" * len(rows),
    ]

    def figure(what: str, goal: str, cell) -> None:
        lines.append(f"| {what} | {goal} | " + " | ".join(cell(row) for row in rows) + " |")

    for what, name, reference, goal in RATIOS:
        figure(what, f"≥ {goal}" if goal != "-" else "-", lambda row, n=name, r=reference: _spread(
            [a[0] / b[0] for a, b in zip(row["runs"][n], row["runs"][r], strict=True)]))  # fmt: skip
    for name in ("add_robot", "order_new"):
        figure(
            f"{LABELS[name]}: p99 ÷ p50, and p99 ms",
            "SQLite ≤ 5, < 150 ms",
            lambda row, n=name: (
                _spread([r[2] / r[1] for r in row["runs"][n]], 1)
                + f", {_spread([r[2] for r in row['runs'][n]], 0)} ms"
            ),
        )
    figure(
        "notice: robot's 201 → mail accepted, p50 / p95 ms (n=100)",
        "p95 ≤ 50 PG, ≤ 150 SQLite",
        lambda row: "{:.0f} / {:.0f}".format(*row["latency"]),
    )
    figure(
        "the same, while wrk -c4 writes robots nobody waits for, p50 / p95 ms (n)",
        "-",
        lambda row: "{:.0f} / {:.0f} ({})".format(*row["latency_loaded"]),
    )
    figure(
        "notice: an order's answer (robot in stock) → mail accepted, p50 / p95 ms (n=100)",
        "PG p95 ≤ 15; SQLite p50 ≤ 25, p95 ≤ 45",
        lambda row: "{:.0f} / {:.0f}".format(*row["latency_order"]),
    )
    figure(
        "floor: a message sent straight with smtplib, p50 / p95 ms; notice p95 ÷ floor p95",
        "-",
        lambda row: "{:.1f} / {:.1f}; {:.0f}x".format(
            *row["floor"], row["latency"][1] / row["floor"][1]
        ),
    )
    figure(
        "fan-out: 1,000 notices at 1 s a message, robot's 201 → last accepted",
        "< 120 s",
        lambda row: (
            f"{row['fan_out']:.1f} s" if isinstance(row["fan_out"], float) else row["fan_out"]
        ),
    )
    figure(
        "SQLite's WAL at its largest under the write load",
        "-",
        lambda row: f"{row['wal_peak'] / 2**20:.1f} MiB" if row["database"] == "sqlite" else "-",
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3, help="of each wrk run")
    parser.add_argument("--rounds", type=int, default=5, help="turns of every row")
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
            raise SystemExit(child.stderr[-5000:])  # after the servers' access logs
        rows.append(json.loads(child.stdout.strip().splitlines()[-1]))
    print(table(rows, args.seconds, args.rounds))


if __name__ == "__main__":
    main()
