"""The public endpoint cannot be used to flood the factory or a customer's mailbox."""

import re
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from ipaddress import ip_network

from django.db import connection
from django.test import Client, TestCase, TransactionTestCase, override_settings

from customers.models import Customer
from orders.models import Order, RateCounter, State
from orders.tests.smtp import smtp_server
from R4C.tests.problem import ProblemAssertions
from R4C.tests.world import catalog, drain, produce

PROXIES = [ip_network("127.0.0.1"), ip_network("10.0.0.0/8")]


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

    @override_settings(ORDER_LIMIT_PER_CLIENT=3)
    def test_over_nginx_s_socket_a_client_counts_as_the_address_nginx_saw(self):
        # Whatever each wrote in X-Forwarded-For, nginx saw them all from one address; two
        # customers elsewhere are two other clients, not one shared "unknown" bucket.
        written = ["unknown", "203.0.113.5:51234", "[2001:db8::1]:443", "unknown"]
        statuses = [
            order(
                Client(REMOTE_ADDR="", HTTP_X_REAL_IP="198.51.100.7"),
                f"w{n}@example.com",
                X_Forwarded_For=f"{header}, 198.51.100.7",
            ).status_code
            for n, header in enumerate(written)
        ]
        self.assertEqual(statuses, [201, 201, 201, 429])
        self.orders = Order.objects.count()
        for n in (8, 9):
            elsewhere = Client(REMOTE_ADDR="", HTTP_X_REAL_IP=f"198.51.100.{n}")
            response = order(elsewhere, f"x{n}@example.com", X_Forwarded_For="unknown")
            self.assertEqual(response.status_code, 201)

    @override_settings(ORDER_LIMIT_PER_EMAIL=2)
    def test_an_email_address_may_be_ordered_for_so_often_in_ten_minutes(self):
        self.assertEqual(order(self.client, "ann@example.com").status_code, 201)
        self.assertEqual(order(Client(REMOTE_ADDR="10.0.0.2"), "ANN@example.com").status_code, 200)
        response = order(Client(REMOTE_ADDR="10.0.0.3"), "ann@EXAMPLE.com")
        self.assert_too_many(response, 600)
        self.assertEqual(order(self.client, "bob@example.com").status_code, 201)

    @override_settings(ORDER_LIMIT_PER_CLIENT=1, TRUSTED_PROXIES=PROXIES)
    def test_behind_a_trusted_proxy_the_client_is_the_address_it_saw(self):
        # The proxy appends the address it saw; whatever the client wrote stays on the left.
        first = order(self.client, "a@example.com", X_Forwarded_For="1.1.1.1")
        spoofed = order(self.client, "b@example.com", X_Forwarded_For="9.9.9.9, 1.1.1.1")
        # Through two proxies of ours (the local one, and one in 10.0.0.0/8).
        chained = order(self.client, "c@example.com", X_Forwarded_For="1.1.1.1, 10.2.3.4")
        other = order(self.client, "d@example.com", X_Forwarded_For="2.2.2.2")

        self.assertEqual(first.status_code, 201)
        self.assert_too_many(spoofed, 60)
        self.assert_too_many(chained, 60)
        self.assertEqual(other.status_code, 201)
        self.assertEqual(Customer.objects.count(), 2)

    @override_settings(ORDER_LIMIT_PER_CLIENT=1, TRUSTED_PROXIES=PROXIES)
    def test_a_malformed_or_oversized_forwarded_header_counts_as_the_connection(self):
        self.assertEqual(order(self.client, "a@example.com").status_code, 201)  # the proxy's
        for header in ["not-an-ip", "1.1.1.1, ", "1.1.1.1, 300.1.1.1", "1.1.1.1," * 200]:
            with self.subTest(header=header[:20]):
                self.assert_too_many(
                    order(self.client, "b@example.com", X_Forwarded_For=header), 60
                )

    @override_settings(ORDER_LIMIT_PER_CLIENT=1)
    def test_without_a_trusted_proxy_the_header_is_anyone_s_to_write(self):
        self.assertEqual(order(self.client, "a@example.com").status_code, 201)
        response = order(self.client, "b@example.com", X_Forwarded_For="7.7.7.7")
        self.assert_too_many(response, 60)

    @override_settings(ORDER_LIMIT_PER_CLIENT=3)
    def test_one_ipv6_64_is_one_client(self):
        statuses = [
            order(Client(REMOTE_ADDR=f"2001:db8:aa:bb:{n:x}::1"), f"v{n}@example.com").status_code
            for n in range(6)
        ]
        self.assertEqual(statuses, [201, 201, 201, 429, 429, 429])
        elsewhere = Client(REMOTE_ADDR="2001:db8:aa:bc::1")
        self.assertEqual(order(elsewhere, "w@example.com").status_code, 201)
        mapped = Client(REMOTE_ADDR="::ffff:192.0.2.1")  # IPv4 over IPv6 is that IPv4 address
        self.assertEqual(order(mapped, "x@example.com").status_code, 201)
        self.assertEqual(order(Client(REMOTE_ADDR="192.0.2.1"), "y@example.com").status_code, 201)

    @override_settings(ORDER_LIMIT_PER_CLIENT=4, ORDER_LIMIT_PER_EMAIL=2)
    def test_every_answer_tells_the_limit_nearest_to_being_reached(self):
        def limit(response):
            policy, state = response["RateLimit-Policy"], response["RateLimit"]
            name, remaining, reset = re.fullmatch(r'"(\w+)";r=(\d+);t=(\d+)', state).groups()
            return policy, name, int(remaining), int(reset)

        # A request the form refuses counts only for its client.
        response = order(self.client, "not an address")
        policy, name, remaining, reset = limit(response)
        self.assertEqual(policy, '"client";q=4;w=60')
        self.assertEqual((name, remaining), ("client", 3))
        self.assertTrue(1 <= reset <= 60)

        # A placed order counts for the address too; the client has 2 left, the address 1.
        response = order(self.client, "ann@example.com")
        self.assertEqual(response.status_code, 201)
        policy, name, remaining, _ = limit(response)
        self.assertEqual(policy, '"client";q=4;w=60, "email";q=2;w=600')
        self.assertEqual((name, remaining), ("email", 1))

        order(self.client, "ann@example.com")
        response = order(self.client, "ann@example.com")  # the address's third
        self.orders = 1
        self.assert_too_many(response, 600)
        self.assertEqual(limit(response)[1:3], ("email", 0))
        self.assertEqual(limit(response)[3], int(response["Retry-After"]))

        response = order(self.client, "bob@example.com")  # the client's fifth
        self.assert_too_many(response, 60)
        # Counted for its client and its address at once: over the client's limit.
        self.assertEqual(
            limit(response)[:3], ('"client";q=4;w=60, "email";q=2;w=600', "client", 0)
        )
        # A browser's page is limited alike, and says so alike.
        page = order(self.client, "bob@example.com", Accept="text/html")
        self.assertEqual(page.status_code, 429)
        self.assertEqual(limit(page)[1:3], ("client", 0))

    def test_with_no_limits_no_answer_speaks_of_them(self):
        response = order(self.client, "ann@example.com")
        self.assertEqual(response.status_code, 201)
        self.assertFalse(response.has_header("RateLimit-Policy"))
        self.assertFalse(response.has_header("RateLimit"))


ONE_INBOX = [f"bomb+{n}@gmail.com" for n in range(8)] + [
    "b.omb@gmail.com",
    "bo.mb@gmail.com",
    "bomb@googlemail.com",
    "B.O.M.B+x@GoogleMail.com",
]


class OneInboxTests(ProblemAssertions, TestCase):
    """Tags and gmail's dots make many addresses of one inbox: limits count it once."""

    def setUp(self):
        catalog()
        clear_of_a_window_edge()

    def assert_nothing_written(self):
        pass

    @override_settings(ORDER_LIMIT_PER_EMAIL=5)
    def test_the_per_address_limit_counts_one_inbox_once(self):
        statuses = [order(self.client, email).status_code for email in ONE_INBOX]
        self.assertEqual(statuses, [201] * 5 + [429] * 7)
        self.assertEqual(order(self.client, "other@gmail.com").status_code, 201)

    @override_settings(NOTICE_DAILY_CAP=3)
    def test_the_daily_cap_counts_one_inbox_once_and_delivery_keeps_each_address(self):
        produce("R2-D2")
        with smtp_server() as server:
            for email in ONE_INBOX:
                self.assertIn(order(self.client, email).status_code, (200, 201))
                drain()
        self.assertEqual(server.recipients(), sorted(ONE_INBOX[:3]))
        self.assertEqual(Order.objects.filter(state=State.WAITING).count(), 9)


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
