import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("customers", "0003_email_key_unique"),
        ("orders", "0001_initial"),
        ("robots", "0003_catalog_name_constraints"),
    ]

    operations = [
        migrations.AddField(
            model_name="order",
            name="version",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="orders",
                to="robots.version",
            ),
        ),
        migrations.AddField(
            model_name="order",
            name="notice",
            field=models.CharField(
                choices=[
                    ("waiting", "waiting for a robot"),
                    ("due", "due"),
                    ("sending", "sending"),
                    ("sent", "sent"),
                    ("failed", "failed"),
                ],
                default="waiting",
                max_length=7,
            ),
        ),
        migrations.AddField(
            model_name="order",
            name="attempts",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="order",
            name="next_attempt_at",
            field=models.DateTimeField(default=django.utils.timezone.now),
        ),
        migrations.AddField(
            model_name="order",
            name="claim",
            field=models.UUIDField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name="order",
            name="claimed_until",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="order",
            name="placed_again",
            field=models.BooleanField(default=False),
        ),
        migrations.AddField(
            model_name="order",
            name="last_error",
            field=models.TextField(blank=True),
        ),
        migrations.AddField(
            model_name="order",
            name="notified_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="order",
            name="placed_at",
            field=models.DateTimeField(default=django.utils.timezone.now),
        ),
    ]
