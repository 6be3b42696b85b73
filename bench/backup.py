"""How long `manage.py backup` and `restore` take for 1,000,000 robots.

    .venv/bin/python bench/backup.py                # SQLite file bench/backup.sqlite3
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/r4c_bench .venv/bin/python bench/backup.py

Fills the database with --robots robots (one INSERT ... SELECT), then times the backup to a
file and the restore into a new database (a file beside it, or r4c_bench_restored), each a
process of its own as an operator runs it.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, setup_django

setup_django("backup.sqlite3")

import psycopg
from django.core.management import call_command
from django.db import connection
from world import reset

from robots.models import Model, Version


def fill(count: int) -> None:
    reset()
    version = Version.objects.create(model=Model.objects.create(name="R2"), name="D2")
    series = (
        "SELECT generate_series(1, %s)"
        if connection.vendor == "postgresql"
        else "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %s) "
        "SELECT i FROM n"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO robots_robot (model_id, version_id, serial, created) "
            f"SELECT %s, %s, 'R2-D2', %s FROM ({series}) s",
            [version.model_id, version.pk, "2026-11-27 00:00:00", count],
        )


def timed(*args: str, url: str) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT, check=True, capture_output=True,
        env={k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
        | {"DATABASE_URL": url},
    )  # fmt: skip
    return time.perf_counter() - started


def new_database(url: str, folder: Path) -> str:
    if url.startswith("sqlite"):
        return f"sqlite:///{folder / 'restored.sqlite3'}"
    base, name = url.rsplit("/", 1)
    with psycopg.connect(f"{base}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}_restored"')
        admin.execute(f'CREATE DATABASE "{name}_restored"')
    return f"{base}/{name}_restored"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--robots", type=int, default=1_000_000)
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    fill(args.robots)
    url = os.environ["DATABASE_URL"]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "r4c.backup"
        backup = timed("backup", str(path), url=url)
        size = path.stat().st_size / 2**20
        restore = timed("restore", str(path), url=new_database(url, Path(folder)))
    print(
        f"{connection.vendor}, {args.robots:,} robots: backup {backup:.1f} s ({size:.0f} MiB), "
        f"restore into a new database {restore:.1f} s"
    )


if __name__ == "__main__":
    main()
