"""Backing up and restoring the whole database, for `manage.py backup` and `restore`.

SQLite is copied with its online backup API, a consistent snapshot while R4C writes;
PostgreSQL with pg_dump (one transaction's snapshot) in its custom format, restored with
pg_restore. Either carries the django_migrations table, which is how a restore tells that
the backup was made by the schema this code expects.
"""

import os
import sqlite3
import subprocess
from contextlib import closing
from pathlib import Path

from django.db import connection
from django.db.migrations.loader import MigrationLoader


class BackupError(Exception):
    pass


def backup(path: Path) -> None:
    if path.exists():
        raise BackupError(f"{path} exists already; name a new file.")
    partial = path.with_name(path.name + ".partial")
    try:
        if connection.vendor == "sqlite":
            connection.ensure_connection()
            with closing(sqlite3.connect(partial)) as copy:
                connection.connection.backup(copy)
        else:
            _run(["pg_dump", "--format=custom", "--no-owner", f"--file={partial}", _dsn()])
        partial.rename(path)
    finally:
        partial.unlink(missing_ok=True)


def restore(path: Path) -> None:
    if not path.is_file():
        raise BackupError(f"{path} is not a file.")
    if connection.introspection.table_names():
        raise BackupError("The database is not empty: restore into a new, empty database.")
    expected, found = _schema(MigrationLoader(None).graph.leaf_nodes()), _backup_schema(path)
    if found != expected:
        raise BackupError(
            f"The backup was made by schema {_describe(found)}; this R4C has "
            f"{_describe(expected)}. Restore it with the R4C version that made it, then "
            "upgrade (manage.py migrate)."
        )
    if connection.vendor == "sqlite":
        connection.ensure_connection()
        with closing(sqlite3.connect(path)) as source:
            source.backup(connection.connection)
    else:
        _run(["pg_restore", "--no-owner", "--exit-on-error", f"--dbname={_dsn()}", str(path)])


def _schema(applied) -> dict[str, str]:
    """The latest migration of each app: {app: name}."""
    latest: dict[str, str] = {}
    for app, name in applied:
        latest[app] = max(latest.get(app, name), name)
    return latest


def _backup_schema(path: Path) -> dict[str, str]:
    if connection.vendor == "sqlite":
        try:
            with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as backup:
                rows = backup.execute("SELECT app, name FROM django_migrations").fetchall()
        except sqlite3.DatabaseError as error:
            raise BackupError(f"{path} is not an SQLite backup of R4C: {error}") from None
        return _schema(rows)
    dump = _run(["pg_restore", "--data-only", "--table=django_migrations", "--file=-", str(path)])
    rows, copying = [], False
    for line in dump.splitlines():
        if line.startswith("COPY ") and "django_migrations" in line:
            copying = True
        elif copying and line == "\\.":
            break
        elif copying:
            _, app, name, _ = line.split("\t")
            rows.append((app, name))
    return _schema(rows)


def _describe(schema: dict[str, str]) -> str:
    return ", ".join(f"{app} {name}" for app, name in sorted(schema.items())) or "(none)"


def _dsn() -> str:
    """The database's connection string; the password goes by PGPASSWORD (see `_run`)."""
    db = connection.settings_dict
    parts = {"host": db["HOST"], "port": db["PORT"], "dbname": db["NAME"], "user": db["USER"]}
    return " ".join(f"{key}={value}" for key, value in parts.items() if value)


def _run(command: list[str]) -> str:
    # Not on the command line, where any user of the host could read it.
    env = os.environ | {"PGPASSWORD": connection.settings_dict["PASSWORD"] or ""}
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    except FileNotFoundError:
        raise BackupError(
            f"{command[0]} is missing: install Debian's postgresql-client (make tools)."
        ) from None
    if done.returncode != 0:
        raise BackupError(f"{command[0]} failed: {done.stderr.strip()}")
    return done.stdout
