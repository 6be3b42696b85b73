"""How fast a customer hears that their robot is in stock, and how fast a crowd does.

    .venv/bin/python bench/notices.py                # SQLite file bench/notify.sqlite3
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/r4c_bench .venv/bin/python bench/notices.py

Measures, in one run, against an aiosmtpd server on a loopback port and the worker started as
`make run` starts it (`manage.py send_notices`, a process of its own):
- POST /add_robot/ with --orders waiting orders against nobody waiting (best of --repeat);
- latency: from /add_robot/'s 201 to the server's acceptance of the waiting customer's
  notice, and from /create_order/'s answer (robot in stock) to its acceptance (--rounds each);
- fan-out: --crowd customers wait for one serial, the server takes --per-message seconds
  for each message; the time from the robot's 201 to the last acceptance.
A PostgreSQL database named in DATABASE_URL must exist; its robots and orders are replaced.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from common import ROOT, setup_django

setup_django("notify.sqlite3")

from aiosmtpd.controller import Controller
from django.core.management import call_command
from django.db import connection
from django.test import Client
from world import Clock, reset, wait_orders, wait_until

from orders.models import Order, State
from orders.tests.smtp import free_port
from R4C.tests.world import database_url
from robots.models import Model, Version


def add_robot(client: Client, model: str, version: str) -> float:
    body = {"model": model, "version": version, "created": "2023-10-03 23:59:12"}
    response = client.post("/add_robot/", json.dumps(body), content_type="application/json")
    assert response.status_code == 201, response.content
    return time.perf_counter()


def table(name: str, samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    p95 = ms[max(0, round(0.95 * len(ms)) - 1)]
    return (
        f"{name}: n={len(ms)} p50 {statistics.median(ms):.0f} ms, p95 {p95:.0f} ms, "
        f"max {ms[-1]:.0f} ms (goal: p95 under 500 ms)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--crowd", type=int, default=1_000)
    parser.add_argument("--per-message", type=float, default=1.0)
    args = parser.parse_args()

    call_command("migrate", verbosity=0)
    reset()
    client = Client()
    print(f"database: {connection.vendor}")

    # /add_robot/ with and without waiting orders.
    r2 = Model.objects.create(name="R2")
    d2 = Version.objects.create(model=r2, name="D2")
    Version.objects.create(model=r2, name="A1")
    wait_orders(d2, [f"customer{i}@example.com" for i in range(args.orders)])
    add_robot(client, "R2", "A1")  # warm up
    idle, waiting = [], []
    for _ in range(args.repeat):
        started = time.perf_counter()
        idle.append(add_robot(client, "R2", "A1") - started)
        started = time.perf_counter()
        waiting.append(add_robot(client, "R2", "D2") - started)
    print(
        f"POST /add_robot/, best of {args.repeat}: nobody waiting {min(idle) * 1000:.2f} ms, "
        f"{args.orders} orders waiting {min(waiting) * 1000:.2f} ms, "
        f"ratio {min(waiting) / min(idle):.2f} (goal: at most 1.2)"
    )
    reset()

    clock = Clock()
    port = free_port()
    server = Controller(clock, hostname="127.0.0.1", port=port)
    server.start()
    env = os.environ | {
        "DATABASE_URL": database_url(),
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(port),
        "DEBUG": "false",
        "LOG_LEVEL": "WARNING",
    }
    worker = subprocess.Popen([sys.executable, "manage.py", "send_notices"], cwd=ROOT, env=env)
    try:
        time.sleep(2)  # the worker is up and idle
        model = Model.objects.create(name="B1")
        versions = [
            Version.objects.create(model=model, name=f"{n:02}") for n in range(args.rounds)
        ]
        for n, version in enumerate(versions):
            wait_orders(version, [f"robot{n}@example.com"])

        # From the robot's 201 to the waiting customer's mail.
        latency = []
        for n, version in enumerate(versions):
            answered = add_robot(client, "B1", version.name)
            wait_until(lambda n=n: f"robot{n}@example.com" in clock.accepted, 30)
            latency.append(clock.accepted[f"robot{n}@example.com"] - answered)
            time.sleep(0.1)  # the worker is idle again
        print(table("robot's 201 -> mail accepted", latency))

        # From an order's answer (robot in stock) to its mail.
        latency = []
        for n in range(args.rounds):
            email = f"order{n}@example.com"
            response = client.post("/create_order/", {"email": email, "robot-serial": "B1-00"})
            answered = time.perf_counter()
            assert response.json()["in_stock"], response.content
            wait_until(lambda email=email: email in clock.accepted, 30)
            latency.append(clock.accepted[email] - answered)
            time.sleep(0.1)
        print(table("order's answer (in stock) -> mail accepted", latency))

        # Fan-out: a crowd waits, one robot arrives, the server takes its time per message.
        crowd = [f"crowd{i}@example.com" for i in range(args.crowd)]
        fan = Version.objects.create(model=model, name="FF")
        wait_orders(fan, crowd)
        clock.per_message = args.per_message
        answered = add_robot(client, "B1", "FF")
        # Checked seldom: this process also runs the SMTP server's event loop.
        wait_until(lambda: all(email in clock.accepted for email in crowd), 3600, step=0.5)
        last = max(clock.accepted[email] for email in crowd) - answered
        sent = Order.objects.filter(version=fan, state=State.SENT).count()
        print(
            f"fan-out: {sent} of {args.crowd} notices, {args.per_message:g} s per message: "
            f"last accepted {last:.1f} s after the robot's 201 "
            f"({args.crowd * args.per_message / last:.1f}x one connection; goal: under 120 s)"
        )
    finally:
        worker.terminate()
        worker.wait()
        server.stop()


if __name__ == "__main__":
    main()
