"""A robot's INSERT locks its version in the lock manager, not in the version's row.

The version lock orders a robot against an order for its serial being placed (see
`outbox.place`) and against a rename of its version or model. A robot took its version's
row FOR SHARE: a write to that row's tuple, a MultiXact when robots of one version are
produced side by side, and the WAL to log it, on every robot. Now the check that every robot
write already runs (migration 0013) first takes a shared advisory lock on the version;
placing an order takes it exclusively, and so does a statement that may rename a version or
a model, for every version, before it locks any row (its row triggers then see every robot
committed). Transaction-scoped, released at commit. Key: (7431, version id), as in
`Version.LOCK`. PostgreSQL only: SQLite serialises every write transaction anyway.
"""

from django.db import migrations

SERIAL_OF_VERSION = (
    "SELECT m.name || '-' || v.name FROM robots_version v "
    "JOIN robots_model m ON m.id = v.model_id WHERE v.id = NEW.version_id"
)


def check_serial(lock: str) -> str:
    return f"""
CREATE OR REPLACE FUNCTION robots_check_serial() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    {lock}
    IF NEW.serial IS DISTINCT FROM ({SERIAL_OF_VERSION} AND v.model_id = NEW.model_id) THEN
        RAISE EXCEPTION 'a robot''s serial must be its version''s, not %', NEW.serial
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;
"""


LOCKING = (
    check_serial(
        # Before the check: a rename that held the lock has committed when the check reads.
        "PERFORM pg_advisory_xact_lock_shared(7431, NEW.version_id::integer);"
    )
    + """
CREATE FUNCTION robots_lock_catalog() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(7431, id::integer) FROM robots_version ORDER BY id;
    RETURN NULL;
END $$;
CREATE TRIGGER robots_lock_catalog BEFORE UPDATE OF name, model_id ON robots_version
    FOR EACH STATEMENT EXECUTE FUNCTION robots_lock_catalog();
CREATE TRIGGER robots_lock_catalog BEFORE UPDATE OF name ON robots_model
    FOR EACH STATEMENT EXECUTE FUNCTION robots_lock_catalog();
"""
)
NOT_LOCKING = (
    check_serial("")
    + """
DROP TRIGGER robots_lock_catalog ON robots_version;
DROP TRIGGER robots_lock_catalog ON robots_model;
DROP FUNCTION robots_lock_catalog();
"""
)


def create(apps, schema_editor):
    _run(schema_editor, LOCKING)


def drop(apps, schema_editor):
    _run(schema_editor, NOT_LOCKING)


def _run(schema_editor, sql: str) -> None:
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(sql)  # no parameters: RAISE's % are the function's own


class Migration(migrations.Migration):
    dependencies = [("orders", "0015_due_notices_wake_the_worker")]

    operations = [migrations.RunPython(create, drop)]
