"""/metrics reads a tally the database keeps, not the orders and attempts themselves.

A scrape grouped every order by state and every attempt by reply and by delivery time: its
time grew with the tables. Now row triggers add +/-n rows to orders_tally as notices change
state and attempts, bounces and suppressions are written (see `Tally`); the same statements
on both databases, built from BUCKETS and REPLY_CLASSES. The tally starts from what the
tables hold. Changing those constants needs a migration that installs the triggers again.
"""

from django.db import migrations, models

from orders.models import BUCKETS, REPLY_CLASSES

ROW = "NEW."  # the row a trigger sees; "" for the tables' rows, to start the tally


def reply_class(row: str) -> str:
    cases = " ".join(
        f"WHEN {row}code >= {low} AND {row}code < {high} THEN '{name}'"
        for name, (low, high) in REPLY_CLASSES.items()
    )
    return f"'replies.' || CASE WHEN {row}code IS NULL THEN 'connection' {cases} END"


def bucket(row: str) -> str:
    cases = " ".join(f"WHEN {row}waited <= {le} THEN '{le}'" for le in BUCKETS)
    return f"'delivery.' || CASE {cases} ELSE '+Inf' END"


# Each trigger: its table, event and condition, then its statements.
TRIGGERS = {
    "orders_tally_order_added": ("orders_order", "INSERT", "", """
        INSERT INTO orders_tally (name, n) VALUES ('notices.' || NEW.state, 1);"""),
    "orders_tally_order_moved": ("orders_order", "UPDATE OF state", "OLD.state <> NEW.state", """
        INSERT INTO orders_tally (name, n)
        VALUES ('notices.' || OLD.state, -1), ('notices.' || NEW.state, 1);"""),
    "orders_tally_order_gone": ("orders_order", "DELETE", "", """
        INSERT INTO orders_tally (name, n) VALUES ('notices.' || OLD.state, -1);"""),
    "orders_tally_attempt": ("orders_attempt", "INSERT", "", f"""
        INSERT INTO orders_tally (name, n) SELECT {reply_class(ROW)}, 1
        WHERE {reply_class(ROW)} IS NOT NULL;
        INSERT INTO orders_tally (name, n) SELECT {bucket(ROW)}, 1 WHERE NEW.waited IS NOT NULL
        UNION ALL SELECT 'delivery.count', 1 WHERE NEW.waited IS NOT NULL
        UNION ALL SELECT 'delivery.ms', CAST(ROUND(NEW.waited * 1000) AS BIGINT)
        WHERE NEW.waited IS NOT NULL;"""),
    "orders_tally_bounce": ("orders_bounce", "INSERT", "", """
        INSERT INTO orders_tally (name, n) VALUES ('bounces.' || NEW.kind, 1);"""),
    "orders_tally_suppressed": ("orders_suppression", "INSERT", "", """
        INSERT INTO orders_tally (name, n) VALUES ('suppressed', 1);"""),
    "orders_tally_lifted": ("orders_suppression", "DELETE", "", """
        INSERT INTO orders_tally (name, n) VALUES ('suppressed', -1);"""),
}  # fmt: skip

START = f"""
INSERT INTO orders_tally (name, n)
SELECT 'notices.' || state, COUNT(*) FROM orders_order GROUP BY state;
INSERT INTO orders_tally (name, n)
SELECT {reply_class("")}, COUNT(*) FROM orders_attempt GROUP BY 1 HAVING {reply_class("")} IS NOT NULL;
INSERT INTO orders_tally (name, n)
SELECT {bucket("")}, COUNT(*) FROM orders_attempt WHERE waited IS NOT NULL GROUP BY 1;
INSERT INTO orders_tally (name, n)
SELECT 'delivery.count', COUNT(*) FROM orders_attempt WHERE waited IS NOT NULL;
INSERT INTO orders_tally (name, n)
SELECT 'delivery.ms', COALESCE(SUM(CAST(ROUND(waited * 1000) AS BIGINT)), 0) FROM orders_attempt;
INSERT INTO orders_tally (name, n)
SELECT 'bounces.' || kind, COUNT(*) FROM orders_bounce GROUP BY kind;
INSERT INTO orders_tally (name, n) SELECT 'suppressed', COUNT(*) FROM orders_suppression;
"""


def create(apps, schema_editor):
    postgresql = schema_editor.connection.vendor == "postgresql"
    statements = []
    for name, (table, event, condition, body) in TRIGGERS.items():
        when = f"WHEN ({condition})" if condition else ""
        if postgresql:
            statements.append(
                f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ "
                f"BEGIN {body} RETURN NULL; END $$;"
            )
            statements.append(
                f"CREATE TRIGGER {name} AFTER {event} ON {table} FOR EACH ROW {when} "
                f"EXECUTE FUNCTION {name}();"
            )
        else:
            statements.append(
                f"CREATE TRIGGER {name} AFTER {event} ON {table} FOR EACH ROW {when} "
                f"BEGIN {body} END;"
            )
    statements.extend(s for s in START.split(";") if s.strip())
    _run(schema_editor, statements)


def drop(apps, schema_editor):
    postgresql = schema_editor.connection.vendor == "postgresql"
    statements = []
    for name, (table, *_) in TRIGGERS.items():
        statements.append(f"DROP TRIGGER {name}" + (f" ON {table}" if postgresql else ""))
        if postgresql:
            statements.append(f"DROP FUNCTION {name}()")
    _run(schema_editor, statements)


def _run(schema_editor, statements: list[str]) -> None:
    with schema_editor.connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [("orders", "0021_russian_names_for_internals")]

    operations = [
        migrations.CreateModel(
            name="Tally",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(max_length=40)),
                ("n", models.BigIntegerField()),
            ],
            options={
                "verbose_name": "счётчик",
                "verbose_name_plural": "счётчики",
                "indexes": [models.Index(fields=["name", "n"], name="tally_idx")],
            },
        ),
        migrations.RunPython(create, drop),
    ]  # fmt: skip
