"""Backing up and restoring the whole database, for `manage.py backup` and `restore`.

SQLite is copied with its online backup API, a consistent snapshot while R4C writes;
PostgreSQL with pg_dump (one transaction's snapshot) in its custom format, restored with
pg_restore in one transaction. Either carries the django_migrations table, which is how a
restore tells that the backup was made by the schema this code expects.

A backup is not trusted whole: a restore is all or nothing, and what it restored must be
the schema the migrations make, object for object (tables, columns, constraints, indexes,
triggers, functions), compared with a scratch database migrated afresh; SQLite's must also
pass `PRAGMA integrity_check`. Anything else (a cut dump, corrupt pages, an extra trigger)
is refused and leaves the target as it was: empty, or, on SQLite, absent.
"""

import os
import sqlite3
import subprocess
import tempfile
import uuid
from contextlib import closing, contextmanager
from pathlib import Path

from django.core.management import call_command
from django.db import OperationalError, ProgrammingError, connection
from django.db.migrations.loader import MigrationLoader


class BackupError(Exception):
    pass


def unreachable(error: Exception) -> str:
    """One line: which database, and why it cannot be reached."""
    db = connection.settings_dict
    where = db["NAME"] if connection.vendor == "sqlite" else f"{db['NAME']!r} at {db['HOST']}"
    reason = next((line.strip() for line in str(error).splitlines() if line.strip()), "")
    return f"The database {where} cannot be reached: {reason}"


def backup(path: Path) -> None:
    if path.exists():
        raise BackupError(f"{path} exists already; name a new file.")
    partial = path.with_name(path.name + ".partial")
    # Private before its first byte: it holds every customer's address.
    os.close(os.open(partial, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
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
    try:
        empty = _empty()
    except OperationalError as error:  # no such database, refused, a wrong password
        raise BackupError(unreachable(error)) from None
    if not empty:
        raise BackupError("The database is not empty: restore into a new, empty database.")
    here, there = _schema(MigrationLoader(None).graph.leaf_nodes()), _backup_schema(path)
    if differ := sorted(
        app for app in here.keys() | there.keys() if here.get(app) != there.get(app)
    ):
        said = "; ".join(
            f"{app}: {there.get(app, 'none')} in it, {here.get(app, 'none')} here"
            for app in differ
        )
        raise BackupError(
            f"The backup was made by another schema ({said}). Restore it with the R4C version "
            "that made it, then upgrade (manage.py migrate)."
        )
    objects = _reference_objects()
    if connection.vendor == "sqlite":
        target = Path(connection.settings_dict["NAME"])
        # immutable: read as it is, with no -wal or -shm file made beside it.
        with closing(sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)) as source:
            _check_whole(source, path)
            _check_objects(_objects(source.cursor()), objects)
            try:
                with closing(sqlite3.connect(target)) as copy:
                    source.backup(copy)
            except sqlite3.Error as error:
                target.unlink(missing_ok=True)  # as it was: no database there
                raise BackupError(f"The restore failed: {error}. Nothing was restored.") from None
        return
    _run(["pg_restore", "--no-owner", "--single-transaction", f"--dbname={_dsn()}", str(path)])
    try:
        with connection.cursor() as cursor:
            _check_objects(_objects(cursor), objects)
    except BackupError:
        with connection.cursor() as cursor:  # back to the empty database it was
            cursor.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        raise


def _empty() -> bool:
    if connection.vendor == "sqlite":  # looked at without creating the file
        name = Path(connection.settings_dict["NAME"])
        if not name.exists():
            return True
        with closing(sqlite3.connect(f"file:{name}?mode=ro", uri=True)) as db:
            return not db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
    return not connection.introspection.table_names()


def _check_whole(db: sqlite3.Connection, path: Path) -> None:
    # The header says how many pages of what size the file holds (offsets 16 and 28): a file
    # cut short may lose only free pages, which integrity_check does not read.
    with path.open("rb") as file:
        header = file.read(100)
    size = int.from_bytes(header[16:18])
    if path.stat().st_size < (65536 if size == 1 else size) * int.from_bytes(header[28:32]):
        raise BackupError("The backup is cut short. Nothing was restored.")
    try:
        verdict = db.execute("PRAGMA integrity_check").fetchall()
    except sqlite3.DatabaseError as error:
        verdict = [(str(error),)]
    if verdict != [("ok",)]:
        first = " ".join(verdict[0][0].split())  # one line: it may name pages on several
        raise BackupError(f"The backup is damaged: {first}. Nothing was restored.")


def _check_objects(found: set[tuple], expected: set[tuple]) -> None:
    extra, missing = sorted(found - expected), sorted(expected - found)
    if extra or missing:
        said = [f"not made by R4C's migrations: {_name(extra[0])}" if extra else "",
                f"missing: {_name(missing[0])}" if missing else ""]  # fmt: skip
        raise BackupError(
            f"The backup's schema is not R4C's ({'; '.join(filter(None, said))}; "
            f"{len(extra)} extra, {len(missing)} missing in all). Nothing was restored."
        )


def _name(entry: tuple) -> str:
    return f"{entry[0]} {entry[1]}"


@contextmanager
def _scratch():
    """The default connection pointed at a new scratch database of the same kind for a
    while, as Django's test runner points it at a test database (so that the migrations'
    RunPython steps, which use the default alias, write there), then dropped."""
    saved, name = dict(connection.settings_dict), f"r4c_reference_{uuid.uuid4().hex[:8]}"
    folder = tempfile.TemporaryDirectory()
    if connection.vendor == "postgresql":
        try:
            with connection.cursor() as cursor:  # autocommit: no transaction around it
                cursor.execute(f'CREATE DATABASE "{name}"')
        except ProgrammingError as error:  # a role without CREATEDB
            raise BackupError(
                f"{error}: a restore compares what it restored with a scratch database it "
                f"migrates; let {saved['USER']} make one (ALTER ROLE {saved['USER']} CREATEDB)."
            ) from None
    else:
        name = str(Path(folder.name) / name)
    connection.close()
    connection.settings_dict["NAME"] = name
    try:
        yield connection
    finally:
        connection.close()
        connection.settings_dict.update(saved)
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
        folder.cleanup()


def _reference_objects() -> set[tuple]:
    """The schema R4C's migrations make, as `_objects` lists it."""
    with _scratch() as scratch:
        call_command("migrate", verbosity=0, interactive=False)
        with scratch.cursor() as cursor:
            return _objects(cursor)


# What a schema is made of, each entry (kind, name, definition), on either database.
OBJECTS = {
    "sqlite": [
        "SELECT type, name, coalesce(sql, '') FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'",
    ],
    "postgresql": [
        (
            "SELECT 'table', relname, relpersistence::text FROM pg_class "
            "WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'p', 'v', 'm', 'S')"
        ),
        (
            "SELECT 'column', table_name || '.' || column_name, data_type || ' ' || is_nullable "
            "|| ' ' || coalesce(column_default, '') FROM information_schema.columns "
            "WHERE table_schema = 'public'"
        ),
        (
            "SELECT 'constraint', conrelid::regclass || '.' || conname, "
            "pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE connamespace = 'public'::regnamespace"
        ),
        "SELECT 'index', indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'",
        (
            "SELECT 'trigger', tgrelid::regclass || '.' || tgname, pg_get_triggerdef(oid) "
            "FROM pg_trigger WHERE NOT tgisinternal"
        ),
        (
            "SELECT 'function', proname, pg_get_functiondef(oid) FROM pg_proc "
            "WHERE pronamespace = 'public'::regnamespace"
        ),
    ],
}


def _objects(cursor) -> set[tuple]:
    vendor = "sqlite" if isinstance(cursor, sqlite3.Cursor) else connection.vendor
    found = set()
    for query in OBJECTS[vendor]:
        cursor.execute(query)
        found |= {
            (kind, name, " ".join(definition.split()))
            for kind, name, definition in cursor.fetchall()
        }
    return found


def _schema(applied) -> dict[str, str]:
    """The latest migration of each app: {app: name}."""
    latest: dict[str, str] = {}
    for app, name in applied:
        latest[app] = max(latest.get(app, name), name)
    return latest


def _backup_schema(path: Path) -> dict[str, str]:
    if connection.vendor == "sqlite":
        try:
            with closing(sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)) as backup:
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
