"""Whether the health reads stay flat as orders grow: /healthz and /metrics at each size.

    .venv/bin/python bench/metrics.py                # SQLite file bench/metrics.sqlite3
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/r4c_bench .venv/bin/python bench/metrics.py

For each of --sizes, builds that many orders (a fifth waiting, the rest sent with one accepted
attempt each; the tally folded, as the worker does every few seconds, and PostgreSQL
vacuumed, as autovacuum does within a minute), then times, best of --repeat, GET /healthz
and a scrape of /metrics (the collectors' queries, formatted as Prometheus text), next to a
bare `SELECT state, COUNT(*) ... GROUP BY state`, which grows with the table. Goal: each
read at the largest size within 1.5x its time at the smallest.
"""

import argparse
import statistics
import time

from common import setup_django

setup_django("metrics.sqlite3")

from django.core.management import call_command
from django.db import connection, transaction
from django.test import Client
from django.utils import timezone
from prometheus_client import generate_latest
from world import reset

from customers.models import Customer
from orders.models import Attempt, Order, State, Tally
from R4C.metrics import registry
from robots.models import Model, Version


def build(count: int) -> None:
    reset()
    vacuum(full=True)
    model = Model.objects.create(name="R2")
    version = Version.objects.create(model=model, name="D2")
    now = timezone.now()
    with transaction.atomic():
        customers = Customer.objects.bulk_create(
            Customer(email=f"c{i}@example.com", email_key=f"c{i}@example.com")
            for i in range(count)
        )
        orders = Order.objects.bulk_create(
            Order(
                customer=customer,
                version=version,
                robot_serial="R2-D2",
                state=State.WAITING if i % 5 == 0 else State.SENT,
                due_at=now,
                notified_at=None if i % 5 == 0 else now,
            )
            for i, customer in enumerate(customers)
        )
        Attempt.objects.bulk_create(
            Attempt(order=order, at=now, outcome="sent", code=250, seconds=0.01, waited=i % 7)
            for i, order in enumerate(orders)
            if order.state == State.SENT
        )


def vacuum(full: bool = False) -> None:
    """What autovacuum does within a minute in production (this machine's PostgreSQL may run
    with it off): the rows the fold deleted are gone. `full`: the tables hold only what the
    next size puts in, as if they had never held the last size's orders."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"VACUUM {'FULL ' if full else ''}ANALYZE")


def best(work, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times) * 1000, statistics.median(times) * 1000


def bare() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT state, COUNT(*) FROM orders_order GROUP BY state")
        cursor.fetchall()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,1000000")
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    client = Client()

    def healthz() -> None:
        assert client.get("/healthz").status_code == 200

    rows = []
    for size in map(int, args.sizes.split(",")):
        build(size)
        Tally.fold()
        vacuum()
        rows.append(
            (
                size,
                best(healthz, args.repeat),
                best(lambda: generate_latest(registry()), args.repeat),
                best(bare, args.repeat),
            )
        )
    print(f"{connection.vendor}: best (median) ms, {args.repeat} times each")
    print(f"{'orders':>10} {'/healthz':>16} {'/metrics':>16} {'bare GROUP BY':>16}")
    for size, *reads in rows:
        print(f"{size:>10,}" + "".join(f"{b:>8.2f} ({m:>5.2f})" for b, m in reads))
    (small, *first), (large, *last) = rows[0], rows[-1]
    for name, a, b in zip(("/healthz", "/metrics", "bare GROUP BY"), first, last, strict=True):
        goal = "" if name.startswith("bare") else " (goal: at most 1.5)"
        print(f"{name} at {large:,} ÷ at {small:,}: {b[0] / a[0]:.2f}{goal}")


if __name__ == "__main__":
    main()
