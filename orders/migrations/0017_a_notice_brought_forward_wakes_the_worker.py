"""A due notice brought forward wakes the worker too (PostgreSQL's NOTIFY).

Placing an order again while its notice waits to retry tries it now: the order's one
statement (`outbox.UPSERT`) moves `next_attempt_at` back to the present, and the worker must
hear of it as of a notice that has just become due. Waking it is the trigger's job, so that
placing costs no statement of its own.
"""

from django.db import migrations

CREATE = """
DROP TRIGGER orders_wake_worker_update ON orders_order;
CREATE TRIGGER orders_wake_worker_update AFTER UPDATE OF state, next_attempt_at ON orders_order
    FOR EACH ROW WHEN (
        NEW.state = 'due' AND (OLD.state <> 'due' OR NEW.next_attempt_at < OLD.next_attempt_at)
    )
    EXECUTE FUNCTION orders_wake_worker();
"""

DROP = """
DROP TRIGGER orders_wake_worker_update ON orders_order;
CREATE TRIGGER orders_wake_worker_update AFTER UPDATE OF state ON orders_order
    FOR EACH ROW WHEN (NEW.state = 'due' AND OLD.state <> 'due')
    EXECUTE FUNCTION orders_wake_worker();
"""


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("orders", "0016_robots_lock_their_version_without_writing_it")]

    operations = [migrations.RunPython(create, drop)]
