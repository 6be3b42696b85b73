"""Let the database itself leave an Arrival when a robot of a waited-for serial is inserted.

Written as a trigger, not a `robot_produced` listener, so that producing a robot is one
INSERT statement in autocommit: the production line's request then costs PostgreSQL one
round trip instead of four (BEGIN, INSERT, the waiting orders' check, COMMIT), and no path
that inserts robots (the API, the admin, a shell, raw SQL) can skip the check.

Why the check sees every order placed before the robot: the robot's INSERT locks its
catalog Version row (FOR SHARE), and placing an order locks it FOR UPDATE, so one waits for
the other. PostgreSQL runs each query of a trigger function with a fresh snapshot, taken
after that lock was granted; SQLite has one writer at a time.
"""

from django.db import migrations

POSTGRESQL = """
CREATE FUNCTION orders_note_arrival() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM orders_order WHERE robot_serial = NEW.serial AND notice = 'waiting'
    ) THEN
        INSERT INTO orders_arrival (serial, created_at) VALUES (NEW.serial, now());
        PERFORM pg_notify('r4c_notices', '');  -- wakes the worker at commit
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER orders_note_arrival AFTER INSERT ON robots_robot
    FOR EACH ROW EXECUTE FUNCTION orders_note_arrival();
"""

SQLITE = """
CREATE TRIGGER orders_note_arrival AFTER INSERT ON robots_robot FOR EACH ROW
WHEN EXISTS (
    SELECT 1 FROM orders_order WHERE robot_serial = NEW.serial AND notice = 'waiting'
)
BEGIN
    INSERT INTO orders_arrival (serial, created_at)
    VALUES (NEW.serial, strftime('%Y-%m-%d %H:%M:%f', 'now'));
END;
"""

DROP = {
    "postgresql": "DROP TRIGGER orders_note_arrival ON robots_robot; "
    "DROP FUNCTION orders_note_arrival();",
    "sqlite": "DROP TRIGGER orders_note_arrival;",
}


def create(apps, schema_editor):
    sql = {"postgresql": POSTGRESQL, "sqlite": SQLITE}[schema_editor.connection.vendor]
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(sql)


def drop(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(DROP[schema_editor.connection.vendor])


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0006_rate_counter"),
        ("robots", "0005_idempotent_answer"),
    ]

    operations = [migrations.RunPython(create, drop)]
