"""10,000 orders wait for one serial; one robot of it is produced.

    .venv/bin/python bench/notifications.py                # SQLite file bench/notify.sqlite3
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/r4c_bench .venv/bin/python bench/notifications.py

Measures, in one run:
- POST /add_robot/ (Django test client) for a serial with --orders waiting orders against the
  same request for a serial nobody waits for, taken in turn, best of --repeat each;
- the worker's delivery of all the notices to an aiosmtpd server (its Sink handler, in its
  own process on a loopback port): the time to turn the arrival into notices, and mails/s.
A PostgreSQL database named in DATABASE_URL must exist; its robots and orders are replaced.
"""

import argparse
import json
import subprocess
import sys
import time

from common import setup_django

setup_django("notify.sqlite3")

from django.conf import settings
from django.core.management import call_command
from django.db import transaction
from django.test import Client

from customers.models import Customer
from orders.models import Arrival, Notice, Order
from orders.notifications import claim_due, deliver, expand_arrivals
from orders.tests.smtp import free_port
from robots.models import Model, Robot, Version


def reset(orders: int) -> None:
    Notice.objects.all().delete()
    Arrival.objects.all().delete()
    Order.objects.all().delete()
    Customer.objects.all().delete()
    Robot.objects.all().delete()
    if not Model.objects.filter(name="R2").exists():
        r2 = Model.objects.create(name="R2")
        Version.objects.create(model=r2, name="D2")
        Version.objects.create(model=r2, name="A1")
    with transaction.atomic():
        customers = Customer.objects.bulk_create(
            Customer(email=f"customer{i}@example.com") for i in range(orders)
        )
        Order.objects.bulk_create(Order(customer=c, robot_serial="R2-D2") for c in customers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()

    call_command("migrate", verbosity=0)
    reset(args.orders)
    client = Client()

    def add_robot(version: str):
        body = {"model": "R2", "version": version, "created": "2023-10-03 23:59:12"}
        started = time.perf_counter()
        response = client.post("/add_robot/", json.dumps(body), content_type="application/json")
        elapsed = time.perf_counter() - started
        assert response.status_code == 201, response.content
        return elapsed

    add_robot("A1")  # warm up
    idle, waiting = [], []
    for _ in range(args.repeat):
        idle.append(add_robot("A1"))
        waiting.append(add_robot("D2"))
    print(f"database: {settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]}")
    print(
        f"POST /add_robot/, best of {args.repeat}: nobody waiting {min(idle) * 1000:.2f} ms, "
        f"{args.orders} orders waiting {min(waiting) * 1000:.2f} ms, "
        f"ratio {min(waiting) / min(idle):.2f} (goal: at most 1.2)"
    )

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{port}", "-c",
         "aiosmtpd.handlers.Sink"],
    )  # fmt: skip
    try:
        time.sleep(1.5)
        settings.MAILERS = {
            "default": {
                "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
                "OPTIONS": {"host": "127.0.0.1", "port": port, "timeout": 10},
            }
        }
        started = time.perf_counter()
        while expand_arrivals():
            pass
        expanded = time.perf_counter()
        while notices := claim_due():
            deliver(notices)
        finished = time.perf_counter()
    finally:
        server.terminate()
        server.wait()
    sent = Notice.objects.filter(state=Notice.State.SENT).count()
    notified = Order.objects.filter(is_notified=True).count()
    print(
        f"worker: {sent} notices sent, {notified} orders notified; arrival -> notices "
        f"{expanded - started:.2f} s; delivery {finished - expanded:.2f} s = "
        f"{sent / (finished - expanded):.0f} mails/s"
    )


if __name__ == "__main__":
    main()
