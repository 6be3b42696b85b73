"""GET /download/ against the bare grouped query it is built on, as the robot table grows.

    .venv/bin/python bench/report.py                      # SQLite file bench/report.sqlite3
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/r4c_bench .venv/bin/python bench/report.py

For each size N it fills the database with N robots spread over the last four weeks (five
models with three versions each), then times, in the same run: the bare SQL that counts the
last week by serial; the workbook alone, built from those counts (the fixed overhead); and
the whole report through Django's test client. Each is the best of --repeat runs, taken in
turn so that the machine's noise falls on all three alike. It also takes the peak Python
memory of one report (tracemalloc). A PostgreSQL database named in DATABASE_URL must exist;
its robots are replaced.
"""

import argparse
import random
import time
import tracemalloc
from datetime import timedelta

from common import ROOT, setup_django

setup_django("report.sqlite3")

from django.conf import settings
from django.core.management import call_command
from django.db import connection, transaction
from django.test import Client
from django.utils import timezone

from robots.models import Model, Robot, Version
from robots.utils import render_production_list

BARE_QUERY = """
    SELECT serial, COUNT(*) FROM robots_robot
    WHERE created >= %s AND created <= %s
    GROUP BY serial ORDER BY serial
"""


def fill(n: int) -> None:
    Robot.objects.all().delete()
    versions = list(Version.objects.select_related("model"))
    now = timezone.now()
    rng = random.Random(n)
    four_weeks = 28 * 24 * 3600
    batch = 20_000
    for start in range(0, n, batch):
        robots = []
        for _ in range(min(batch, n - start)):
            version = rng.choice(versions)
            robots.append(
                Robot(
                    model=version.model,
                    version=version,
                    serial=version.serial,
                    created=now - timedelta(seconds=rng.uniform(0, four_weeks)),
                )
            )
        with transaction.atomic():
            Robot.objects.bulk_create(robots)
    with connection.cursor() as cursor:
        # As autovacuum would in production: statistics, and on PostgreSQL the visibility
        # map that lets the index on (created, serial) answer alone.
        cursor.execute(
            "VACUUM ANALYZE robots_robot" if connection.vendor == "postgresql" else "ANALYZE"
        )


def best_seconds(actions, repeat: int) -> list[float]:
    """The fastest of `repeat` runs of each action, the actions run in turn."""
    best = [float("inf")] * len(actions)
    for _ in range(repeat):
        for i, action in enumerate(actions):
            started = time.perf_counter()
            action()
            best[i] = min(best[i], time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    settings.PRODUCTION_LIST_DIR = ROOT / "bench" / "production_list"
    call_command("migrate", verbosity=0)
    if not Model.objects.exists():
        for model_name in ["R2", "13", "X5", "C3", "T8"]:
            model = Model.objects.create(name=model_name)
            for name in ["D2", "A1", "XS"]:
                Version.objects.create(model=model, name=name)
    client = Client()

    def bare_query():
        now = timezone.now()
        with connection.cursor() as cursor:
            cursor.execute(BARE_QUERY, [now - timedelta(days=7), now])
            return cursor.fetchall()

    def report():
        response = client.get("/download/")
        assert response.status_code == 200, response.status_code

    print(f"database: {connection.vendor}; best of {args.repeat} runs each")
    print(
        f"{'robots':>9} {'in week':>8} {'query ms':>9} {'workbook ms':>12} {'report ms':>10} "
        f"{'report-query ms':>16} {'peak KiB':>9}"
    )
    results = []
    for n in [int(size) for size in args.sizes.split(",")]:
        fill(n)
        counts = bare_query()
        in_week = sum(count for _, count in counts)
        report()  # warm caches once
        query_s, workbook_s, report_s = best_seconds(
            [bare_query, lambda counts=counts: render_production_list(counts), report],
            args.repeat,
        )
        tracemalloc.start()
        report()
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        results.append((n, query_s, report_s))
        print(
            f"{n:>9} {in_week:>8} {query_s * 1000:>9.1f} {workbook_s * 1000:>12.1f} "
            f"{report_s * 1000:>10.1f} {(report_s - query_s) * 1000:>16.1f} {peak / 1024:>9.0f}"
        )
    # The fixed overhead (workbook, request, file write): all but the query at the smallest N.
    fixed = results[0][2] - results[0][1]
    print(f"fixed overhead F = report - query at N={results[0][0]}: {fixed * 1000:.1f} ms")
    for n, query_s, report_s in results:
        print(
            f"N={n}: report {report_s * 1000:.1f} ms vs 1.5 x query + F = "
            f"{(1.5 * query_s + fixed) * 1000:.1f} ms; (report - F) / query = "
            f"{(report_s - fixed) / query_s:.2f} (goal: at most 1.5)"
        )


if __name__ == "__main__":
    main()
