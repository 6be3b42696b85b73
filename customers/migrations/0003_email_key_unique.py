from django.db import migrations, models


class Migration(migrations.Migration):
    # Apart from 0002, whose updates PostgreSQL must commit before the table is altered.
    dependencies = [("customers", "0002_email_key")]

    operations = [
        migrations.AlterField(
            model_name="customer",
            name="email_key",
            field=models.CharField(editable=False, max_length=254, unique=True),
        ),
    ]
