"""Forgetting a customer, and the worker forgetting old notices: what R4C keeps, and for how long."""

from datetime import timedelta

from django.apps import apps
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.db import models
from django.test import TestCase, override_settings
from django.utils import timezone

from customers.models import Customer
from orders.mail.outbox import purge
from orders.models import Order, RateCounter, StopLink
from orders.tests.smtp import smtp_server
from R4C.tests.world import catalog, deliver_before, drain, place, produce


def mentions(text: str) -> list[str]:
    """Every text column, of every table R4C and Django keep, that contains `text`."""
    found = []
    for model in apps.get_models():
        for field in model._meta.concrete_fields:
            if isinstance(field, (models.CharField, models.TextField, models.JSONField)):
                lookup = f"{field.attname}__icontains"
                if model._base_manager.filter(**{lookup: text}).exists():
                    found.append(f"{model._meta.label}.{field.attname}")
    return found


@override_settings(SITE_URL="https://r4c.example.com", ORDER_LIMIT_PER_EMAIL=5)
class ForgetCustomerTests(TestCase):
    def setUp(self):
        catalog()
        self.admin = User.objects.create_superuser("boss", password="a-long-passphrase")
        self.client.force_login(self.admin)
        # A notice sent (with its stop link), an order placed in the admin (which logs it),
        # an order placed over the API (which counts the address for its limit).
        place("R2-D2", "Ann@Example.com")
        produce("R2-D2")
        with smtp_server():
            drain()
        self.client.post(
            "/admin/orders/order/add/", {"email": "ann@example.com", "serial": "13-XS"}
        )
        self.client.post("/create_order/", {"email": "ann@example.com", "robot-serial": "R2-A1"})
        place("R2-A1", "bob@example.com")
        assert mentions("ann@example.com"), "the world has no trace to erase"

    def test_the_command_leaves_no_trace_of_the_address(self):
        call_command("forget_customer", "ANN@example.com")

        self.assertEqual(mentions("ann@example.com"), [])
        self.assertEqual(Order.objects.count(), 1)  # Bob's
        self.assertEqual(Customer.objects.get().email, "bob@example.com")
        self.assertFalse(StopLink.objects.exists())
        self.assertFalse(RateCounter.objects.filter(bucket__contains="ann").exists())

    def test_the_admin_action_leaves_no_trace_of_the_address_nor_logs_it(self):
        ann = Customer.objects.get(email_key="ann@example.com")

        response = self.client.post(
            "/admin/customers/customer/",
            {"action": "forget", "_selected_action": [ann.pk]},
            follow=True,
        )

        self.assertContains(response, "Забыто покупателей: 1.")
        self.assertEqual(mentions("ann@example.com"), [])
        self.assertTrue(Customer.objects.filter(email="bob@example.com").exists())

    def test_an_unknown_or_invalid_address_is_an_error_and_changes_nothing(self):
        for address in ["cid@example.com", "not an address"]:
            with self.subTest(address=address), self.assertRaises(CommandError):
                call_command("forget_customer", address)
        self.assertEqual(Customer.objects.count(), 2)
        self.assertEqual(Order.objects.count(), 4)


@override_settings(NOTICE_RETENTION_DAYS=30)
class RetentionTests(TestCase):
    def test_the_worker_forgets_notices_done_with_long_ago_and_customers_left_with_none(self):
        catalog()
        place("R2-D2", "old@example.com", "new@example.com")
        place("R2-A1", "waits@example.com", "new@example.com")
        long_ago = timezone.now() - timedelta(days=31)
        Order.objects.filter(robot_serial="R2-D2").update(
            state="sent", notified_at=timezone.now() - timedelta(days=1)
        )
        Order.objects.filter(customer__email="old@example.com").update(notified_at=long_ago)
        Customer.objects.update(created_at=long_ago)

        self.assertEqual(purge(), 1)

        self.assertEqual(
            sorted(Order.objects.values_list("customer__email", "robot_serial")),
            [
                ("new@example.com", "R2-A1"),
                ("new@example.com", "R2-D2"),
                ("waits@example.com", "R2-A1"),  # waiting orders stay, however old
            ],
        )
        self.assertFalse(Customer.objects.filter(email="old@example.com").exists())


class ForgottenWhileSentTests(TestCase):
    def test_a_customer_forgotten_while_their_notice_is_claimed_is_not_mailed_the_rest_go(self):
        catalog()
        place("R2-D2", "ann@example.com", "bob@example.com", "cid@example.com")
        produce("R2-D2")

        def forget_bob(order):
            if order.customer.email == "ann@example.com":  # bob's is claimed, not yet sent
                call_command("forget_customer", "bob@example.com")

        with smtp_server() as server, self.assertLogs("orders.mail.worker", "INFO") as logs:
            deliver_before(forget_bob)

        self.assertEqual(server.recipients(), ["ann@example.com", "cid@example.com"])
        self.assertEqual(set(Order.objects.values_list("state", flat=True)), {"sent"})
        self.assertTrue(any("deleted (its customer forgotten)" in line for line in logs.output))
        self.assertFalse(any("lease" in line for line in logs.output))
