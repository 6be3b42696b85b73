"""The public endpoint cannot be used to flood the factory or a customer's mailbox."""

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from django.db import connection
from django.test import Client, TestCase, TransactionTestCase, override_settings

from customers.models import Customer
from orders.models import Order, RateCounter
from R4C.tests.problem import ProblemAssertions
from R4C.tests.world import catalog


def clear_of_a_window_edge():
    """Limits count in fixed windows: start a test well inside a minute, not at its end."""
    into = time.time() % 60
    if into > 55:
        time.sleep(60 - into + 0.1)


def order(client, email, **headers):
    return client.post(
        "/create_order/", {"email": email, "robot-serial": "R2-D2"}, headers=headers
    )


class LimitTests(ProblemAssertions, TestCase):
    def setUp(self):
        catalog()
        clear_of_a_window_edge()

    def assert_nothing_written(self):
        self.assertEqual(Order.objects.count(), self.orders)

    def assert_too_many(self, response, window):
        self.orders = Order.objects.count()
        self.assert_problem(response, 429)
        self.assertTrue(1 <= int(response["Retry-After"]) <= window)

    @override_settings(ORDER_LIMIT_PER_CLIENT=3)
    def test_a_client_address_may_place_so_many_orders_a_minute(self):
        for n in range(3):
            self.assertEqual(order(self.client, f"c{n}@example.com").status_code, 201)
        self.assert_too_many(order(self.client, "c3@example.com"), 60)
        # X-Forwarded-For is anyone's to write: with no proxy trusted it changes nothing.
        response = order(self.client, "c4@example.com", X_Forwarded_For="10.9.9.9")
        self.assert_too_many(response, 60)

        RateCounter.objects.update(
            window_start=RateCounter.objects.get().window_start - timedelta(minutes=1)
        )
        self.assertEqual(order(self.client, "c5@example.com").status_code, 201)

    @override_settings(ORDER_LIMIT_PER_EMAIL=2)
    def test_an_email_address_may_be_ordered_for_so_often_in_ten_minutes(self):
        self.assertEqual(order(self.client, "ann@example.com").status_code, 201)
        self.assertEqual(order(Client(REMOTE_ADDR="10.0.0.2"), "ANN@example.com").status_code, 200)
        response = order(Client(REMOTE_ADDR="10.0.0.3"), "ann@EXAMPLE.com")
        self.assert_too_many(response, 600)
        self.assertEqual(order(self.client, "bob@example.com").status_code, 201)

    @override_settings(ORDER_LIMIT_PER_CLIENT=1, TRUSTED_PROXIES=1)
    def test_behind_a_trusted_proxy_the_client_is_the_address_it_saw(self):
        # The proxy appends the address it saw; whatever the client wrote stays on the left.
        first = order(self.client, "a@example.com", X_Forwarded_For="1.1.1.1")
        spoofed = order(self.client, "b@example.com", X_Forwarded_For="9.9.9.9, 1.1.1.1")
        other = order(self.client, "c@example.com", X_Forwarded_For="2.2.2.2")

        self.assertEqual(first.status_code, 201)
        self.assert_too_many(spoofed, 60)
        self.assertEqual(other.status_code, 201)
        self.assertEqual(Customer.objects.count(), 2)


class ParallelLimitTests(TransactionTestCase):
    @override_settings(ORDER_LIMIT_PER_CLIENT=5)
    def test_parallel_requests_are_all_counted(self):
        catalog()
        clear_of_a_window_edge()

        def place(n):
            try:
                return order(Client(), f"p{n}@example.com").status_code
            finally:
                connection.close()

        with ThreadPoolExecutor(max_workers=10) as pool:
            statuses = sorted(pool.map(place, range(10)))

        self.assertEqual(statuses, [201] * 5 + [429] * 5)
        self.assertEqual(Order.objects.count(), 5)
