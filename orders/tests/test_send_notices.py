"""The worker's unit of work: claiming, sending and recording notices."""

import io
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from django.contrib.auth.models import User
from django.core import mail
from django.core.management import call_command
from django.db import connection
from django.test import Client, TestCase, TransactionTestCase, override_settings
from django.utils import timezone

from orders.mail import outbox
from orders.mail.worker import BATCH, IdleSenders, MailConnection, send_batch
from orders.models import Arrival, Order
from orders.tests.smtp import no_smtp_server, smtp_server
from R4C.tests.world import (
    BODY,
    catalog,
    deliver_before,
    drain,
    json_log,
    place,
    produce,
    text_of,
    while_open,
)
from robots.models import Robot


def notices(*fields):
    return list(Order.objects.order_by("pk").values_list(*fields))


class NoticeTestCase(TestCase):
    def setUp(self):
        catalog()

    def post_robot(self, version="D2"):
        body = {"model": "R2", "version": version, "created": "2023-10-03 23:59:12"}
        return self.client.post("/add_robot/", json.dumps(body), content_type="application/json")


@override_settings(DEFAULT_FROM_EMAIL="R4C <robots@r4c.test>")
class NoticeContentTests(NoticeTestCase):
    def test_each_waiting_customer_gets_one_mail_of_their_own(self):
        place("R2-D2", "ann@example.com", "bob@example.com")
        place("R2-A1", "cid@example.com")

        self.assertEqual(self.post_robot().status_code, 201)
        self.assertEqual(mail.outbox, [])
        call_command("send_notices", "--once")

        self.assertEqual(
            sorted(m.to[0] for m in mail.outbox), ["ann@example.com", "bob@example.com"]
        )
        for message in mail.outbox:
            self.assertEqual(len(message.recipients()), 1)
            self.assertEqual(message.subject, "Робот R2-D2 в наличии")
            self.assertEqual(message.body.split("\n\n-- \n")[0], BODY)
            self.assertEqual(message.from_email, "R4C <robots@r4c.test>")
        self.assertEqual(
            dict(Order.objects.values_list("customer__email", "state")),
            {"ann@example.com": "sent", "bob@example.com": "sent", "cid@example.com": "waiting"},
        )

    def test_a_robot_saved_outside_the_api_notifies_the_same_way(self):
        place("R2-D2", "ann@example.com")

        produce("R2-D2")  # as the admin or a shell would
        call_command("send_notices", "--once")

        [message] = mail.outbox
        self.assertEqual(message.to, ["ann@example.com"])
        self.assertEqual(message.body.split("\n\n-- \n")[0], BODY)

    def test_a_second_robot_does_not_mail_a_notified_customer_again(self):
        place("R2-D2", "ann@example.com")
        produce("R2-D2")
        call_command("send_notices", "--once")
        produce("R2-D2")
        call_command("send_notices", "--once")

        self.assertEqual(len(mail.outbox), 1)
        self.assertFalse(Arrival.objects.exists())

    def test_a_robot_nobody_waits_for_leaves_no_work(self):
        produce("R2-D2")
        self.assertFalse(Arrival.objects.exists())
        self.assertEqual(outbox.due_count(up_to=10), 0)

    def test_the_robot_request_never_talks_to_the_mail_server(self):
        place("R2-D2", "ann@example.com")
        with smtp_server() as server:
            response = self.post_robot()
            self.assertEqual(server.connections, 0)
        self.assertEqual(response.status_code, 201)
        self.assertEqual(Arrival.objects.get().serial, "R2-D2")

    def test_the_development_console_shows_the_mail_as_text(self):
        place("R2-D2", "ann@example.com")
        produce("R2-D2")
        stream = io.StringIO()
        mailers = {"default": {"BACKEND": "orders.mail.console.EmailBackend"}}
        with override_settings(MAILERS=mailers):
            mailer = MailConnection()
            mailer.mailer.stream = stream
            outbox.make_due()
            send_batch(mailer)

        printed = stream.getvalue()
        self.assertIn("Subject: Робот R2-D2 в наличии", printed)
        self.assertIn(BODY, printed)
        self.assertIn("To: ann@example.com", printed)


class DeliveryTests(NoticeTestCase):
    def test_it_delivers_to_a_real_smtp_server_on_one_connection(self):
        emails = [f"customer{i}@example.com" for i in range(7)]
        place("R2-D2", *emails)
        produce("R2-D2")

        with smtp_server() as server:
            drain()

        self.assertEqual(server.recipients(), sorted(emails))
        self.assertEqual(server.connections, 1)
        _, message = server.messages[0]
        self.assertEqual(message["Subject"], "Робот R2-D2 в наличии")
        self.assertEqual(text_of(message).split("\n\n-- \n")[0], BODY)
        self.assertEqual(notices("state"), [("sent",)] * 7)
        self.assertTrue(all(order.is_notified for order in Order.objects.all()))

    def test_it_records_each_outcome_before_the_next_message_goes(self):
        place("R2-D2", "ann@example.com", "bob@example.com", "cid@example.com")
        produce("R2-D2")
        states = []  # what the database says as each message starts
        with smtp_server():
            deliver_before(
                before=lambda _: states.append(
                    sorted(Order.objects.values_list("state", flat=True))
                )
            )

        self.assertEqual(
            states,
            [
                ["sending", "sending", "sending"],
                ["sending", "sending", "sent"],
                ["sending", "sent", "sent"],
            ],
        )

    def test_it_retries_after_a_temporary_smtp_failure_with_growing_delays(self):
        [order] = place("R2-D2", "ann@example.com")
        produce("R2-D2")

        with smtp_server() as server:
            server.temporary_failures = 2
            drain()
            order.refresh_from_db()
            self.assertEqual((order.state, order.attempts), ("due", 1))
            self.assertIn("451", order.last_error)
            first_delay = order.next_attempt_at - timezone.now()

            Order.objects.update(next_attempt_at=timezone.now())
            drain()
            order.refresh_from_db()
            second_delay = order.next_attempt_at - timezone.now()
            self.assertEqual(order.attempts, 2)
            self.assertGreater(second_delay, first_delay + timedelta(seconds=20))

            self.assertEqual(outbox.due_count(up_to=10), 0)  # not due yet: nothing happens
            Order.objects.update(next_attempt_at=timezone.now())
            drain()

        order.refresh_from_db()
        self.assertEqual((order.state, order.attempts, order.last_error), ("sent", 3, ""))
        self.assertEqual(server.recipients(), ["ann@example.com"])

    def test_a_mail_server_that_is_down_loses_nothing(self):
        [order] = place("R2-D2", "ann@example.com")
        produce("R2-D2")

        with no_smtp_server():
            drain()
        order.refresh_from_db()
        self.assertEqual(order.state, "due")
        self.assertIn("Connection", order.last_error)
        self.assertGreater(order.next_attempt_at, timezone.now())

        Order.objects.update(next_attempt_at=timezone.now())
        with smtp_server() as server:
            drain()
        self.assertEqual(server.recipients(), ["ann@example.com"])
        order.refresh_from_db()
        self.assertTrue(order.is_notified)

    def test_a_permanent_rejection_is_recorded_as_failed_and_the_rest_still_go(self):
        place("R2-D2", "gone@example.com", "ann@example.com")
        produce("R2-D2")

        with smtp_server() as server:
            server.refuse["gone@example.com"] = "550 5.1.1 No such user"
            drain()

        self.assertEqual(server.recipients(), ["ann@example.com"])
        failed = Order.objects.get(state="failed")
        self.assertEqual(failed.customer.email, "gone@example.com")
        self.assertEqual(failed.last_error, "550 5.1.1 No such user")

    def test_a_recipient_that_makes_the_server_hang_up_delays_no_other(self):
        emails = ["bad@example.com"] + [f"customer{i}@example.com" for i in range(9)]
        place("R2-D2", *emails)
        produce("R2-D2")

        with smtp_server() as server:
            server.hang_up_on.add("bad@example.com")
            outbox.make_due()
            self.assertTrue(send_batch(MailConnection()))  # one pass: one claimed batch

        self.assertEqual(server.recipients(), sorted(emails[1:]))
        bad = Order.objects.get(customer__email="bad@example.com")
        self.assertEqual(bad.state, "due")
        self.assertIn("421", bad.last_error)
        self.assertEqual(server.connections, 2)  # it reconnected once, after the 421

    def test_a_notice_that_keeps_failing_goes_after_fresh_ones(self):
        place("R2-D2", "bad@example.com")
        produce("R2-D2")
        with smtp_server() as server:
            server.hang_up_on.add("bad@example.com")
            drain()
            Order.objects.update(next_attempt_at=timezone.now())
            place("R2-A1", "ann@example.com")
            produce("R2-A1")
            outbox.make_due()

            _, orders = outbox.claim(1)

        self.assertEqual([o.customer.email for o in orders], ["ann@example.com"])

    def test_a_rejected_address_is_not_mailed_again_for_the_next_robot(self):
        place("R2-D2", "gone@example.com")
        produce("R2-D2")
        with smtp_server() as server:
            # Refused for this message (a hard bounce, 5.1.1, suppresses: test_bounces.py).
            server.refuse["gone@example.com"] = "550 5.7.1 Message rejected by policy"
            drain()
            produce("R2-D2")
            drain()

            self.assertEqual(server.connections, 1)
            self.assertEqual(Order.objects.get().state, "failed")

            # The customer places the order again (say, after fixing the mailbox).
            del server.refuse["gone@example.com"]
            response = self.client.post(
                "/create_order/", {"email": "gone@example.com", "robot-serial": "R2-D2"}
            )
            self.assertEqual(response.status_code, 200)
            drain()

        self.assertEqual(server.recipients(), ["gone@example.com"])
        self.assertTrue(Order.objects.get().is_notified)

    def test_a_temporary_rejection_of_one_recipient_is_retried(self):
        place("R2-D2", "full@example.com")
        produce("R2-D2")

        with smtp_server() as server:
            server.refuse["full@example.com"] = "452 4.2.2 Mailbox full"
            drain()

        order = Order.objects.get()
        self.assertEqual(order.state, "due")
        self.assertIn("452", order.last_error)

    def test_failed_notices_can_be_retried_now_from_the_admin(self):
        [order] = place("R2-D2", "gone@example.com")
        produce("R2-D2")
        with smtp_server() as server:
            server.refuse["gone@example.com"] = "554 5.7.1 Message rejected by policy"
            drain()
        self.client.force_login(User.objects.create_superuser("boss", "boss@r4c.test", "pw"))
        response = self.client.get("/admin/orders/order/", {"state__exact": "failed"})
        self.assertContains(response, "554 5.7.1 Message rejected by policy")

        response = self.client.post(
            "/admin/orders/order/",
            {"action": "retry_now", "_selected_action": [order.pk]},
            follow=True,
        )
        self.assertContains(response, "Писем снова в очереди: 1.")
        with smtp_server() as server:
            drain()
        self.assertEqual(server.recipients(), ["gone@example.com"])

    def test_a_worker_that_died_holding_notices_leaves_them_to_the_next_after_the_lease(self):
        place("R2-D2", "ann@example.com")
        produce("R2-D2")
        outbox.make_due()
        outbox.claim(BATCH)  # and the worker dies before it sends

        with smtp_server() as server:
            drain()
            self.assertEqual(server.recipients(), [])  # the lease still holds
            Order.objects.update(claimed_until=timezone.now() - timedelta(seconds=1))
            drain()

        self.assertEqual(server.recipients(), ["ann@example.com"])
        self.assertEqual(Order.objects.get().state, "sent")

    def test_a_worker_whose_claim_was_taken_over_sends_no_more_of_it(self):
        place("R2-D2", "ann@example.com", "bob@example.com", "cid@example.com")
        produce("R2-D2")

        def lose_the_claim(_):
            # Meanwhile the lease lapsed and another worker took the notices over.
            Order.objects.update(claimed_until=timezone.now() - timedelta(seconds=1))
            self.assertEqual(len(outbox.claim(BATCH)[1]), 3)

        with smtp_server() as server:
            deliver_before(after=lose_the_claim)

        self.assertEqual(len(server.recipients()), 1)  # the one in flight, no more
        self.assertEqual(notices("state"), [("sending",)] * 3)


class OneMailPerWishTests(NoticeTestCase):
    def place_again(self, email="ann@example.com"):
        return self.client.post("/create_order/", {"email": email, "robot-serial": "R2-D2"})

    def test_an_order_placed_again_while_its_notice_is_in_flight_is_answered_by_it(self):
        place("R2-D2", "ann@example.com")
        produce("R2-D2")

        def order_again(_):  # the server has accepted the first one
            self.assertEqual(self.place_again().status_code, 200)

        with smtp_server() as server:
            deliver_before(after=order_again)
            drain()
            self.assertEqual(server.recipients(), ["ann@example.com"])
            self.assertEqual(Order.objects.get().state, "sent")

            produce("R2-D2")  # no placing came after that mail: nothing more
            drain()

        self.assertEqual(server.recipients(), ["ann@example.com"])

    def test_an_order_placed_twice_before_its_notice_goes_is_mailed_once(self):
        produce("R2-D2")
        place("R2-D2", "ann@example.com", "ann@example.com")

        with smtp_server() as server:
            drain()

        self.assertEqual(server.recipients(), ["ann@example.com"])

    def test_a_reload_after_the_mail_waits_for_the_next_robot_and_says_when_it_went(self):
        produce("R2-D2")
        with smtp_server() as server:
            self.assertEqual(self.place_again().status_code, 201)
            drain()
            answer = self.place_again()
            drain()
            self.assertEqual(server.recipients(), ["ann@example.com"])
            order = Order.objects.get()
            self.assertEqual(order.state, "waiting")
            self.assertEqual(
                answer.json()["last_notified_at"],
                order.notified_at.isoformat().replace("+00:00", "Z"),
            )

            produce("R2-D2")
            drain()

        self.assertEqual(server.recipients(), ["ann@example.com"] * 2)

    def test_the_order_page_says_when_the_last_mail_went(self):
        produce("R2-D2")
        with smtp_server():
            self.place_again()
            drain()
        page = self.client.post(
            "/create_order/",
            {"email": "ann@example.com", "robot-serial": "R2-D2"},
            HTTP_ACCEPT="text/html",
            follow=True,
        )
        self.assertContains(page, "уже отправлено на <strong>ann@example.com</strong>")

    @override_settings(NOTICE_REPEAT_HOURS=0.001)  # 3.6 s
    def test_after_the_repeat_hours_placing_again_mails_at_once(self):
        produce("R2-D2")
        with smtp_server() as server:
            self.place_again()
            drain()
            Order.objects.update(notified_at=timezone.now() - timedelta(seconds=4))
            self.place_again()
            drain()

        self.assertEqual(server.recipients(), ["ann@example.com"] * 2)


class ParallelPlacingTests(TransactionTestCase):
    """A double click for real: placings on parallel connections, a worker sending meanwhile."""

    def test_three_parallel_placings_for_a_robot_in_stock_mail_once(self):
        catalog()
        produce("R2-D2")
        start = threading.Barrier(4)

        def post():
            try:
                start.wait()
                return (
                    Client()
                    .post("/create_order/", {"email": "ann@example.com", "robot-serial": "R2-D2"})
                    .status_code
                )
            finally:
                connection.close()

        def work():
            try:
                start.wait()
                for _ in range(20):
                    drain()
            finally:
                connection.close()

        with smtp_server() as server:
            with ThreadPoolExecutor(max_workers=4) as pool:
                answers = [pool.submit(post) for _ in range(3)]
                worker = pool.submit(work)
                statuses = sorted(answer.result() for answer in answers)
                worker.result()
            drain()
            self.assertEqual(statuses, [200, 200, 201])
            self.assertEqual(server.recipients(), ["ann@example.com"])

            time.sleep(0.2)  # a reload a little later (the rule is hours, not seconds)
            Client().post("/create_order/", {"email": "ann@example.com", "robot-serial": "R2-D2"})
            drain()
            self.assertEqual(server.recipients(), ["ann@example.com"])

            produce("R2-D2")
            drain()
        self.assertEqual(server.recipients(), ["ann@example.com"] * 2)


@override_settings(NOTICE_REPEAT_HOURS=0)  # the cap is the bound when placings may repeat
class DailyCapTests(NoticeTestCase):
    def place_again(self, email="ann@example.com"):
        return self.client.post("/create_order/", {"email": email, "robot-serial": "R2-D2"})

    def test_no_address_gets_more_than_three_notices_for_a_serial_in_a_day(self):
        produce("R2-D2")
        with smtp_server() as server:
            for _ in range(5):
                self.assertIn(self.place_again().status_code, (200, 201))
                drain()

        self.assertEqual(server.recipients(), ["ann@example.com"] * 3)

    def test_the_next_day_placing_again_mails_again(self):
        produce("R2-D2")
        with smtp_server() as server:
            for _ in range(3):
                self.place_again()
                drain()
            Order.objects.update(sent_on=timezone.localdate() - timedelta(days=1))
            self.place_again()
            drain()

        self.assertEqual(len(server.recipients()), 4)

    def test_arrivals_keep_the_cap_too_and_the_rest_goes_the_next_day(self):
        # Each placing waits for a robot (mailed for the serial moments ago), each robot
        # makes it due: the cap is kept where the message is made, whatever made it due.
        with smtp_server() as server:
            for _ in range(6):
                place("R2-D2", "ann@example.com", "ann+again@example.com")
                produce("R2-D2")
                drain()
            self.assertEqual(len(server.recipients()), 3)
            waiting = Order.objects.filter(state="due", next_attempt_at__gt=timezone.now())
            self.assertEqual(waiting.count(), 2)  # held for the next day, not dropped
            self.assertEqual(waiting.first().next_attempt_at.astimezone().hour, 0)

            Order.objects.update(sent_on=timezone.localdate() - timedelta(days=1))
            Order.objects.update(next_attempt_at=timezone.now())  # the next day comes
            drain()
        self.assertEqual(len(server.recipients()), 5)

    def test_the_cap_is_per_serial(self):
        produce("R2-D2")
        produce("R2-A1")
        with smtp_server() as server:
            for serial in ["R2-D2"] * 3 + ["R2-A1"]:
                self.client.post(
                    "/create_order/", {"email": "ann@example.com", "robot-serial": serial}
                )
                drain()

        self.assertEqual(len(server.recipients()), 4)


class NoDuplicatesTests(TransactionTestCase):
    """Real parallel connections: robots posted at once, several workers at once."""

    def test_ten_robots_at_once_with_three_workers_mail_each_order_exactly_once(self):
        catalog()
        emails = [f"customer{i}@example.com" for i in range(30)]
        place("R2-D2", *emails)
        body = json.dumps({"model": "R2", "version": "D2", "created": "2023-10-03 23:59:12"})
        start = threading.Barrier(10 + 3)

        def post_robot():
            try:
                start.wait()
                return Client().post("/add_robot/", body, content_type="application/json")
            finally:
                connection.close()

        def work():
            # Work while robots still arrive, then until nothing is left.
            try:
                start.wait()
                deadline = time.monotonic() + 30
                while Robot.objects.count() < 10 and time.monotonic() < deadline:
                    drain()
                drain()
            finally:
                connection.close()

        with smtp_server() as server, ThreadPoolExecutor(max_workers=13) as pool:
            robots = [pool.submit(post_robot) for _ in range(10)]
            workers = [pool.submit(work) for _ in range(3)]
            statuses = [future.result().status_code for future in robots]
            for future in workers:
                future.result()
            drain()

        self.assertEqual(statuses, [201] * 10)
        self.assertEqual(server.recipients(), sorted(emails))
        self.assertFalse(Order.objects.exclude(state="sent").exists())


class OrderDuringProductionTests(TransactionTestCase):
    """An order and a robot of its serial at the same moment: one of them sees the other."""

    def test_an_order_placed_while_its_robot_is_being_saved_is_still_notified(self):
        catalog()
        response = while_open(
            lambda: produce("R2-D2"),
            lambda: Client().post(
                "/create_order/", {"email": "ann@example.com", "robot-serial": "R2-D2"}
            ),
        )

        self.assertEqual(response.status_code, 201)
        with smtp_server() as server:
            drain()
        self.assertEqual(server.recipients(), ["ann@example.com"])

    def test_a_robot_posted_while_an_order_for_it_is_being_placed_still_notifies_it(self):
        catalog()
        body = json.dumps({"model": "R2", "version": "D2", "created": "2023-10-03 23:59:12"})
        response = while_open(
            lambda: place("R2-D2", "ann@example.com"),
            lambda: Client().post("/add_robot/", body, content_type="application/json"),
        )

        self.assertEqual(response.status_code, 201)
        self.assertEqual(Order.objects.get().state, "waiting")  # it found no robot then
        with smtp_server() as server:
            drain()
        self.assertEqual(server.recipients(), ["ann@example.com"])


@override_settings(DEFAULT_FROM_EMAIL="R4C <robots@r4c.example.com>")
class WireTests(NoticeTestCase):
    """What reaches the mail server, byte for byte, and what R4C keeps of each exchange."""

    def test_a_unicode_domain_reaches_the_server_in_its_idna_2008_form(self):
        forms = {
            "ann@straße.de": "ann@xn--strae-oqa.de",
            "ann@faß.de": "ann@xn--fa-hia.de",
            "ann@ςοφια.gr": "ann@xn--mxaprlv.gr",
            "ann@βόλος.com": "ann@xn--nxasmm1c.com",
            "ann@ẞ.com": "ann@xn--zca.com",
        }
        place("R2-D2", *forms)
        produce("R2-D2")

        with smtp_server() as server:
            drain()

        self.assertEqual(server.recipients(), sorted(forms.values()))
        to_headers = sorted(
            line.split(b": ", 1)[1].decode()
            for raw in server.raw
            for line in raw.split(b"\r\n")
            if line.startswith(b"To: ")
        )
        self.assertEqual(to_headers, sorted(forms.values()))

    def test_once_sends_everything_due_on_one_connection(self):
        place("R2-D2", *[f"customer{i}@example.com" for i in range(25)])
        produce("R2-D2")

        with smtp_server() as server:
            call_command("send_notices", "--once")

        self.assertEqual(len(server.messages), 25)
        self.assertEqual(server.connections, 1)

    def test_every_attempt_is_kept_and_shown_on_the_order_s_page(self):
        [order] = place("R2-D2", "ann@example.com")
        produce("R2-D2")
        with smtp_server() as server:
            server.temporary_failures = 1
            drain()
            Order.objects.update(next_attempt_at=timezone.now())
            drain()

        attempts = list(order.attempt_log.values_list("outcome", "code", "reply"))
        self.assertEqual(
            attempts,
            [
                ("retry", 451, "451 4.3.0 Mailbox busy, try again later"),
                ("sent", 250, ""),
            ],
        )
        self.client.force_login(User.objects.create_superuser("boss", "boss@r4c.test", "pw"))
        page = self.client.get(f"/admin/orders/order/{order.pk}/change/")
        self.assertContains(page, "451 4.3.0 Mailbox busy, try again later")
        self.assertContains(page, "повтор позже")

    def test_every_attempt_of_a_notice_is_the_same_message(self):
        place("R2-D2", "ann@example.com")
        produce("R2-D2")
        with smtp_server() as server:
            server.temporary_failures = 1
            drain()
            Order.objects.update(next_attempt_at=timezone.now())
            drain()
            self.place_again_tomorrow()
            produce("R2-D2")
            drain()

        first, again, next_notice = server.message_ids
        self.assertEqual(first, again)
        self.assertRegex(first, r"^<notice\.\d+\.\d+@r4c\.example\.com>$")
        self.assertNotEqual(next_notice, first)  # a new placing is a new message

    def place_again_tomorrow(self):
        Order.objects.update(notified_at=timezone.now() - timedelta(days=1))
        place("R2-D2", "ann@example.com")


class ArrivalTriggerTests(TestCase):
    def test_the_installed_trigger_reads_the_outbox_s_state_and_channel(self):
        with connection.cursor() as cursor:
            if connection.vendor == "sqlite":
                cursor.execute(
                    "SELECT sql FROM sqlite_master WHERE type = 'trigger' "
                    "AND name = 'orders_note_arrival'"
                )
            else:
                cursor.execute("SELECT pg_get_functiondef('orders_note_arrival'::regproc)")
            [sql] = cursor.fetchone()

        self.assertIn(f"state = '{outbox.WAITING}'", sql)
        if connection.vendor == "postgresql":
            self.assertIn(f"pg_notify('{outbox.CHANNEL}'", sql)


class LogTests(NoticeTestCase):
    def test_a_sent_notice_is_logged_with_its_order_claim_and_code_as_json(self):
        [order] = place("R2-D2", "ann@example.com")
        produce("R2-D2")
        stream = json_log(self, "orders.mail.worker")

        with smtp_server():
            drain()

        [line] = [json.loads(text) for text in stream.getvalue().splitlines()]
        self.assertEqual(
            {key: line[key] for key in ("level", "logger", "order", "code")},
            {"level": "INFO", "logger": "orders.mail.worker", "order": order.pk, "code": 250},
        )
        self.assertRegex(line["claim"], r"^[0-9a-f-]{36}$")
        self.assertRegex(line["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


class WakeTests(NoticeTestCase):
    def test_a_wake_wakes_as_many_waiting_senders_as_it_names_and_no_more(self):
        idle = IdleSenders()
        woken = []

        def sender(n):
            idle.wait()
            woken.append(n)

        senders = [threading.Thread(target=sender, args=(n,)) for n in range(4)]
        for thread in senders:
            thread.start()
        time.sleep(0.2)  # all four wait
        idle.wake(1)
        time.sleep(0.2)
        self.assertEqual(len(woken), 1)
        idle.wake(2)
        time.sleep(0.2)
        self.assertEqual(len(woken), 3)
        idle.wake(4)  # more than are idle: the next to go idle goes on at once
        for thread in senders:
            thread.join(1)
        self.assertEqual(len(woken), 4)
        started = time.monotonic()
        idle.wait()
        self.assertLess(time.monotonic() - started, 1)

    def test_the_dispatcher_counts_the_batches_due_and_no_further(self):
        for n in range(25):
            place("R2-D2", f"c{n}@example.com")
        produce("R2-D2")
        outbox.make_due()
        self.assertEqual(outbox.due_count(up_to=100), 25)
        self.assertEqual(outbox.due_count(up_to=BATCH), BATCH)


class ParallelClaimTests(TransactionTestCase):
    def test_senders_claiming_at_once_take_a_batch_each_and_no_notice_twice(self):
        catalog()
        place("R2-D2", *(f"c{n}@example.com" for n in range(300)))
        produce("R2-D2")
        outbox.make_due()
        start = threading.Barrier(16)

        def claim():
            try:
                start.wait()
                return outbox.claim(BATCH)[1]
            finally:
                connection.close()

        with ThreadPoolExecutor(max_workers=16) as pool:
            batches = list(pool.map(lambda _: claim(), range(16)))
        self.assertEqual(sorted(len(batch) for batch in batches), [BATCH] * 16)
        claimed = [order.pk for batch in batches for order in batch]
        self.assertEqual(len(set(claimed)), 16 * BATCH)
