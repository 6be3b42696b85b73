"""Placing an order is one function on PostgreSQL: `orders_place`, one round trip.

It was one query string of three statements (the customer's upsert, the version's lock, the
order's upsert) joined by `outbox.place`, which worked only while psycopg bound parameters
on the client. Now one call, with typed arguments, does the same in one transaction: the
statements after the lock each see what committed before it (a VOLATILE function takes a
snapshot per statement), so a robot of the serial is seen by the order, or the order by the
robot's trigger. Built from what SQLite runs as statements (`outbox.CUSTOMER`,
`outbox.ORDER`, the transitions written once) and `Version.LOCK_KEY`.
"""

from django.db import migrations

from orders.mail.outbox import CUSTOMER, ORDER, PLACE_ARGUMENTS, STATES
from robots.models import Version

NAMES = {name: f"p_{name}" for name in PLACE_ARGUMENTS} | STATES
NAMES |= {"customer": "customer", "stock": "stock", "sent": "sent"}

CREATE = f"""
CREATE FUNCTION orders_place(
    p_email text, p_key text, p_inbox text, p_version bigint, p_serial text,
    p_now timestamptz, p_today date, p_repeat_after timestamptz, p_cap integer
) RETURNS TABLE (
    id bigint, customer_id bigint, version_id bigint, robot_serial varchar, state varchar,
    placed_at timestamptz, created_at timestamptz, notified_at timestamptz,
    in_stock boolean, created boolean, renewed boolean
) LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    customer bigint;
    stock boolean;
    sent bigint;
BEGIN
    {CUSTOMER.format(**NAMES)}
        RETURNING customers_customer.id INTO customer;
    PERFORM pg_advisory_xact_lock({Version.LOCK_KEY}, p_version::integer);
    stock := EXISTS (SELECT 1 FROM robots_robot r WHERE r.version_id = p_version);
    -- The inbox's notices for the serial today, under whichever of its addresses.
    SELECT COALESCE(SUM(s.sent_that_day), 0) INTO sent FROM orders_order s
        JOIN customers_customer c ON c.id = s.customer_id
        WHERE c.inbox = p_inbox AND s.version_id = p_version AND s.sent_on = p_today;
    RETURN QUERY {ORDER.format(**NAMES)};
END $$;
"""
DROP = "DROP FUNCTION orders_place"


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(CREATE)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0018_rate_counters_are_unlogged"),
        ("robots", "0009_names_from_one_rule"),
    ]

    operations = [migrations.RunPython(create, drop)]
