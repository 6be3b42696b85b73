import re

from django.db import migrations
from django.utils import timezone

SERIAL = re.compile(r"\A[A-Z0-9]{2}-[A-Z0-9]{2}\Z")


def move_notices_onto_orders(apps, schema_editor):
    """Each order takes its catalog version and the state of its latest notice."""
    Order = apps.get_model("orders", "Order")
    Notice = apps.get_model("orders", "Notice")
    Model = apps.get_model("robots", "Model")
    Version = apps.get_model("robots", "Version")
    Robot = apps.get_model("robots", "Robot")
    now = timezone.now()
    for order in Order.objects.order_by("pk"):
        serial = order.robot_serial.upper()
        if not SERIAL.match(serial):
            order.delete()  # made in the admin with a serial no robot can ever have
            continue
        mine = Order.objects.filter(customer=order.customer_id).exclude(pk=order.pk)
        if mine.filter(robot_serial=serial).exists():
            order.delete()  # `r2-d2` beside `R2-D2`: one order of the two is enough
            continue
        model_name, version_name = serial.split("-")
        # A version deleted while orders waited for it comes back, so they are not lost.
        model, _ = Model.objects.get_or_create(name=model_name)
        order.version, _ = Version.objects.get_or_create(model=model, name=version_name)
        order.robot_serial = serial
        notice = Notice.objects.filter(order=order).order_by("-created_at", "-pk").first()
        if order.is_notified:
            order.notice = "sent"
            order.notified_at = notice.sent_at if notice else order.updated_at
        elif notice and notice.state in ("pending", "sending"):
            order.notice = "due"
            order.attempts = notice.attempts
            order.next_attempt_at = notice.next_attempt_at if notice.state == "pending" else now
            order.last_error = notice.last_error
        elif notice and notice.state == "failed" and notice.created_at >= order.updated_at:
            order.notice = "failed"
            order.attempts = notice.attempts
            order.last_error = notice.last_error
        elif Robot.objects.filter(serial=serial).exists():
            order.notice = "due"  # in stock, never queued (an order made in the admin)
        else:
            order.notice = "waiting"
        order.placed_at = order.updated_at
        order.save()


class Migration(migrations.Migration):
    dependencies = [("orders", "0002_order_notice_fields")]

    operations = [migrations.RunPython(move_notices_onto_orders, migrations.RunPython.noop)]
