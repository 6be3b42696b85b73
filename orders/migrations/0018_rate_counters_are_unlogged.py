"""The rate counters live in an unlogged table on PostgreSQL.

Every POST /create_order/ upserts its client's counter, and one client's requests all write
its one row. In a logged table each of them waited for its commit's WAL flush while it held
that row, and the next request of the client waited behind it. The counters are worth
nothing after a crash of the database (PostgreSQL empties an unlogged table then: the
limits start afresh) and on a standby (only the primary counts). Backups (pg_dump) still
carry them.
"""

from django.db import migrations


def unlogged(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE orders_ratecounter SET UNLOGGED")


def logged(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE orders_ratecounter SET LOGGED")


class Migration(migrations.Migration):
    dependencies = [("orders", "0017_a_notice_brought_forward_wakes_the_worker")]

    operations = [migrations.RunPython(unlogged, logged)]
