from django.db import migrations, models


def fill(apps, schema_editor):
    from customers.models import inbox

    Customer = apps.get_model("customers", "Customer")
    for customer in Customer.objects.only("email").iterator():
        Customer.objects.filter(pk=customer.pk).update(inbox=inbox(customer.email))


class Migration(migrations.Migration):
    dependencies = [
        ("customers", "0005_mail_stopped"),
    ]

    operations = [
        migrations.AddField(
            model_name="customer",
            name="inbox",
            field=models.CharField(db_index=True, default="", editable=False, max_length=254),
        ),
        migrations.RunPython(fill, migrations.RunPython.noop),
    ]
