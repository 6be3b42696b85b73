"""A notice that becomes due wakes the worker from the database (PostgreSQL's NOTIFY).

Whatever makes it due — placing an order for a robot in stock, a manager's retry, a worker
putting a notice back — the row's INSERT or UPDATE notifies the channel the worker listens on
(`outbox.CHANNEL`), at commit. A placing then costs no statement of its own to wake the
worker. SQLite has no NOTIFY: its worker polls an index instead.
"""

from django.db import migrations

CREATE = """
CREATE FUNCTION orders_wake_worker() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('r4c_notices', '');  -- folded into one per transaction, sent at commit
    RETURN NULL;
END $$;
CREATE TRIGGER orders_wake_worker_insert AFTER INSERT ON orders_order
    FOR EACH ROW WHEN (NEW.state = 'due') EXECUTE FUNCTION orders_wake_worker();
CREATE TRIGGER orders_wake_worker_update AFTER UPDATE OF state ON orders_order
    FOR EACH ROW WHEN (NEW.state = 'due' AND OLD.state <> 'due')
    EXECUTE FUNCTION orders_wake_worker();
"""

DROP = """
DROP TRIGGER orders_wake_worker_insert ON orders_order;
DROP TRIGGER orders_wake_worker_update ON orders_order;
DROP FUNCTION orders_wake_worker();
"""


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("orders", "0014_russian_field_names")]

    operations = [migrations.RunPython(create, drop)]
