from django.contrib.auth.models import User
from django.test import TestCase

from customers.models import Customer
from orders.models import Order


class OrderAdminTests(TestCase):
    def setUp(self):
        self.client.force_login(User.objects.create_superuser("boss", "boss@r4c.test", "pw"))
        ann = Customer.objects.create(email="ann@example.com")
        bob = Customer.objects.create(email="bob@example.com")
        Order.objects.create(customer=ann, robot_serial="R2-D2", is_notified=True)
        Order.objects.create(customer=bob, robot_serial="13-XS")

    def test_orders_filter_by_notified_and_search_by_email_and_serial(self):
        response = self.client.get("/admin/orders/order/", {"is_notified__exact": "0"})
        self.assertContains(response, "bob@example.com")
        self.assertNotContains(response, "ann@example.com")

        response = self.client.get("/admin/orders/order/", {"q": "ann@"})
        self.assertContains(response, "ann@example.com")
        self.assertNotContains(response, "bob@example.com")

        response = self.client.get("/admin/orders/order/", {"q": "13-XS"})
        self.assertContains(response, "bob@example.com")
        self.assertNotContains(response, "ann@example.com")

    def test_customers_are_listed_and_searched_by_email(self):
        response = self.client.get("/admin/customers/customer/", {"q": "bob"})
        self.assertContains(response, "bob@example.com")
        self.assertNotContains(response, "ann@example.com")
