import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from django.contrib.auth.models import User
from django.core import mail
from django.core.management import call_command
from django.db import connection, transaction
from django.test import Client, TestCase, TransactionTestCase, override_settings
from django.utils import timezone

from customers.models import Customer
from orders.models import Arrival, Notice, Order
from orders.notifications import BATCH, claim_due, expand_arrivals, process_due
from orders.tests.smtp import no_smtp_server, smtp_server
from robots.models import Model, Robot, Version

BODY = (
    "Добрый день!\n"
    "Недавно вы интересовались нашим роботом модели R2, версии D2.\n"
    "Этот робот теперь в наличии. Если вам подходит этот вариант - пожалуйста, "
    "свяжитесь с нами"
)


def drain():
    """What `send_notifications --once` does: work until nothing is due."""
    while process_due():
        pass


class NotificationTestCase(TestCase):
    def setUp(self):
        r2 = Model.objects.create(name="R2")
        self.d2 = Version.objects.create(model=r2, name="D2")
        self.a1 = Version.objects.create(model=r2, name="A1")

    def wait_for(self, serial, *emails):
        return [
            Order.objects.create(
                customer=Customer.objects.create(email=email), robot_serial=serial
            )
            for email in emails
        ]

    def produce(self, version):
        return Robot.objects.create(
            model=version.model, version=version, created=datetime.now(UTC)
        )

    def post_robot(self, version="D2"):
        body = {"model": "R2", "version": version, "created": "2023-10-03 23:59:12"}
        return self.client.post("/add_robot/", json.dumps(body), content_type="application/json")


@override_settings(DEFAULT_FROM_EMAIL="R4C <robots@r4c.test>")
class NoticeContentTests(NotificationTestCase):
    def test_each_waiting_customer_gets_one_mail_of_their_own(self):
        self.wait_for("R2-D2", "ann@example.com", "bob@example.com")
        self.wait_for("R2-A1", "cid@example.com")

        self.assertEqual(self.post_robot().status_code, 201)
        self.assertEqual(mail.outbox, [])
        call_command("send_notifications", "--once")

        self.assertEqual(
            sorted(m.to[0] for m in mail.outbox), ["ann@example.com", "bob@example.com"]
        )
        for message in mail.outbox:
            self.assertEqual(len(message.recipients()), 1)
            self.assertEqual(message.subject, "Робот R2-D2 в наличии")
            self.assertEqual(message.body, BODY)
            self.assertEqual(message.from_email, "R4C <robots@r4c.test>")
        self.assertEqual(
            dict(Order.objects.values_list("customer__email", "is_notified")),
            {"ann@example.com": True, "bob@example.com": True, "cid@example.com": False},
        )

    def test_a_robot_saved_outside_the_api_notifies_the_same_way(self):
        self.wait_for("R2-D2", "ann@example.com")

        self.produce(self.d2)  # as the admin or a shell would
        call_command("send_notifications", "--once")

        [message] = mail.outbox
        self.assertEqual((message.to, message.body), (["ann@example.com"], BODY))

    def test_a_second_robot_does_not_mail_a_notified_customer_again(self):
        self.wait_for("R2-D2", "ann@example.com")
        self.produce(self.d2)
        call_command("send_notifications", "--once")
        self.produce(self.d2)
        call_command("send_notifications", "--once")

        self.assertEqual(len(mail.outbox), 1)
        self.assertFalse(Arrival.objects.exists())

    def test_a_robot_nobody_waits_for_leaves_no_work(self):
        self.produce(self.d2)
        self.assertFalse(Arrival.objects.exists())
        self.assertFalse(process_due())


class DeliveryTests(NotificationTestCase):
    def test_it_delivers_to_a_real_smtp_server_on_one_connection(self):
        emails = [f"customer{i}@example.com" for i in range(7)]
        self.wait_for("R2-D2", *emails)
        self.produce(self.d2)

        with smtp_server() as server:
            drain()

        self.assertEqual(server.recipients(), sorted(emails))
        self.assertEqual(server.connections, 1)
        _, message = server.messages[0]
        self.assertEqual(message["Subject"], "Робот R2-D2 в наличии")
        self.assertEqual(message.get_content().replace("\r\n", "\n").rstrip("\n"), BODY)
        self.assertEqual(Notice.objects.filter(state="sent").count(), 7)
        self.assertFalse(Order.objects.filter(is_notified=False).exists())

    def test_a_large_queue_goes_in_batches_one_connection_each(self):
        emails = [f"customer{i}@example.com" for i in range(BATCH + 3)]
        self.wait_for("R2-D2", *emails)
        self.produce(self.d2)

        with smtp_server() as server:
            drain()

        self.assertEqual(len(server.recipients()), BATCH + 3)
        self.assertEqual(server.connections, 2)

    def test_it_retries_after_a_temporary_smtp_failure_with_growing_delays(self):
        [order] = self.wait_for("R2-D2", "ann@example.com")
        self.produce(self.d2)

        with smtp_server() as server:
            server.temporary_failures = 2
            drain()
            notice = Notice.objects.get()
            self.assertEqual((notice.state, notice.attempts), ("pending", 1))
            self.assertIn("451", notice.last_error)
            first_delay = notice.next_attempt_at - timezone.now()
            order.refresh_from_db()
            self.assertFalse(order.is_notified)

            Notice.objects.update(next_attempt_at=timezone.now())
            drain()
            notice.refresh_from_db()
            second_delay = notice.next_attempt_at - timezone.now()
            self.assertEqual(notice.attempts, 2)
            self.assertGreater(second_delay, first_delay + timedelta(seconds=20))

            self.assertFalse(process_due())  # not due yet: nothing happens
            Notice.objects.update(next_attempt_at=timezone.now())
            drain()

        notice.refresh_from_db()
        order.refresh_from_db()
        self.assertEqual((notice.state, notice.attempts, notice.last_error), ("sent", 3, ""))
        self.assertTrue(order.is_notified)
        self.assertEqual(server.recipients(), ["ann@example.com"])

    def test_a_mail_server_that_is_down_loses_nothing(self):
        [order] = self.wait_for("R2-D2", "ann@example.com")
        self.produce(self.d2)

        with no_smtp_server():
            drain()
        notice = Notice.objects.get()
        self.assertEqual(notice.state, "pending")
        self.assertIn("Connection", notice.last_error)
        self.assertGreater(notice.next_attempt_at, timezone.now())
        order.refresh_from_db()
        self.assertFalse(order.is_notified)

        Notice.objects.update(next_attempt_at=timezone.now())
        with smtp_server() as server:
            drain()
        self.assertEqual(server.recipients(), ["ann@example.com"])
        order.refresh_from_db()
        self.assertTrue(order.is_notified)

    def test_a_permanent_rejection_is_recorded_as_failed_and_the_rest_still_go(self):
        self.wait_for("R2-D2", "gone@example.com", "ann@example.com")
        self.produce(self.d2)

        with smtp_server() as server:
            server.refuse["gone@example.com"] = "550 5.1.1 No such user"
            drain()

        self.assertEqual(server.recipients(), ["ann@example.com"])
        failed = Notice.objects.get(state="failed")
        self.assertEqual(failed.order.customer.email, "gone@example.com")
        self.assertEqual(failed.last_error, "550 5.1.1 No such user")
        self.assertFalse(failed.order.is_notified)
        self.assertEqual(Notice.objects.filter(state="sent").count(), 1)

    def test_a_rejected_address_is_not_mailed_again_for_the_next_robot(self):
        self.wait_for("R2-D2", "gone@example.com")
        self.produce(self.d2)
        with smtp_server() as server:
            server.refuse["gone@example.com"] = "550 5.1.1 No such user"
            drain()
            self.produce(self.d2)
            drain()

            self.assertEqual(server.connections, 1)
            self.assertEqual(Notice.objects.get().state, "failed")

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
        self.wait_for("R2-D2", "full@example.com")
        self.produce(self.d2)

        with smtp_server() as server:
            server.refuse["full@example.com"] = "452 4.2.2 Mailbox full"
            drain()

        notice = Notice.objects.get()
        self.assertEqual(notice.state, "pending")
        self.assertIn("452", notice.last_error)

    def test_failed_notices_can_be_retried_now_from_the_admin(self):
        self.wait_for("R2-D2", "gone@example.com")
        self.produce(self.d2)
        with smtp_server() as server:
            server.refuse["gone@example.com"] = "550 5.1.1 No such user"
            drain()
        notice = Notice.objects.get(state="failed")
        self.client.force_login(User.objects.create_superuser("boss", "boss@r4c.test", "pw"))
        response = self.client.get("/admin/orders/notice/", {"state__exact": "failed"})
        self.assertContains(response, "550 5.1.1 No such user")

        response = self.client.post(
            "/admin/orders/notice/",
            {"action": "retry_now", "_selected_action": [notice.pk]},
            follow=True,
        )
        self.assertContains(response, "1 notice(s) queued again.")
        with smtp_server() as server:
            drain()
        self.assertEqual(server.recipients(), ["gone@example.com"])
        self.assertTrue(Order.objects.get().is_notified)

    def test_a_worker_killed_mid_send_has_its_notices_taken_up_after_the_lease(self):
        self.wait_for("R2-D2", "ann@example.com")
        self.produce(self.d2)
        expand_arrivals()
        [claimed] = claim_due()  # and the worker dies before it sends
        self.assertEqual(claimed.state, "sending")

        with smtp_server() as server:
            drain()
            self.assertEqual(server.recipients(), [])  # the lease still holds
            Notice.objects.update(claimed_until=timezone.now() - timedelta(seconds=1))
            drain()

        self.assertEqual(server.recipients(), ["ann@example.com"])
        self.assertEqual(Notice.objects.get().state, "sent")

    def test_the_robot_request_never_waits_on_a_slow_mail_server(self):
        self.wait_for("R2-D2", "ann@example.com", "bob@example.com")
        with smtp_server() as server:
            server.delay = 3
            started = time.monotonic()
            response = self.post_robot()
            elapsed = time.monotonic() - started
            self.assertEqual(server.connections, 0)

        self.assertEqual(response.status_code, 201)
        self.assertLess(elapsed, 1.5)  # far below one message's 3 s
        self.assertEqual(Notice.objects.filter(state="pending").count(), 0)
        self.assertEqual(Arrival.objects.get().serial, "R2-D2")

    def test_the_robot_request_succeeds_while_the_mail_server_is_down(self):
        self.wait_for("R2-D2", "ann@example.com")
        with no_smtp_server():
            response = self.post_robot()
        self.assertEqual(response.status_code, 201)
        self.assertEqual(Robot.objects.count(), 1)


class NoDuplicatesTests(TransactionTestCase):
    """Real parallel connections: robots posted at once, several workers at once."""

    def test_ten_robots_at_once_with_three_workers_mail_each_order_exactly_once(self):
        r2 = Model.objects.create(name="R2")
        Version.objects.create(model=r2, name="D2")
        emails = [f"customer{i}@example.com" for i in range(30)]
        for email in emails:
            Order.objects.create(
                customer=Customer.objects.create(email=email), robot_serial="R2-D2"
            )
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
                    process_due()
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
        self.assertEqual(Notice.objects.count(), 30)
        self.assertFalse(Order.objects.filter(is_notified=False).exists())


class OrderDuringProductionTests(TransactionTestCase):
    def test_an_order_placed_while_its_robot_is_being_saved_is_still_notified(self):
        version = Version.objects.create(model=Model.objects.create(name="R2"), name="D2")
        robot_saved, commit = threading.Event(), threading.Event()

        def produce_slowly():
            # The robot's transaction stays open while the customer orders.
            try:
                with transaction.atomic():
                    Robot.objects.create(
                        model=version.model, version=version, created=datetime.now(UTC)
                    )
                    robot_saved.set()
                    commit.wait(10)
            finally:
                connection.close()

        def order():
            try:
                return Client().post(
                    "/create_order/", {"email": "ann@example.com", "robot-serial": "R2-D2"}
                )
            finally:
                connection.close()

        with ThreadPoolExecutor(max_workers=2) as pool:
            production = pool.submit(produce_slowly)
            self.assertTrue(robot_saved.wait(10))
            placing = pool.submit(order)
            time.sleep(0.5)
            commit.set()
            production.result()
            response = placing.result()

        self.assertEqual(response.status_code, 201)
        with smtp_server() as server:
            drain()
        self.assertEqual(server.recipients(), ["ann@example.com"])


class SlowBatchTests(TransactionTestCase):
    @override_settings(NOTICE_LEASE_SECONDS=1)
    def test_a_worker_on_a_slow_server_keeps_its_lease_so_no_other_takes_its_notices(self):
        version = Version.objects.create(model=Model.objects.create(name="R2"), name="D2")
        emails = [f"customer{i}@example.com" for i in range(5)]
        for email in emails:
            Order.objects.create(
                customer=Customer.objects.create(email=email), robot_serial="R2-D2"
            )
        Robot.objects.create(model=version.model, version=version, created=datetime.now(UTC))

        def slow_worker():
            try:
                drain()
            finally:
                connection.close()

        with smtp_server() as server, ThreadPoolExecutor(max_workers=1) as pool:
            server.delay = 0.5  # the batch takes 2.5 s, the lease is 1 s
            first = pool.submit(slow_worker)
            time.sleep(1.6)
            self.assertTrue(Notice.objects.filter(state="sending").exists())
            drain()  # a second worker comes by after the first lease would have run out
            first.result()

        self.assertEqual(server.recipients(), sorted(emails))
