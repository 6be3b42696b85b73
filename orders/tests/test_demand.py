"""The demand page: what customers wait for, counted as a manager would count it by hand."""

from datetime import timedelta

from django.contrib.auth.models import User
from django.db import connection
from django.test import TestCase
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from orders.models import Order, demand
from R4C.tests.world import catalog, place, produce


class DemandTests(TestCase):
    def setUp(self):
        catalog()
        now = timezone.now()
        self.now = now
        place("R2-D2", "a@example.com", "b@example.com", "c@example.com")
        place("R2-A1", "d@example.com")
        place("13-XS", "e@example.com", "f@example.com", "g@example.com")
        # Placed at known moments; two R2-D2 orders were notified, one of them long ago.
        for email, days in [("a", 5), ("b", 3), ("c", 1), ("d", 9)]:
            Order.objects.filter(customer__email=f"{email}@example.com").update(
                placed_at=now - timedelta(days=days)
            )
        Order.objects.filter(customer__email__in=["e@example.com", "f@example.com"]).update(
            state="sent", notified_at=now - timedelta(days=2)
        )
        Order.objects.filter(customer__email="g@example.com").update(
            state="sent", notified_at=now - timedelta(days=8)
        )
        produce("R2-A1")  # in stock; its order still waits for the worker

    def test_it_counts_who_waits_since_when_and_who_was_notified_this_week(self):
        with CaptureQueriesContext(connection) as queries:
            rows = demand(self.now)

        self.assertEqual(len(queries), 1)
        self.assertEqual(
            [
                (r["robot_serial"], r["waiting"], r["oldest"], r["notified_week"], r["in_stock"])
                for r in rows
            ],
            [
                ("R2-D2", 3, self.now - timedelta(days=5), 0, False),
                ("R2-A1", 1, self.now - timedelta(days=9), 0, True),
                ("13-XS", 0, None, 2, False),
            ],
        )

    def test_managers_see_it_in_the_admin_and_others_are_sent_to_sign_in(self):
        response = self.client.get("/admin/demand/")
        self.assertRedirects(response, "/admin/login/?next=/admin/demand/")

        staff = User.objects.create_user("manager", password="x", is_staff=True)
        self.client.force_login(staff)
        response = self.client.get("/admin/demand/")

        self.assertContains(response, "<td>R2-D2</td>\n        <td>3</td>", html=False)
        self.assertEqual(
            [row["robot_serial"] for row in response.context["rows"]], ["R2-D2", "R2-A1", "13-XS"]
        )
        home = self.client.get("/admin/")
        self.assertContains(home, 'href="/admin/demand/"')
