import os
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from unittest import skipUnless

import psycopg
from django.core import mail
from django.core.management import call_command
from django.db import connection
from django.test import Client, TestCase, TransactionTestCase, override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from customers.models import Customer
from orders.mail import outbox
from orders.models import Order
from R4C.tests.problem import ProblemAssertions
from R4C.tests.world import catalog, database_url, produce
from robots.models import Version

BOUNDARY = "r4cboundary"


# Where Debian's PostgreSQL (this machine's, and CI's) writes its server log.
POSTGRESQL_LOG = next(Path("/var/log/postgresql").glob("postgresql-*-main.log"), Path("/-"))
if connection.vendor != "postgresql":
    POSTGRESQL_LOG = Path("/-")


class CreateOrderTests(ProblemAssertions, TestCase):
    def setUp(self):
        catalog()

    def order(self, email="ann@example.com", serial="R2-D2", **kwargs):
        return self.client.post(
            "/create_order/", {"email": email, "robot-serial": serial}, **kwargs
        )

    def assert_nothing_written(self):
        self.assertEqual(Customer.objects.count(), 0)
        self.assertEqual(Order.objects.count(), 0)

    def test_a_new_order_answers_201_and_waits_for_the_robot(self):
        response = self.order()

        self.assertEqual(response.status_code, 201)
        order = Order.objects.get()
        self.assertEqual(
            response.json(),
            {
                "id": order.id,
                "email": "ann@example.com",
                "robot_serial": "R2-D2",
                "is_notified": False,
                "in_stock": False,
                "last_notified_at": None,
            },
        )
        self.assertEqual(order.state, "waiting")

    def test_urlencoded_forms_are_taken_too(self):
        response = self.client.post(
            "/create_order/",
            "email=ann%40example.com&robot-serial=R2-D2",
            content_type="application/x-www-form-urlencoded",
        )
        self.assertEqual(response.status_code, 201)

    def test_the_same_address_in_another_case_is_the_same_customer(self):
        self.order(email="Ann@Example.com", serial="R2-D2")
        response = self.order(email="  ann@example.COM ", serial="r2-a1")

        self.assertEqual(response.status_code, 201)
        self.assertEqual(response.json()["robot_serial"], "R2-A1")
        # The domain is lower-cased; the rest stays as first given.
        self.assertEqual(
            list(Customer.objects.values_list("email", flat=True)), ["Ann@example.com"]
        )
        self.assertEqual(Order.objects.count(), 2)

    def test_placing_an_order_again_renews_it_with_200(self):
        first = self.order().json()
        Order.objects.update(state="sent")

        response = self.order(email="ANN@example.com")

        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.json()["id"], first["id"])
        self.assertFalse(response.json()["is_notified"])
        self.assertFalse(Order.objects.get().is_notified)

    def test_a_robot_in_stock_is_notified_at_once_through_the_worker(self):
        produce("R2-D2")

        response = self.order()

        self.assertEqual(response.status_code, 201)
        self.assertTrue(response.json()["in_stock"])
        self.assertEqual(Order.objects.get().state, "due")
        self.assertEqual(mail.outbox, [])  # the request itself never mails
        call_command("send_notices", "--once")
        [message] = mail.outbox
        self.assertEqual(message.to, ["ann@example.com"])
        self.assertTrue(Order.objects.get().is_notified)

    @override_settings(NOTICE_REPEAT_HOURS=0)
    def test_a_renewed_order_in_stock_is_notified_again_when_repeats_are_allowed(self):
        produce("R2-D2")
        self.order()
        call_command("send_notices", "--once")

        self.assertEqual(self.order().status_code, 200)
        call_command("send_notices", "--once")

        self.assertEqual(len(mail.outbox), 2)
        self.assertTrue(Order.objects.get().is_notified)

    def test_placing_an_order_twice_before_the_mail_goes_mails_once(self):
        produce("R2-D2")
        self.order()
        self.order()
        call_command("send_notices", "--once")

        self.assertEqual(len(mail.outbox), 1)

    def test_it_rejects_missing_fields(self):
        response = self.client.post("/create_order/", {"email": "ann@example.com"})
        self.assert_problem(response, 400, "robot-serial")
        response = self.client.post("/create_order/", {"robot-serial": "R2-D2"})
        self.assert_problem(response, 400, "email")
        response = self.client.post("/create_order/", {"robot_serial": "R2-D2", "email": "a@b.c"})
        self.assert_problem(response, 400, "robot-serial")

    def test_it_rejects_addresses_that_are_not_one_mailbox(self):
        for email in [
            "ann",
            "ann@",
            "@example.com",
            "ann@example.com, bob@example.com",
            "Ann <ann@example.com>",
            "ann@example.com\r\nBcc: everyone@example.com",
            "ann@example.com\nSubject: hi",
            "a" * 250 + "@example.com",
            "ann@localhost",
            "ann@[127.0.0.1]",
            '"ann smith"@example.com',
        ]:
            with self.subTest(email=email[:40]):
                self.assert_problem(self.order(email=email), 400, "email")

    def test_it_rejects_serials_that_are_malformed_or_not_in_the_catalog(self):
        for serial in ["R2D2", "R2-", "R2-D2-", "R2_D2", "R-2D2", "R2-Д2", "R2-D2" * 200]:
            with self.subTest(serial=serial[:20]):
                self.assert_problem(self.order(serial=serial), 400, "robot-serial")
        problem = self.assert_problem(self.order(serial="X9-Z9"), 400, "robot-serial")
        self.assertEqual(problem["errors"]["robot-serial"], ["The catalog has no robot X9-Z9."])

    def test_an_order_for_a_version_renamed_elsewhere_a_moment_ago_is_refused(self):
        # This process looks the serial up (a bad address: nothing is placed), then another
        # renames the version, which no order nor robot goes by yet.
        self.assert_problem(self.order(email="not an address", serial="R2-A1"), 400, "email")
        Version.objects.filter(name="A1").update(name="A3")  # no signal: another process
        problem = self.assert_problem(self.order(serial="R2-A1"), 400, "robot-serial")
        self.assertEqual(problem["errors"]["robot-serial"], ["The catalog has no robot R2-A1."])
        self.assert_nothing_written()
        # Looked up afresh, the new name is taken.
        self.assertEqual(self.order(serial="R2-A3").status_code, 201)

    def test_an_order_for_a_version_made_anew_elsewhere_a_moment_ago_is_placed(self):
        # Another process deletes R2-A1 and makes it anew (no signal reaches this one, which
        # still remembers the old row): the order goes by the new one.
        self.assert_problem(self.order(email="not an address", serial="R2-A1"), 400, "email")
        old = Version.objects.get(name="A1")
        Version.objects.filter(pk=old.pk)._raw_delete(Version.objects.db)
        [new] = Version.objects.bulk_create([Version(model=old.model, name="A1")])
        self.assertEqual(self.order(serial="R2-A1").status_code, 201)
        self.assertEqual(Order.objects.get().version_id, new.pk)

    def test_it_rejects_broken_multipart(self):
        bodies = [
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="email"\r\n\r\nann@e',
            "no boundary here at all",
            f"--{BOUNDARY}\r\nContent-Disposition: form-data\r\n\r\nx\r\n--{BOUNDARY}--",
        ]
        for body in bodies:
            with self.subTest(body=body[:30]):
                response = self.client.post(
                    "/create_order/",
                    body,
                    content_type=f"multipart/form-data; boundary={BOUNDARY}",
                )
                self.assert_problem(response, 400)
        response = self.client.post(
            "/create_order/", "email=a", content_type="multipart/form-data"
        )
        self.assert_problem(response, 400)

    def test_it_refuses_a_body_over_the_size_limit(self):
        body = "email=ann%40example.com&robot-serial=R2-D2&padding=" + "x" * 8 * 1024
        response = self.client.post(
            "/create_order/", body, content_type="application/x-www-form-urlencoded"
        )
        self.assert_problem(response, 413)

    def test_it_refuses_a_file_part_before_storing_any_of_it(self):
        body = (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="email"\r\n\r\n'
            f"ann@example.com\r\n--{BOUNDARY}\r\n"
            'Content-Disposition: form-data; name="robot-serial"; filename="r.txt"\r\n'
            f"Content-Type: text/plain\r\n\r\nR2-D2\r\n--{BOUNDARY}--\r\n"
        )
        response = self.client.post(
            "/create_order/", body, content_type=f"multipart/form-data; boundary={BOUNDARY}"
        )
        problem = self.assert_problem(response, 400)
        self.assertIn("no files", problem["detail"])
        # A browser's page post is refused alike (the CSRF check reads the form first).
        response = self.client.post(
            "/create_order/",
            body,
            content_type=f"multipart/form-data; boundary={BOUNDARY}",
            headers={"Accept": "text/html"},
        )
        self.assertEqual(response.status_code, 400)

    def test_it_rejects_a_form_with_too_many_fields(self):
        body = "email=ann%40example.com&robot-serial=R2-D2" + "&f=" * 1200
        response = self.client.post(
            "/create_order/", body, content_type="application/x-www-form-urlencoded"
        )
        self.assert_problem(response, 400)

    def test_it_wants_form_data(self):
        response = self.client.post(
            "/create_order/",
            {"email": "ann@example.com", "robot-serial": "R2-D2"},
            content_type="application/json",
        )
        self.assert_problem(response, 415)

    def test_it_allows_only_post(self):
        for method in ["get", "put", "delete"]:
            with self.subTest(method=method):
                response = getattr(self.client, method)("/create_order/")
                self.assert_problem(response, 405)
                self.assertEqual(response["Allow"], "POST")

    def test_the_answer_reveals_nothing_stored_about_earlier_placings(self):
        produce("R2-D2")
        self.order(email="Ann@Example.com")
        call_command("send_notices", "--once")

        answer = self.order(email="ANN@example.com").json()

        self.assertEqual(answer["email"], "ANN@example.com")  # not the stored "Ann@..."
        self.assertFalse(answer["is_notified"])  # this placing's notice, not the last one's

    def test_one_mailbox_is_one_customer_whatever_its_unicode_form(self):
        spellings = [
            "ann@ka.com",
            "ann@\u212aa.com",  # KELVIN SIGN, which PostgreSQL's UPPER and LOWER disagree on
            "ＡＮＮ@ＫＡ.ＣＯＭ",  # full-width
            "ANN@KA.com",
        ]
        statuses = [self.order(email=email).status_code for email in spellings]

        self.assertEqual(statuses, [201, 200, 200, 200])
        self.assertEqual(list(Customer.objects.values_list("email", flat=True)), ["ann@ka.com"])
        self.assertEqual(Order.objects.count(), 1)

    def test_international_domains_are_kept_by_idna_2008(self):
        self.assertEqual(self.order(email="s@ß.com").status_code, 201)
        self.assertEqual(self.order(email="s@ss.com").status_code, 201)
        self.assertEqual(self.order(email="ann@İstanbul.com").status_code, 201)

        self.assertEqual(
            sorted(Customer.objects.values_list("email", "email_key")),
            [
                ("ann@i̇stanbul.com", "ann@xn--istanbul-o0e.com"),
                ("s@ss.com", "s@ss.com"),
                ("s@ß.com", "s@xn--zca.com"),
            ],
        )

    def test_it_rejects_addresses_that_could_never_be_delivered_or_would_deceive(self):
        for email in [
            "an\u200bn@example.com",  # zero-width space
            "ann@exa\u200dmple.com",  # zero-width joiner
            "ann\u202e@example.com",  # right-to-left override
            "ann@exam\u202eple.com",
            "a\x00nn@example.com",  # NUL
            "a\x07nn@example.com",  # BEL
            "ann@\u0378.com",  # unassigned
            "İnci@example.com",  # non-ASCII before @: no SMTP server must take it
            "ann@example",  # no top-level domain
        ]:
            with self.subTest(email=email):
                problem = self.assert_problem(self.order(email=email), 400, "email")
                self.assertTrue(problem["errors"]["email"][0])


@skipUnless(connection.vendor == "postgresql", "NOTIFY is PostgreSQL's")
class WakeTests(TransactionTestCase):
    """A placing that makes a notice due, or brings forward one that waits to retry, wakes
    the worker at commit (the order's triggers: SQLite's worker polls instead)."""

    def test_what_a_listening_worker_hears_of_placings(self):
        catalog()
        produce("R2-D2")
        listener = psycopg.connect(database_url(), autocommit=True)
        self.addCleanup(listener.close)
        listener.execute(f"LISTEN {outbox.CHANNEL}")

        def woken(email: str, serial: str = "R2-D2") -> bool:
            order = {"email": email, "robot-serial": serial}
            self.assertIn(Client().post("/create_order/", order).status_code, (200, 201))
            return any(listener.notifies(timeout=0.5))

        self.assertTrue(woken("ann@example.com"))  # in stock: due at once
        self.assertFalse(woken("bob@example.com", "R2-A1"))  # none in stock: waits
        self.assertFalse(woken("ann@example.com"))  # due already: it is on its way
        # Ann's notice met a busy server and waits 30 s to retry; she asks again.
        later = timezone.now() + timedelta(seconds=30)
        Order.objects.filter(customer__email="ann@example.com").update(next_attempt_at=later)
        self.assertTrue(woken("ann@example.com"))
        ann = Order.objects.get(customer__email="ann@example.com")
        self.assertEqual(ann.state, "due")
        self.assertLessEqual(ann.next_attempt_at, timezone.now())


class ParallelPlacingTests(TransactionTestCase):
    def test_eight_placings_of_one_mailbox_in_four_spellings_make_one_customer(self):
        catalog()
        spellings = ["ann@ka.com", "ANN@KA.COM", "ann@\u212aa.com", "ａｎｎ@ｋａ.ｃｏｍ"] * 2
        serials = ["R2-D2", "R2-A1"] * 4

        def place(email, serial):
            try:
                return Client().post("/create_order/", {"email": email, "robot-serial": serial})
            finally:
                connection.close()

        with ThreadPoolExecutor(max_workers=8) as pool:
            responses = list(pool.map(place, spellings, serials))

        self.assertEqual(sorted(r.status_code for r in responses), [200] * 6 + [201] * 2)
        self.assertEqual(Customer.objects.count(), 1)
        self.assertEqual(Order.objects.count(), 2)

    @skipUnless(os.access(POSTGRESQL_LOG, os.R_OK), "reads this machine's PostgreSQL log")
    def test_first_orders_racing_for_one_new_address_leave_it_out_of_postgresql_s_log(self):
        catalog()
        size = POSTGRESQL_LOG.stat().st_size
        serials = ["R2-D2", "R2-A1", "13-XS", "R2-D2"] * 5

        def place(serial):
            try:
                form = {"email": "racing.first@example.com", "robot-serial": serial}
                return Client().post("/create_order/", form).status_code
            finally:
                connection.close()

        with ThreadPoolExecutor(max_workers=20) as pool:
            statuses = list(pool.map(place, serials))

        self.assertEqual(sorted(statuses), [200] * 17 + [201] * 3)
        self.assertEqual(Customer.objects.count(), 1)
        with POSTGRESQL_LOG.open("rb") as log:
            log.seek(size)
            self.assertNotIn(b"racing.first", log.read())


class QueryCountTests(TestCase):
    """An order costs what its writes cost: an order, limits on, as in production, is two
    statements on PostgreSQL, each one round trip, once its serial was looked up in the last
    second, whatever is in stock, for a new customer and for one placing again:

    0. (the serial's catalog entry, for the form, unless this process looked it up lately);
    1. the client's and the address's rate counters, one upsert, on its own: a request over
       a limit is refused before it writes anything else;
    2. orders_place(…) (migration 0019): the customer's upsert, the version's lock, the
       stock, the inbox's notices today (the daily cap) and the order's upsert, one
       transaction (its trigger wakes the worker when it is due).

    On SQLite, in the process, 2. is the same two upserts (outbox.CUSTOMER and ORDER, which
    reads the stock and the cap itself), in one transaction.
    """

    def assert_cost(self, done: CaptureQueriesContext, looked_up: bool = True) -> None:
        round_trips = [q["sql"] for q in done.captured_queries if "SAVEPOINT" not in q["sql"]]
        # Exactly: what an order costs must not grow unseen.
        here = 2 if connection.vendor == "postgresql" else 3
        self.assertEqual(len(round_trips), here + (not looked_up), round_trips)
        self.assertIn("orders_ratecounter", round_trips[0 if looked_up else 1])

    @override_settings(ORDER_LIMIT_PER_CLIENT=30, ORDER_LIMIT_PER_EMAIL=5)
    def test_a_new_customer_s_order(self):
        catalog()
        produce("R2-D2")
        for serial, looked_up in [("R2-D2", False), ("R2-A1", False), ("R2-A1", True)]:
            email = f"new-{serial}-{looked_up}@example.com"
            with self.subTest(serial=serial), CaptureQueriesContext(connection) as done:
                response = self.client.post(
                    "/create_order/", {"email": email, "robot-serial": serial}
                )
            self.assertEqual(response.status_code, 201)
            self.assertEqual(response.json()["in_stock"], serial == "R2-D2")
            self.assert_cost(done, looked_up)
        self.assertEqual(
            list(Order.objects.order_by("pk").values_list("state", flat=True)),
            ["due", "waiting", "waiting"],
        )

    @override_settings(ORDER_LIMIT_PER_CLIENT=30, ORDER_LIMIT_PER_EMAIL=5)
    def test_placing_again(self):
        catalog()
        order = {"email": "ann@example.com", "robot-serial": "R2-A1"}
        self.assertEqual(self.client.post("/create_order/", order).status_code, 201)
        with CaptureQueriesContext(connection) as done:
            response = self.client.post("/create_order/", order)
        self.assertEqual(response.status_code, 200)
        self.assert_cost(done)


@skipUnless(connection.vendor == "postgresql", "an option of psycopg")
class ServerSideBindingTests(TransactionTestCase):
    def test_placing_holds_with_parameters_bound_by_the_server(self):
        # Django's documented `server_side_binding`: the server, not psycopg, binds each
        # parameter, which a query string of several statements could not take.
        catalog()
        produce("R2-D2")
        r2d2, a1 = Version.by_serial("R2-D2"), Version.by_serial("R2-A1")
        options = connection.settings_dict["OPTIONS"]
        connection.close()
        options["server_side_binding"] = True
        self.addCleanup(connection.close)
        self.addCleanup(options.pop, "server_side_binding")
        with connection.cursor() as cursor:
            self.assertEqual(type(cursor.cursor).__name__, "ServerBindingCursor")
        first = outbox.place("ann@example.com", r2d2)
        again = outbox.place("Ann@example.com", r2d2)
        waiting = outbox.place("ann@example.com", a1)
        self.assertEqual((first.created, first.in_stock), (True, True))
        self.assertEqual((again.created, again.order.pk), (False, first.order.pk))
        self.assertEqual((waiting.created, waiting.in_stock), (True, False))
        self.assertEqual(
            sorted(Order.objects.values_list("robot_serial", "state")),
            [("R2-A1", "waiting"), ("R2-D2", "due")],
        )
