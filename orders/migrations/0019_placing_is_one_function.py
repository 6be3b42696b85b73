"""Placing an order is one function on PostgreSQL: `orders_place`, one round trip.

It was one query string of three statements (the customer's upsert, the version's lock, the
order's upsert) joined by `outbox.place`, which worked only while psycopg bound parameters
on the client. Now one call, with typed arguments, does the same in one transaction: the
statements after the lock each see what committed before it (a VOLATILE function takes a
snapshot per statement), so a robot of the serial is seen by the order, or the order by the
robot's trigger. Built from the constants the Python reads (the states, `Version.LOCK_KEY`);
the ORM does the same on SQLite (`outbox._place_here`), whose write lock orders it.
"""

from django.db import migrations

from orders.models import State
from robots.models import Version

DUE, SENDING, WAITING = State.DUE.value, State.SENDING.value, State.WAITING.value
PENDING = f"o.state IN ('{DUE}', '{SENDING}')"

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
    -- A fresh, explicit request: an address that had stopped mail wants it again.
    INSERT INTO customers_customer (email, email_key, inbox, created_at, mail_stopped_at)
        VALUES (p_email, p_key, p_inbox, p_now, NULL)
        ON CONFLICT (email_key) DO UPDATE SET mail_stopped_at = NULL
        RETURNING customers_customer.id INTO customer;
    PERFORM pg_advisory_xact_lock({Version.LOCK_KEY}, p_version::integer);
    stock := EXISTS (SELECT 1 FROM robots_robot r WHERE r.version_id = p_version);
    -- The inbox's notices for the serial today, under whichever of its addresses.
    SELECT COALESCE(SUM(s.sent_that_day), 0) INTO sent FROM orders_order s
        JOIN customers_customer c ON c.id = s.customer_id
        WHERE c.inbox = p_inbox AND s.version_id = p_version AND s.sent_on = p_today;
    RETURN QUERY INSERT INTO orders_order AS o (customer_id, version_id, robot_serial,
        placed_at, created_at, state, attempts, next_attempt_at, due_at, last_error,
        sent_that_day)
    VALUES (customer, p_version, p_serial, p_now, p_now,
        CASE WHEN stock AND sent < p_cap THEN '{DUE}' ELSE '{WAITING}' END,
        0, p_now, p_now, '', 0)
    ON CONFLICT (customer_id, version_id) DO UPDATE SET
        state = CASE WHEN {PENDING} THEN o.state
            WHEN excluded.state = '{DUE}'
                AND (o.notified_at IS NULL OR o.notified_at <= p_repeat_after) THEN '{DUE}'
            ELSE '{WAITING}' END,
        next_attempt_at = CASE WHEN o.state = '{SENDING}'
            OR o.state = '{DUE}' AND o.next_attempt_at < p_now THEN o.next_attempt_at
            ELSE p_now END,
        attempts = CASE WHEN {PENDING} THEN o.attempts ELSE 0 END,
        due_at = CASE WHEN {PENDING} THEN o.due_at ELSE p_now END,
        last_error = CASE WHEN {PENDING} THEN o.last_error ELSE '' END,
        placed_at = CASE WHEN {PENDING} THEN o.placed_at ELSE p_now END
    RETURNING o.id, o.customer_id, o.version_id, o.robot_serial, o.state, o.placed_at,
        o.created_at, o.notified_at, stock, o.created_at = p_now, o.placed_at = p_now;
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
