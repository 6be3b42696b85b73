"""The database itself keeps what the catalog promises, whatever writes to it.

`bulk_create`, `queryset.update` and raw SQL skip save(): without these triggers they could
store a robot with an empty or stale serial (the weekly report then breaks), or rename a
model or version that robots or orders go by (its waiting orders would never be mailed).

- A robot's serial must be its version's, MODEL-VERSION, and its model the version's model;
  an order's serial must be its version's. Checked before each INSERT and UPDATE.
- A version's name or model, and a model's name, cannot change while robots or orders go by
  them.

Errors are integrity errors (PostgreSQL: check_violation, restrict_violation; SQLite: a
constraint error from RAISE(ABORT)). The admin's forms say the same first, in Russian
(CatalogEntry.clean).
"""

from django.db import migrations

SERIAL_OF_VERSION = (
    "SELECT m.name || '-' || v.name FROM robots_version v "
    "JOIN robots_model m ON m.id = v.model_id WHERE v.id = NEW.version_id"
)
VERSION_IN_USE = (
    "EXISTS (SELECT 1 FROM robots_robot WHERE version_id = OLD.id) "
    "OR EXISTS (SELECT 1 FROM orders_order WHERE version_id = OLD.id)"
)
MODEL_IN_USE = (
    "EXISTS (SELECT 1 FROM robots_robot WHERE model_id = OLD.id) OR EXISTS (SELECT 1 "
    "FROM orders_order o JOIN robots_version v ON v.id = o.version_id WHERE v.model_id = OLD.id)"
)

POSTGRESQL = f"""
CREATE FUNCTION robots_check_serial() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.serial IS DISTINCT FROM ({SERIAL_OF_VERSION} AND v.model_id = NEW.model_id) THEN
        RAISE EXCEPTION 'a robot''s serial must be its version''s, not %', NEW.serial
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER robots_check_serial BEFORE INSERT OR UPDATE ON robots_robot
    FOR EACH ROW EXECUTE FUNCTION robots_check_serial();

CREATE FUNCTION orders_check_serial() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.robot_serial IS DISTINCT FROM ({SERIAL_OF_VERSION}) THEN
        RAISE EXCEPTION 'an order''s serial must be its version''s, not %', NEW.robot_serial
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER orders_check_serial BEFORE INSERT OR UPDATE OF robot_serial, version_id
    ON orders_order FOR EACH ROW EXECUTE FUNCTION orders_check_serial();

CREATE FUNCTION robots_keep_version_name() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.name, NEW.model_id) IS DISTINCT FROM (OLD.name, OLD.model_id)
            AND ({VERSION_IN_USE}) THEN
        RAISE EXCEPTION 'version % is in use: robots or orders go by its name', OLD.name
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER robots_keep_version_name BEFORE UPDATE ON robots_version
    FOR EACH ROW EXECUTE FUNCTION robots_keep_version_name();

CREATE FUNCTION robots_keep_model_name() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.name IS DISTINCT FROM OLD.name AND ({MODEL_IN_USE}) THEN
        RAISE EXCEPTION 'model % is in use: robots or orders go by its name', OLD.name
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER robots_keep_model_name BEFORE UPDATE ON robots_model
    FOR EACH ROW EXECUTE FUNCTION robots_keep_model_name();
"""

SQLITE = [
    *(
        f"""CREATE TRIGGER robots_check_serial_{name} BEFORE {event} ON robots_robot
        FOR EACH ROW WHEN NEW.serial IS NOT ({SERIAL_OF_VERSION} AND v.model_id = NEW.model_id)
        BEGIN SELECT RAISE(ABORT, 'a robot''s serial must be its version''s'); END"""
        for name, event in (("insert", "INSERT"), ("update", "UPDATE"))
    ),
    *(
        f"""CREATE TRIGGER orders_check_serial_{name} BEFORE {event} ON orders_order
        FOR EACH ROW WHEN NEW.robot_serial IS NOT ({SERIAL_OF_VERSION})
        BEGIN SELECT RAISE(ABORT, 'an order''s serial must be its version''s'); END"""
        for name, event in (("insert", "INSERT"), ("update", "UPDATE OF robot_serial, version_id"))
    ),
    f"""CREATE TRIGGER robots_keep_version_name BEFORE UPDATE OF name, model_id ON robots_version
    FOR EACH ROW WHEN (NEW.name IS NOT OLD.name OR NEW.model_id IS NOT OLD.model_id)
        AND ({VERSION_IN_USE})
    BEGIN SELECT RAISE(ABORT, 'the version is in use: robots or orders go by its name'); END""",
    f"""CREATE TRIGGER robots_keep_model_name BEFORE UPDATE OF name ON robots_model
    FOR EACH ROW WHEN NEW.name IS NOT OLD.name AND ({MODEL_IN_USE})
    BEGIN SELECT RAISE(ABORT, 'the model is in use: robots or orders go by its name'); END""",
]

DROP = {
    "postgresql": [
        "DROP TRIGGER robots_check_serial ON robots_robot",
        "DROP FUNCTION robots_check_serial()",
        "DROP TRIGGER orders_check_serial ON orders_order",
        "DROP FUNCTION orders_check_serial()",
        "DROP TRIGGER robots_keep_version_name ON robots_version",
        "DROP FUNCTION robots_keep_version_name()",
        "DROP TRIGGER robots_keep_model_name ON robots_model",
        "DROP FUNCTION robots_keep_model_name()",
    ],
    "sqlite": [
        "DROP TRIGGER robots_check_serial_insert",
        "DROP TRIGGER robots_check_serial_update",
        "DROP TRIGGER orders_check_serial_insert",
        "DROP TRIGGER orders_check_serial_update",
        "DROP TRIGGER robots_keep_version_name",
        "DROP TRIGGER robots_keep_model_name",
    ],
}


def create(apps, schema_editor):
    statements = {"postgresql": [POSTGRESQL], "sqlite": SQLITE}[schema_editor.connection.vendor]
    with schema_editor.connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


def drop(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        for statement in DROP[schema_editor.connection.vendor]:
            cursor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0012_bounces_and_suppressions"),
        ("robots", "0007_idempotent_answer_as_sent"),
    ]

    operations = [migrations.RunPython(create, drop)]
