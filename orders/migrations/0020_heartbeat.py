from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("orders", "0019_placing_is_one_function")]

    operations = [migrations.RenameModel("Worker", "Heartbeat")]
