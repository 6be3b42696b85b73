from django.contrib.auth.models import User
from django.test import TestCase

from customers.models import Customer
from orders.models import Arrival, Order
from R4C.tests.world import catalog, mail_gone_out, place, produce


class OrderAdminTests(TestCase):
    def setUp(self):
        catalog()
        self.client.force_login(User.objects.create_superuser("boss", "boss@r4c.test", "pw"))

    def add_order(self, email, serial):
        return self.client.post("/admin/orders/order/add/", {"email": email, "serial": serial})

    def test_orders_filter_by_notice_and_search_by_email_and_serial(self):
        [ann] = place("R2-D2", "ann@example.com")
        place("13-XS", "bob@example.com")
        Order.objects.filter(pk=ann.pk).update(state="sent")

        response = self.client.get("/admin/orders/order/", {"state__exact": "waiting"})
        self.assertContains(response, "bob@example.com")
        self.assertNotContains(response, "ann@example.com")

        response = self.client.get("/admin/orders/order/", {"q": "ANN@"})
        self.assertContains(response, "ann@example.com")
        self.assertNotContains(response, "bob@example.com")

        response = self.client.get("/admin/orders/order/", {"q": "13-XS"})
        self.assertContains(response, "bob@example.com")
        self.assertNotContains(response, "ann@example.com")

    def test_customers_are_listed_and_searched_by_email(self):
        place("R2-D2", "ann@example.com", "bob@example.com")
        response = self.client.get("/admin/customers/customer/", {"q": "bob"})
        self.assertContains(response, "bob@example.com")
        self.assertNotContains(response, "ann@example.com")

    def test_an_order_made_in_the_admin_follows_the_rules_of_the_api(self):
        produce("R2-D2")

        response = self.add_order("Ann@Example.com", "r2-d2")

        self.assertEqual(response.status_code, 302)
        order = Order.objects.get()
        self.assertEqual(
            (order.customer.email, order.robot_serial, order.state),
            ("Ann@example.com", "R2-D2", "due"),  # in stock: queued at once
        )

    def test_an_order_made_in_the_admin_finds_the_customer_by_address(self):
        place("R2-D2", "ann@example.com")
        self.assertEqual(self.add_order("ANN@example.com", "R2-A1").status_code, 302)
        self.assertEqual(Customer.objects.count(), 1)
        self.assertEqual(Order.objects.count(), 2)

    def test_the_admin_refuses_orders_the_api_would_refuse(self):
        for email, serial, error in [
            ("ann@example.com", "ZZ-ZZ", "The catalog has no robot ZZ-ZZ."),
            ("ann@example.com", "R2/D2", "Must be a serial MODEL-VERSION"),
            ("ann@exa\u200bmple.com", "R2-D2", "unsafe characters"),
        ]:
            with self.subTest(email=email, serial=serial):
                response = self.add_order(email, serial)
                self.assertEqual(response.status_code, 200)
                self.assertContains(response, error)
        self.assertFalse(Order.objects.exists())
        self.assertFalse(Customer.objects.exists())

    def test_placed_orders_are_read_only(self):
        [order] = place("R2-D2", "ann@example.com")
        response = self.client.post(
            f"/admin/orders/order/{order.pk}/change/", {"robot_serial": "ZZ-ZZ"}
        )
        self.assertEqual(response.status_code, 403)
        self.assertEqual(Order.objects.get().robot_serial, "R2-D2")

    def test_an_order_s_page_says_only_what_is_so_with_the_list_s_labels(self):
        orders = mail_gone_out()
        sent = self.client.get(f"/admin/orders/order/{orders['ann@example.com'].pk}/change/")
        retrying = self.client.get(f"/admin/orders/order/{orders['later@example.com'].pk}/change/")

        # A notice that went needs no next attempt; one that waits to retry has one.
        self.assertNotContains(sent, "Следующая попытка")
        self.assertContains(retrying, "Следующая попытка")
        # The robot is called so here as in the list, and each attempt is said in Russian.
        self.assertContains(sent, "<label>Робот:</label>", html=True)
        self.assertNotContains(sent, "Версия:")
        self.assertContains(sent, "— принято (250)")
        self.assertNotRegex(sent.content.decode(), r"\b(sent|retry|failed)\b")

    def test_an_order_cannot_be_deleted_but_its_customer_can_be_forgotten(self):
        [order] = place("R2-D2", "ann@example.com")
        response = self.client.post(f"/admin/orders/order/{order.pk}/delete/", {"post": "yes"})
        self.assertEqual(response.status_code, 403)
        response = self.client.post(
            "/admin/orders/order/", {"action": "delete_selected", "_selected_action": [order.pk]}
        )
        self.assertTrue(Order.objects.exists())
        customer = order.customer
        response = self.client.post(
            "/admin/customers/customer/", {"action": "forget", "_selected_action": [customer.pk]}
        )
        self.assertEqual(response.status_code, 302)
        self.assertFalse(Order.objects.exists())

    def test_the_outbox_backlog_is_visible_and_read_only(self):
        place("R2-D2", "ann@example.com")
        produce("R2-D2")

        response = self.client.get("/admin/orders/arrival/")
        self.assertContains(response, "R2-D2")
        arrival = Arrival.objects.get()
        response = self.client.post(f"/admin/orders/arrival/{arrival.pk}/delete/", {"post": "yes"})
        self.assertEqual(response.status_code, 403)
        self.assertTrue(Arrival.objects.exists())

    def test_the_customer_admin_refuses_a_mailbox_twice_or_an_undeliverable_address(self):
        place("R2-D2", "ann@example.com")
        for email, error in [
            ("ANN@example.com", "exists already"),
            ("ann@exa\u200bmple.com", "unsafe characters"),
            ("Ann <ann@example.org>", "email address"),
        ]:
            with self.subTest(email=email):
                response = self.client.post("/admin/customers/customer/add/", {"email": email})
                self.assertEqual(response.status_code, 200)
                self.assertContains(response, error)
        self.assertEqual(
            list(Customer.objects.values_list("email", flat=True)), ["ann@example.com"]
        )
