from django.db import migrations, models


def fill_email_keys(apps, schema_editor):
    """Key every stored address by its mailbox; merge customers that share one."""
    from django.core.exceptions import ValidationError

    from customers.models import normalize_address

    Customer = apps.get_model("customers", "Customer")
    Order = apps.get_model("orders", "Order")
    owners = {}
    for customer in Customer.objects.order_by("pk"):
        try:
            customer.email, customer.email_key = normalize_address(customer.email)
        except ValidationError:
            # Stored before addresses were checked: kept (and visible in the admin) rather
            # than lost, under a key no valid address can have.
            customer.email_key = f"invalid:{customer.pk}"
        first = owners.setdefault(customer.email_key, customer)
        if first is customer:
            customer.save(update_fields=["email", "email_key"])
            continue
        # One mailbox, two customers: the first keeps the orders; a serial both ordered
        # stays with the first one's order.
        taken = Order.objects.filter(customer=first).values_list("robot_serial", flat=True)
        taken = {serial.upper() for serial in taken}
        for order in Order.objects.filter(customer=customer):
            if order.robot_serial.upper() in taken:
                order.delete()
            else:
                order.customer = first
                order.save(update_fields=["customer"])
        customer.delete()


class Migration(migrations.Migration):
    dependencies = [
        ("customers", "0001_initial"),
        ("orders", "0001_initial"),
    ]

    operations = [
        migrations.RemoveConstraint(model_name="customer", name="unique_customer_email"),
        migrations.AddField(
            model_name="customer",
            name="email_key",
            field=models.CharField(editable=False, max_length=254, null=True),
        ),
        migrations.RunPython(fill_email_keys, migrations.RunPython.noop),
    ]
