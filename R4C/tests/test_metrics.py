"""GET /metrics: the notices' numbers for Prometheus, read from the database."""

from datetime import timedelta

from django.contrib.auth.models import User
from django.test import TestCase, override_settings
from django.utils import timezone

from orders.models import Order
from orders.tests.smtp import smtp_server
from R4C.tests.world import catalog, drain, place, produce, samples
from robots.models import ApiKey


class MetricsTests(TestCase):
    def setUp(self):
        catalog()

    def scrape(self) -> dict[tuple, float]:
        response = self.client.get("/metrics")
        self.assertEqual(response.status_code, 200)
        self.assertTrue(response["Content-Type"].startswith("text/plain; version="))
        return samples(response.content)

    def test_three_mails_raise_sent_by_three_and_the_histogram_counts_them(self):
        before = self.scrape()
        place("R2-D2", "ann@example.com", "bob@example.com", "cid@example.com")
        produce("R2-D2")
        with smtp_server():
            drain()

        after = self.scrape()

        sent = ("r4c_notices", (("state", "sent"),))
        self.assertEqual(after[sent] - before[sent], 3)
        count = ("r4c_notice_delivery_seconds_count", ())
        self.assertEqual(after[count] - before[count], 3)
        self.assertEqual(after[("r4c_notice_delivery_seconds_bucket", (("le", "+Inf"),))], 3)
        self.assertEqual(after[("r4c_smtp_replies_total", (("class", "2xx"),))], 3)
        self.assertEqual(after[("r4c_notices", (("state", "waiting"),))], 0)

    def test_requests_are_counted_by_view_and_status(self):
        self.client.get("/healthz")
        self.client.get("/nowhere")

        found = self.scrape()

        self.assertGreaterEqual(
            found[("r4c_http_request_seconds_count", (("status", "200"), ("view", "healthz")))], 1
        )
        unmatched = ("r4c_http_request_seconds_count", (("status", "404"), ("view", "unmatched")))
        self.assertGreaterEqual(found[unmatched], 1)

    def test_every_state_is_there_and_stuck_mail_shows(self):
        produce("R2-D2")
        place("R2-D2", "ann@example.com")
        with smtp_server() as server:
            server.temporary_failures = 1
            drain()
        Order.objects.update(due_at=timezone.now() - timedelta(minutes=11))

        found = self.scrape()

        states = {"waiting", "due", "sending", "sent", "failed", "stopped"}
        self.assertEqual(
            {dict(labels)["state"] for name, labels in found if name == "r4c_notices"}, states
        )
        self.assertEqual(found[("r4c_notices", (("state", "due"),))], 1)
        self.assertEqual(found[("r4c_smtp_replies_total", (("class", "4xx"),))], 1)
        self.assertGreaterEqual(found[("r4c_notice_oldest_unsent_seconds", ())], 660)
        self.assertEqual(found[("r4c_arrivals_pending", ())], 0)


@override_settings(API_KEYS_REQUIRED=True)
class MetricsAccessTests(TestCase):
    def test_production_wants_a_key_or_a_staff_session(self):
        self.assertEqual(self.client.get("/metrics").status_code, 401)

        _, key = ApiKey.issue("prometheus")
        with_key = self.client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {key}")
        self.assertEqual(with_key.status_code, 200)

        self.client.force_login(User.objects.create_user("manager", is_staff=True))
        self.assertEqual(self.client.get("/metrics").status_code, 200)

    def test_it_answers_only_get_and_head(self):
        self.assertEqual(self.client.post("/metrics").status_code, 405)
