import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    # Apart from 0003, whose updates PostgreSQL must commit before the table is altered.
    dependencies = [("orders", "0003_orders_become_the_outbox")]

    operations = [
        migrations.AlterField(
            model_name="order",
            name="version",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="orders",
                to="robots.version",
            ),
        ),
        migrations.AlterField(
            model_name="order",
            name="robot_serial",
            field=models.CharField(editable=False, max_length=5),
        ),
        migrations.RemoveConstraint(model_name="order", name="one_order_per_customer_and_serial"),
        migrations.RemoveIndex(model_name="order", name="order_waiting_idx"),
        migrations.RemoveField(model_name="order", name="is_notified"),
        migrations.RemoveField(model_name="order", name="updated_at"),
        migrations.DeleteModel(name="Notice"),
        migrations.AddConstraint(
            model_name="order",
            constraint=models.UniqueConstraint(
                fields=("customer", "version"), name="one_order_per_customer_and_version"
            ),
        ),
        migrations.AddIndex(
            model_name="order",
            index=models.Index(
                condition=models.Q(("notice", "waiting")),
                fields=["robot_serial"],
                name="order_waiting_idx",
            ),
        ),
        migrations.AddIndex(
            model_name="order",
            index=models.Index(
                condition=models.Q(("notice", "due")),
                fields=["attempts", "next_attempt_at"],
                name="order_notice_due_idx",
            ),
        ),
        migrations.AddIndex(
            model_name="order",
            index=models.Index(
                condition=models.Q(("notice", "sending")),
                fields=["claimed_until"],
                name="order_notice_sending_idx",
            ),
        ),
    ]
