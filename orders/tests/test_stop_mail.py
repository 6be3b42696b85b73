"""One click in a notice stops mail to its address (RFC 8058), and nothing else can."""

import re

from django.test import Client, TestCase, override_settings
from django.utils import timezone

from customers.models import Customer
from orders.mail import outbox
from orders.models import Order, StopLink
from orders.tests.smtp import smtp_server
from R4C.tests.world import BODY, catalog, deliver_before, drain, place, produce, text_of

SENDER = "R4C <robots@r4c.example.com>"
# In the raw bytes, where a long header may be folded (CRLF and a space), which every mail
# parser unfolds; what must not happen is an RFC 2047 encoded word.
LINK = re.compile(
    rb"\r\nList-Unsubscribe:\s+<https://r4c\.example\.com(/stop/[A-Za-z0-9_-]+/)>\r\n"
)


@override_settings(DEFAULT_FROM_EMAIL=SENDER, SITE_URL="https://r4c.example.com")
class StopMailTests(TestCase):
    def setUp(self):
        catalog()
        # As a mail provider's one-click POST comes: no cookie, no CSRF token.
        self.provider = Client(enforce_csrf_checks=True)

    def notice_for(self, serial: str, email: str = "ann@example.com"):
        """Place the order, produce its robot, deliver: (raw bytes, parsed message, stop path)."""
        place(serial, email)
        produce(serial)
        with smtp_server() as server:
            drain()
        [raw], [(_, message)] = server.raw, server.messages
        return raw, message, LINK.search(raw).group(1).decode()

    def orders(self) -> dict[str, str]:
        return dict(Order.objects.values_list("robot_serial", "state"))

    def test_a_notice_carries_both_headers_as_plain_ascii_and_the_factory_s_text(self):
        raw, message, path = self.notice_for("R2-D2")

        headers = raw.split(b"\r\n\r\n", 1)[0]
        self.assertTrue(headers.isascii())
        unfolded = headers.replace(b"\r\n ", b" ").split(b"\r\n")
        self.assertIn(f"List-Unsubscribe: <https://r4c.example.com{path}>".encode(), unfolded)
        self.assertIn(b"List-Unsubscribe-Post: List-Unsubscribe=One-Click", unfolded)
        self.assertEqual(message["List-Unsubscribe"].strip(), f"<https://r4c.example.com{path}>")
        self.assertRegex(message["Message-ID"], r"^<[^@>]+@r4c\.example\.com>$")
        text, signature = text_of(message).split("\n\n-- \n")
        self.assertEqual(text, BODY)
        self.assertEqual(message["Auto-Submitted"], "auto-generated")
        # The stop link in plain sight: the very URL of the header.
        self.assertIn(
            f"Больше не присылать писем на этот адрес: https://r4c.example.com{path}\n", signature
        )
        self.assertNotIn("Связаться", signature)  # no FACTORY_CONTACT set
        # Only the hash is stored, never the secret in the link.
        secret = path.split("/")[2]
        self.assertFalse(StopLink.objects.filter(digest__contains=secret).exists())
        self.assertEqual(StopLink.objects.count(), 1)

    @override_settings(FACTORY_CONTACT="+7 495 000-00-00, sales@r4c.example.com")
    def test_the_signature_says_how_to_reach_the_factory_when_it_is_set(self):
        _, message, _ = self.notice_for("R2-D2")
        signature = text_of(message).split("\n\n-- \n")[1]
        self.assertIn("Связаться с заводом: +7 495 000-00-00, sales@r4c.example.com\n", signature)

    def test_the_notice_links_to_its_robot_chosen_in_the_catalog(self):
        _, message, _ = self.notice_for("R2-D2")
        signature = text_of(message).split("\n\n-- \n")[1]
        self.assertIn("Робот R2-D2 на сайте: https://r4c.example.com/?serial=R2-D2\n", signature)

        page = self.client.get("/?serial=R2-D2")
        self.assertContains(page, '<option value="R2-D2" selected>')
        self.assertContains(page, 'id="robot-R2-D2"')

    def test_one_click_stops_mail_and_a_robot_for_another_waiting_order_sends_nothing(self):
        _, _, path = self.notice_for("R2-D2")
        place("R2-A1", "ann@example.com")
        place("R2-A1", "bob@example.com")

        response = self.provider.post(
            path, "List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded"
        )

        self.assertEqual(response.status_code, 200)
        self.assertContains(response, "Писем на <strong>ann@example.com</strong> больше не будет")
        self.assertEqual(
            Order.objects.get(robot_serial="R2-A1", customer__email="ann@example.com").state,
            "stopped",
        )
        produce("R2-A1")
        with smtp_server() as server:
            drain()
        self.assertEqual(server.recipients(), ["bob@example.com"])
        self.assertIsNotNone(Customer.objects.get(email="ann@example.com").mail_stopped_at)

    def test_opening_the_link_only_asks_and_changes_nothing(self):
        _, _, path = self.notice_for("R2-D2")
        place("R2-A1", "ann@example.com")

        response = self.provider.get(path)

        self.assertContains(response, "Отписаться от писем?")
        self.assertContains(response, '<form method="post">')
        self.assertEqual(self.orders(), {"R2-D2": "sent", "R2-A1": "waiting"})
        self.assertIsNone(Customer.objects.get().mail_stopped_at)

    def test_a_link_opened_again_after_stopping_says_mail_is_already_stopped(self):
        _, _, path = self.notice_for("R2-D2")
        self.assertEqual(self.provider.post(path).status_code, 200)

        again = self.provider.get(path)
        self.assertContains(again, "Письма уже остановлены")
        self.assertNotContains(again, "<form")

    def test_a_wrong_or_forged_token_is_refused_with_a_page_and_changes_nothing(self):
        self.notice_for("R2-D2")
        place("R2-A1", "ann@example.com")
        digest = StopLink.objects.get().digest
        for token in ["x" * 43, digest, "abc", "%00" * 30]:
            for method in ("get", "post"):
                with self.subTest(token=token, method=method):
                    response = getattr(self.provider, method)(f"/stop/{token}/")

                    self.assertContains(response, "Ссылка не найдена", status_code=404)
                    self.assertContains(response, "Ничего не изменилось", status_code=404)
        self.assertEqual(self.orders(), {"R2-D2": "sent", "R2-A1": "waiting"})
        self.assertIsNone(Customer.objects.get().mail_stopped_at)

    def test_placing_an_order_again_after_stopping_mails_again(self):
        _, _, path = self.notice_for("R2-D2")
        self.provider.post(path)

        place("R2-D2", "ann@example.com")  # mailed today already: for the next robot
        produce("R2-D2")
        with smtp_server() as server:
            drain()

        self.assertEqual(server.recipients(), ["ann@example.com"])
        self.assertIsNone(Customer.objects.get().mail_stopped_at)

    def test_a_stranger_who_places_someone_s_order_gets_no_way_to_stop_it(self):
        produce("R2-D2")
        api = Client().post(
            "/create_order/", {"email": "ann@example.com", "robot-serial": "R2-D2"}
        )
        page = Client(HTTP_ACCEPT="text/html").get("/")

        for answer in (api, page):
            self.assertNotIn(b"/stop/", answer.content)
        self.assertFalse(StopLink.objects.exists())  # made only when the mail is

    def press_stop(self, email: str = "ann@example.com") -> None:
        """What the one-click POST does, for a link of `email`'s last notice."""
        [secret] = StopLink.issue([Customer.objects.get(email=email)])
        self.assertEqual(self.provider.post(f"/stop/{secret}/").status_code, 200)

    def test_a_stop_while_a_notice_is_on_the_wire_is_final_when_the_server_says_451(self):
        self.notice_for("R2-D2")
        place("R2-A1", "ann@example.com")
        produce("R2-A1")

        with smtp_server() as server:
            server.temporary_failures = 1  # the notice on the wire is answered 451
            deliver_before(before=lambda _: self.press_stop())
            Order.objects.update(next_attempt_at=timezone.now())
            drain()

        self.assertEqual(server.recipients(), [])
        self.assertEqual(self.orders(), {"R2-D2": "sent", "R2-A1": "stopped"})
        attempt = Order.objects.get(robot_serial="R2-A1").attempt_log.get()
        self.assertEqual(attempt.code, 451)  # the exchange stays on record

    def test_a_notice_claimed_before_the_stop_is_not_sent(self):
        self.notice_for("R2-D2")
        place("R2-A1", "ann@example.com", "bob@example.com")
        produce("R2-A1")
        outbox.make_due()
        _, claimed = outbox.claim(10)
        self.assertEqual(len(claimed), 2)

        self.press_stop()
        with smtp_server() as server:
            Order.objects.update(claimed_until=timezone.now())  # as if its worker died
            drain()

        self.assertEqual(server.recipients(), ["bob@example.com"])
        self.assertEqual(
            dict(
                Order.objects.values_list("customer__email", "state").filter(robot_serial="R2-A1")
            ),
            {"ann@example.com": "stopped", "bob@example.com": "sent"},
        )
