"""How long a Prometheus scrape of /metrics takes with 100,000 orders, next to a bare count.

    .venv/bin/python bench/metrics.py                # SQLite file bench/metrics.sqlite3
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/r4c_bench .venv/bin/python bench/metrics.py

Builds --orders orders (a fifth waiting, the rest sent with one accepted attempt each), then
times, best of --repeat, the collector's queries (what every scrape runs, formatted as
Prometheus text) against a bare `SELECT state, COUNT(*) ... GROUP BY state`.
"""

import argparse
import statistics
import time

from common import setup_django

setup_django("metrics.sqlite3")

from django.core.management import call_command
from django.db import connection, transaction
from django.utils import timezone
from prometheus_client import generate_latest
from world import reset

from customers.models import Customer
from orders.models import Attempt, Order, State
from R4C.metrics import registry
from robots.models import Model, Version


def build(count: int) -> None:
    reset()
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
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    build(args.orders)
    scrape = best(lambda: generate_latest(registry()), args.repeat)
    count = best(bare, args.repeat)
    print(
        f"{connection.vendor}, {args.orders:,} orders: /metrics's collection best "
        f"{scrape[0]:.1f} ms (median {scrape[1]:.1f}), bare GROUP BY best {count[0]:.1f} ms "
        f"(median {count[1]:.1f}); ratio {scrape[0] / count[0]:.1f}"
    )


if __name__ == "__main__":
    main()
