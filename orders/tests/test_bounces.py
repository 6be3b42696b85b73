"""Dead mailboxes and complaints: what comes back stops R4C from mailing an address again."""

import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from string import Template

import pytest
from django.contrib.admin.models import DELETION, LogEntry
from django.contrib.auth.models import User
from django.core.checks import run_checks
from django.core.management import call_command
from django.test import TestCase, TransactionTestCase, override_settings
from django.utils import timezone

from customers.models import Customer
from orders.mail import bounces, outbox
from orders.models import Bounce, Order, State, Suppression
from orders.tests.smtp import free_port, smtp_server
from R4C.tests.world import (
    catalog,
    database_url,
    deliver_before,
    drain,
    environment,
    place,
    produce,
    samples,
)

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).parent / "bounces"
BOUNCE_ADDRESS = "bounces@r4c.example.com"
USER_UNKNOWN = "550 5.1.1 The email account that you tried to reach does not exist."
MAILBOX_FULL = "552 5.2.2 The recipient's inbox is out of storage space."


def sent_notice(email: str = "ann@example.com") -> Order:
    """An order whose notice the mail server has taken."""
    [order] = place("R2-D2", email)
    produce("R2-D2")
    with smtp_server() as server:
        drain()
    order.refresh_from_db()
    assert order.state == State.SENT
    [order.message_id] = server.message_ids
    return order


def came_back(name: str, order: Order, to: str | None = None, **fields: str) -> bytes:
    """Fixture `name` as it comes back about `order`'s notice, to its tagged sender."""
    values = {
        "TO": to or bounces.envelope_sender(order.pk),
        "ADDRESS": order.customer.email,
        "MESSAGE_ID": order.message_id,
        "STATUS": "5.1.1",
        "STATUS_LINE": USER_UNKNOWN,
    }
    return Template((FIXTURES / name).read_text()).substitute(values | fields).encode()


@override_settings(BOUNCE_ADDRESS=BOUNCE_ADDRESS)
class BounceTests(TestCase):
    def setUp(self):
        catalog()

    def assert_suppressed(self, order: Order, kind: str, status: str) -> Suppression:
        suppression = Suppression.objects.get(customer=order.customer)
        self.assertEqual((suppression.kind, suppression.status), (kind, status))
        self.assertEqual(suppression.order, order)
        return suppression

    def test_each_notice_goes_from_its_own_signed_envelope_sender(self):
        place("R2-D2", "ann@example.com", "bob@example.com")
        produce("R2-D2")
        with smtp_server() as server:
            drain()

        for (_, message), sender in zip(server.messages, server.senders, strict=True):
            order = Order.objects.get(customer__email=message["To"])
            self.assertRegex(sender, rf"^bounces\+n{order.pk}-[0-9a-f]{{20}}@r4c\.example\.com$")
            self.assertEqual(message["From"], "R4C <robots@localhost>")
            self.assertEqual(bounces.tagged_order([sender]), order.pk)
        self.assertEqual(len(set(server.senders)), 2)

    @override_settings(BOUNCE_ADDRESS="")
    def test_without_a_bounce_address_the_envelope_sender_is_the_from_address(self):
        place("R2-D2", "ann@example.com")
        produce("R2-D2")
        with smtp_server() as server:
            drain()
        self.assertEqual(server.senders, ["robots@localhost"])

    def test_a_permanent_failure_in_each_real_world_shape_suppresses_the_address(self):
        shapes = {
            "postfix.eml": "5.1.1",
            "exim.eml": "5.1.1",
            "microsoft.eml": "5.1.10",
            "gmail.eml": "5.1.1",
            "qmail.eml": "5.1.1",
        }
        for n, (name, status) in enumerate(shapes.items()):
            with self.subTest(shape=name):
                order = sent_notice(f"gone{n}@example.com")
                self.assertEqual(bounces.handle(came_back(name, order), []), 1)

                self.assert_suppressed(order, Bounce.Kind.HARD, status)
                bounce = order.bounces.get()
                self.assertEqual((bounce.kind, bounce.status), (Bounce.Kind.HARD, status))
                self.assertIn(status, bounce.diagnostic)

    def test_without_a_signed_tag_nothing_changes_even_with_the_notice_s_message_id(self):
        order = sent_notice()
        raw = came_back("postfix.eml", order, to=BOUNCE_ADDRESS)  # its Message-ID, no tag
        self.assertEqual(bounces.handle(raw, []), 0)
        self.assertFalse(Bounce.objects.exists())

    def test_guessing_every_message_id_of_a_victim_s_order_suppresses_no_one(self):
        # The attack: place an order in the victim's name (the answer gives its id, the round
        # trip bounds its moment), then send one report listing every candidate Message-ID.
        victim = sent_notice("victim@example.com")
        placed = int(victim.placed_at.timestamp() * 1_000_000)
        candidates = "\n".join(
            f"Message-ID: <notice.{victim.pk}.{placed + n}@localhost>" for n in range(-2000, 2000)
        )
        raw = came_back("postfix.eml", victim, to=BOUNCE_ADDRESS, MESSAGE_ID=victim.message_id)
        raw = raw.replace(b"\n\n", f"\n\n{candidates}\n\n".encode(), 1)
        self.assertEqual(bounces.handle(raw, [BOUNCE_ADDRESS]), 0)
        self.assertFalse(Suppression.objects.exists())

    @override_settings(BOUNCE_ADDRESS="")
    def test_without_a_bounce_address_nothing_that_comes_back_is_read(self):
        with override_settings(BOUNCE_ADDRESS=BOUNCE_ADDRESS):
            order = sent_notice()
        self.assertEqual(bounces.handle(came_back("postfix.eml", order), []), 0)
        self.assertFalse(Bounce.objects.exists())

    def test_the_tag_may_come_from_the_mta_instead_of_the_headers(self):
        order = sent_notice()
        raw = came_back("postfix.eml", order, to=BOUNCE_ADDRESS, MESSAGE_ID="<x@example.com>")
        self.assertEqual(bounces.handle(raw, [bounces.envelope_sender(order.pk)]), 1)
        self.assert_suppressed(order, Bounce.Kind.HARD, "5.1.1")

    def test_a_forged_tag_or_a_stranger_s_message_suppresses_no_one(self):
        ann = sent_notice()
        forged = bounces.envelope_sender(ann.pk).replace("-", "-0", 1)[:-1]
        cases = {
            "a forged tag": came_back("postfix.eml", ann, to=forged, MESSAGE_ID="<a@b.c>"),
            "another tag's signature": came_back(
                "postfix.eml",
                ann,
                to=bounces.envelope_sender(ann.pk + 1).replace(f"n{ann.pk + 1}-", f"n{ann.pk}-"),
                MESSAGE_ID="<a@b.c>",
            ),
            "an address R4C never mailed": Template((FIXTURES / "postfix.eml").read_text())
            .substitute(
                TO=BOUNCE_ADDRESS,
                ADDRESS="stranger@example.com",
                MESSAGE_ID=ann.message_id,
            )
            .encode(),
            "the right Message-ID of another placing": came_back(
                "postfix.eml",
                ann,
                to=BOUNCE_ADDRESS,
                MESSAGE_ID=ann.message_id.replace(".", ".9", 2),
            ),
            "an auto-reply": came_back("autoreply.eml", ann),
            "a message that is no report": b"Subject: hello\r\n\r\njust text\r\n",
        }
        for case, raw in cases.items():
            with self.subTest(case=case):
                self.assertEqual(bounces.handle(raw, []), 0)
        self.assertFalse(Suppression.objects.exists())
        self.assertFalse(Bounce.objects.exists())

    def test_soft_failures_suppress_only_after_three_notices_in_fourteen_days(self):
        first = sent_notice()
        others = []
        for serial in ("R2-A1", "13-XS", "R2-A1"):
            [order] = place(serial, "ann@example.com")
            produce(serial)
            with smtp_server() as server:
                drain()
            others.append(order)
            order.message_id = server.message_ids[-1]

        def soft(order):
            raw = came_back("gmail.eml", order, STATUS="5.2.2", STATUS_LINE=MAILBOX_FULL)
            return bounces.handle(raw, [])

        soft(first)
        Bounce.objects.update(at=timezone.now() - timedelta(days=15))  # too long ago
        soft(others[0])
        soft(others[1])
        self.assertFalse(Suppression.objects.exists())
        soft(others[0])  # the same notice again: it counts once
        self.assertFalse(Suppression.objects.exists())
        soft(first)
        self.assert_suppressed(first, Bounce.Kind.SOFT, "5.2.2")

    def test_one_notice_s_repeated_or_delayed_reports_never_suppress_its_address(self):
        order = sent_notice()
        again = came_back("gmail.eml", order, STATUS="4.2.2", STATUS_LINE=MAILBOX_FULL)
        delayed = again.replace(b"Action: failed", b"Action: delayed")
        three_blocks = again.replace(
            b"Action: failed",
            b"Action: failed\n\nFinal-Recipient: rfc822; ann@example.com\n"
            b"Action: failed\nStatus: 4.2.2\n\nFinal-Recipient: rfc822; ann@example.com\n"
            b"Action: failed\nStatus: 4.2.2",
            1,
        )
        for raw in (again, again, again, three_blocks):
            self.assertEqual(bounces.handle(raw, []), 1)
        for _ in range(3):
            self.assertEqual(bounces.handle(delayed, []), 0)  # it may yet arrive
        self.assertFalse(Suppression.objects.exists())

    def test_a_complaint_suppresses_the_address_and_stops_its_mail(self):
        order = sent_notice()
        [waiting] = place("R2-A1", "ann@example.com")
        self.assertEqual(bounces.handle(came_back("arf.eml", order), []), 1)

        self.assert_suppressed(order, Bounce.Kind.COMPLAINT, "")
        waiting.refresh_from_db()
        self.assertEqual(waiting.state, State.STOPPED)
        self.assertIsNotNone(Customer.objects.get().mail_stopped_at)

    def test_a_suppressed_address_is_never_offered_to_the_mail_server(self):
        ann = sent_notice()
        bounces.handle(came_back("postfix.eml", ann), [])
        # Ann waits for another robot, and places the order again; Bob waits too.
        [waiting, _] = place("R2-A1", "ann@example.com", "bob@example.com")
        self.assertEqual(
            self.client.post(
                "/create_order/", {"email": "ann@example.com", "robot-serial": "R2-D2"}
            ).status_code,
            200,
        )
        self.assertEqual(waiting.state, State.WAITING)  # the factory's demand counts it
        produce("R2-A1")
        with smtp_server() as server:
            drain()

        self.assertEqual(server.offered, ["bob@example.com"])
        waiting.refresh_from_db()
        self.assertEqual(waiting.state, State.FAILED)
        self.assertIn("suppressed", waiting.last_error)

    def test_an_address_suppressed_while_its_batch_is_sent_is_not_offered(self):
        ann, bob = place("R2-D2", "ann@example.com", "bob@example.com")
        produce("R2-D2")

        def bob_bounces_elsewhere(order):
            if order.pk == ann.pk:
                outbox.bounced(bob, Bounce.Kind.HARD, "5.1.1", "from an earlier notice")

        with smtp_server() as server:
            deliver_before(after=bob_bounces_elsewhere)
        self.assertEqual(server.offered, ["ann@example.com"])
        bob.refresh_from_db()
        self.assertEqual((bob.state, bob.last_error), (State.FAILED, outbox.SUPPRESSED))

    def test_the_order_page_tells_the_customer_that_mail_to_the_address_came_back(self):
        order = sent_notice()
        bounces.handle(came_back("postfix.eml", order), [])
        response = self.client.post(
            "/create_order/",
            {"email": "ann@example.com", "robot-serial": "R2-D2"},
            headers={"Accept": "text/html"},
            follow=True,
        )
        self.assertContains(response, "<h1>Письма на этот адрес не доходят</h1>", html=True)
        self.assertContains(response, "возвращаются к нам")

    def test_a_hard_refusal_at_rcpt_suppresses_at_once_another_5xx_does_not(self):
        place("R2-D2", "gone@example.com", "policy@example.com")
        produce("R2-D2")
        with smtp_server() as server:
            server.refuse["gone@example.com"] = "550 5.1.1 <gone@example.com>: User unknown"
            server.refuse["policy@example.com"] = "554 5.7.1 Message rejected by policy"
            drain()
        suppression = Suppression.objects.get()
        self.assertEqual(suppression.customer.email, "gone@example.com")
        self.assertEqual((suppression.kind, suppression.status), (Bounce.Kind.HARD, "5.1.1"))
        self.assertEqual(suppression.order.bounces.get().status, "5.1.1")

        place("R2-D2", "gone@example.com", "policy@example.com")  # placed again, in stock
        with smtp_server() as server:
            drain()
        self.assertEqual(server.offered, ["policy@example.com"])

    def test_managers_see_suppressions_and_lift_one_which_is_logged(self):
        order = sent_notice()
        bounces.handle(came_back("postfix.eml", order), [])
        self.client.force_login(User.objects.create_superuser("boss", "boss@r4c.test", "pw"))

        listing = self.client.get("/admin/orders/suppression/")
        self.assertContains(listing, "ann@example.com")
        self.assertContains(listing, "5.1.1")
        self.assertContains(listing, "550 5.1.1")
        page = self.client.get(f"/admin/orders/order/{order.pk}/change/")
        self.assertContains(page, "Recipient address rejected")

        response = self.client.post(
            "/admin/orders/suppression/",
            {"action": "lift", "_selected_action": [order.customer_id]},
            follow=True,
        )
        self.assertContains(response, "Блокировка снята с адресов: 1.")
        self.assertFalse(Suppression.objects.exists())
        self.assertTrue(LogEntry.objects.filter(action_flag=DELETION).exists())
        place("R2-A1", "ann@example.com")
        produce("R2-A1")
        with smtp_server() as server:
            drain()
        self.assertEqual(server.recipients(), ["ann@example.com"])

    def test_metrics_count_bounces_by_kind_and_suppressed_addresses(self):
        order = sent_notice()
        raw = came_back("gmail.eml", order, STATUS="5.2.2", STATUS_LINE=MAILBOX_FULL)
        bounces.handle(raw, [])
        bounces.handle(came_back("arf.eml", order), [])
        found = samples(self.client.get("/metrics").content)
        self.assertEqual(found[("r4c_bounces_total", (("kind", "soft"),))], 1)
        self.assertEqual(found[("r4c_bounces_total", (("kind", "complaint"),))], 1)
        self.assertEqual(found[("r4c_bounces_total", (("kind", "hard"),))], 0)
        self.assertEqual(found[("r4c_suppressed_addresses", ())], 1)

    def test_forgetting_the_customer_erases_bounces_and_suppression(self):
        order = sent_notice()
        bounces.handle(came_back("postfix.eml", order), [])
        call_command("forget_customer", "ann@example.com", stdout=open("/dev/null", "w"))  # noqa: SIM115
        self.assertFalse(Suppression.objects.exists())
        self.assertFalse(Bounce.objects.exists())

    def test_a_suppressed_address_outlives_the_purge_of_its_old_orders(self):
        order = sent_notice()
        bounces.handle(came_back("postfix.eml", order), [])
        outbox.purge(now=timezone.now() + timedelta(days=365))
        self.assertFalse(Order.objects.exists())
        self.assertTrue(Suppression.objects.filter(customer__email="ann@example.com").exists())


class DeployCheckTests(TestCase):
    def ids(self) -> set[str]:
        return {m.id for m in run_checks(include_deployment_checks=True) if m.id}

    def test_it_warns_without_a_bounce_address_or_with_one_at_another_domain(self):
        sender = "R4C <robots@r4c.example.com>"
        for bounce_address, warned in [
            ("", {"orders.W003"}),
            ("bounces@elsewhere.example", {"orders.W004"}),
            ("bounces@r4c.example.com", set()),
            ("bounces@mail.r4c.example.com", set()),  # a subdomain is aligned (relaxed)
        ]:
            with (
                self.subTest(bounce_address=bounce_address),
                override_settings(DEFAULT_FROM_EMAIL=sender, BOUNCE_ADDRESS=bounce_address),
            ):
                self.assertEqual(self.ids() & {"orders.W003", "orders.W004"}, warned)


def run_bounce(raw: bytes, **env: str) -> subprocess.CompletedProcess:
    """`manage.py bounce` as an MTA's pipe runs it: the message on stdin."""
    return subprocess.run(
        [sys.executable, "manage.py", "bounce"],
        input=raw,
        cwd=ROOT,
        env=environment(
            **{"DATABASE_URL": database_url(), "BOUNCE_ADDRESS": BOUNCE_ADDRESS} | env
        ),
        capture_output=True,
        timeout=60,
        check=False,
    )


@pytest.mark.slow
@override_settings(BOUNCE_ADDRESS=BOUNCE_ADDRESS)
class BounceCommandTests(TransactionTestCase):
    """The command in a process of its own, on the test database."""

    def setUp(self):
        catalog()

    def test_a_bounce_is_handled_and_anything_else_ignored_with_exit_0(self):
        order = sent_notice()
        for name in ["autoreply.eml", "postfix.eml"]:
            with self.subTest(fixture=name):
                run = run_bounce(came_back(name, order))
                self.assertEqual(run.returncode, 0, run.stderr)
        self.assertEqual(Suppression.objects.get().customer, order.customer)
        # The log names the order and what came back, never the address.
        self.assertIn(f"order {order.pk}: hard bounce 5.1.1".encode(), run.stderr)
        self.assertNotIn(b"ann@example.com", run.stderr)

    def test_it_never_shows_a_traceback(self):
        for case, raw in {
            "a truncated message": (FIXTURES / "postfix.eml").read_bytes()[:900],
            "binary noise": bytes(range(256)) * 40,
            "an empty message": b"",
            # flufl.bounce's detectors fail on it, and log their own traceback.
            "an 8-bit From": b"From: Mail Delivery \xd0\x9f\xff <MAILER-DAEMON@mx.example.com>\r\n"
            b"To: bounces@r4c.example.com\r\nSubject: failure notice\r\n\r\n"
            b"<ann@example.com>:\r\nSorry, no mailbox here by that name. (#5.1.1)\r\n",
        }.items():
            with self.subTest(case=case):
                run = run_bounce(raw)
                self.assertEqual(run.returncode, 0, run.stderr)
                self.assertNotIn(b"Traceback", run.stderr)

    def test_under_make_run_s_settings_a_report_to_a_notice_s_tag_suppresses(self):
        order = sent_notice()
        # make run: DEBUG on, no BOUNCE_ADDRESS of its own; notices carry the signed tag.
        run = run_bounce(
            came_back("postfix.eml", order, to=bounces.envelope_sender(order.pk)),
            DEBUG="true",
            BOUNCE_ADDRESS="",
        )
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertEqual(Suppression.objects.get().customer, order.customer)

    def test_a_ten_megabyte_message_is_refused_quickly_without_being_kept(self):
        started = time.monotonic()
        run = run_bounce(b"Subject: big\r\n\r\n" + b"x" * (10 * 1024 * 1024))
        self.assertLess(time.monotonic() - started, 10)
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertIn(b"over 1048576 bytes", run.stderr)

    def test_with_the_database_unavailable_it_exits_75_so_the_mta_retries(self):
        if database_url().startswith("sqlite"):
            url = "sqlite:////nonexistent/r4c/db.sqlite3"
        else:
            url = f"postgres://postgres@127.0.0.1:{free_port()}/r4c"
        with override_settings(BOUNCE_ADDRESS=BOUNCE_ADDRESS):  # a tag: the notice is looked up
            tagged = bounces.envelope_sender(1)
        raw = Template((FIXTURES / "postfix.eml").read_text()).substitute(
            TO=tagged, ADDRESS="ann@example.com", MESSAGE_ID="<notice.1.2@example.com>"
        )
        run = run_bounce(raw.encode(), DATABASE_URL=url, BOUNCE_ADDRESS=BOUNCE_ADDRESS)
        self.assertEqual(run.returncode, 75, run.stderr)
        self.assertNotIn(b"Traceback", run.stderr)
