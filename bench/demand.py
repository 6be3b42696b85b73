"""The demand page's query with 100,000 waiting orders, next to the bare count it extends.

    .venv/bin/python bench/demand.py                      # SQLite file bench/demand.sqlite3
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/r4c_bench .venv/bin/python bench/demand.py

Fills the database with --waiting waiting orders (default 100,000) and a fifth as many sent
in the last 10 days, over 100 serials, the most awaited far ahead of the rest; then times, in
turns, the bare SQL that counts waiting orders by serial and orders.models.demand() (who
waits, since when, notified this week, in stock), each the best of --repeat runs, and prints
the database's plan for demand(). Its orders, customers and catalog are replaced.
"""

import argparse
import random
import time
from datetime import timedelta

from common import setup_django

setup_django("demand.sqlite3")

from django.core.management import call_command
from django.db import connection, transaction
from django.utils import timezone

from bench.world import reset
from customers.models import Customer
from orders.models import Order, demand
from robots.models import Model, Robot, Version

BARE_QUERY = (
    "SELECT robot_serial, COUNT(*) FROM orders_order WHERE state = 'waiting' "
    "GROUP BY robot_serial ORDER BY 2 DESC"
)


def fill(waiting: int) -> None:
    reset()
    versions = []
    for m in range(10):
        model = Model.objects.create(name=f"M{m}")
        versions += [Version.objects.create(model=model, name=f"V{v}") for v in range(10)]
    for version in versions[::3]:
        Robot.objects.produce(version.model.name, version.name, timezone.now())
    rng, now = random.Random(waiting), timezone.now()
    weights = [1 / (rank + 1) for rank in range(len(versions))]  # a few serials lead
    sent = waiting // 5
    batch = 20_000
    for start in range(0, waiting + sent, batch):
        size = min(batch, waiting + sent - start)
        with transaction.atomic():
            customers = Customer.objects.bulk_create(
                Customer(email=f"c{start + i}@example.com", email_key=f"c{start + i}@example.com")
                for i in range(size)
            )
            orders = []
            for i, customer in enumerate(customers):
                version = rng.choices(versions, weights)[0]
                placed = now - timedelta(seconds=rng.uniform(0, 90 * 86400))
                order = Order(customer=customer, version=version, robot_serial=version.serial)
                order.placed_at = placed
                if start + i >= waiting:
                    order.state = "sent"
                    order.notified_at = now - timedelta(seconds=rng.uniform(0, 10 * 86400))
                orders.append(order)
            Order.objects.bulk_create(orders)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def best(run, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times) * 1000


def bare() -> None:
    with connection.cursor() as cursor:
        cursor.execute(BARE_QUERY)
        cursor.fetchall()


def plan() -> str:
    """The database's plan for demand(): its SQL, as Django's log of the last query has it."""
    with connection.execute_wrapper(_capture):
        demand()
    explain = "EXPLAIN" if connection.vendor == "postgresql" else "EXPLAIN QUERY PLAN"
    with connection.cursor() as cursor:
        cursor.execute(f"{explain} {_captured[0]}", _captured[1])
        return "\n".join("    " + " ".join(str(c) for c in row) for row in cursor.fetchall())


_captured = []


def _capture(execute, sql, params, many, context):
    _captured[:] = [sql, params]
    return execute(sql, params, many, context)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--waiting", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    fill(args.waiting)
    rows = demand()
    assert sum(row["waiting"] for row in rows) == args.waiting
    runs = {"bare": [], "demand": []}
    for _ in range(3):  # in turns: the machine's noise falls on both
        runs["bare"].append(best(bare, args.repeat))
        runs["demand"].append(best(demand, args.repeat))
    bare_ms, demand_ms = min(runs["bare"]), min(runs["demand"])
    print(f"{connection.vendor}: {args.waiting:,} waiting orders over {len(rows)} serials")
    print("| query | ms |\n| --- | --- |")
    print(f"| bare count of waiting orders by serial | {bare_ms:.1f} |")
    print(f"| demand() (waiting, oldest, notified in 7 days, in stock) | {demand_ms:.1f} |")
    print(f"demand ÷ bare: {demand_ms / bare_ms:.2f}\nplan of demand():\n{plan()}")


if __name__ == "__main__":
    main()
