"""GET /metrics: the notices' numbers for Prometheus, read from the database."""

import re
from collections import Counter
from datetime import timedelta

from django.contrib.auth.models import User
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.models import Count
from django.test import TestCase, TransactionTestCase, override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from customers.models import Customer
from orders.mail import outbox
from orders.models import BUCKETS, Attempt, Bounce, Order, Suppression, Tally
from orders.tests.smtp import smtp_server
from R4C.tests.world import catalog, drain, mail_gone_out, place, produce, samples
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


def counted() -> Counter:
    """What the tally should say, counted from the tables themselves."""
    truth = Counter()
    for state, n in Order.objects.values_list("state").annotate(n=Count("pk")).order_by():
        truth[f"notices.{state}"] = n
    for code, waited in Attempt.objects.values_list("code", "waited"):
        truth[f"replies.{code // 100}xx" if code else "replies.connection"] += 1
        if waited is not None:
            truth[f"delivery.{next((le for le in BUCKETS if waited <= le), '+Inf')}"] += 1
            truth["delivery.count"] += 1
            truth["delivery.ms"] += round(waited * 1000)
    for kind in Bounce.objects.values_list("kind", flat=True):
        truth[f"bounces.{kind}"] += 1
    truth["suppressed"] = Suppression.objects.count()
    return +truth  # without the zeros


class TallyTests(TestCase):
    """/metrics reads a tally that the database keeps as it writes: it must be what the
    tables hold, through every change a notice goes through, and stay so when folded."""

    def setUp(self):
        catalog()

    def test_the_tally_is_what_the_tables_hold_through_every_change_and_when_folded(self):
        mail_gone_out()  # sent, refused for good, retrying, stopped, waiting; bounces
        self.assertEqual(+Tally.counts(), counted())
        self.assertEqual(
            {"notices.sent", "notices.failed", "notices.due", "notices.stopped",
             "notices.waiting", "replies.2xx", "replies.4xx", "replies.5xx", "bounces.hard",
             "bounces.soft", "suppressed"} - set(+Tally.counts()),
            set(),
        )  # fmt: skip

        Tally.fold()
        self.assertEqual(+Tally.counts(), counted())
        self.assertEqual(Tally.objects.count(), len(counted()))  # one row a name

        # Gone: a customer forgotten, a suppression lifted, notices purged. The gauges
        # follow the tables; the counters keep what was counted.
        before = Tally.counts()
        Customer.objects.get(email="bob@example.com").forget()
        outbox.lift(Suppression.objects.all())
        outbox.purge(now=timezone.now() + timedelta(days=365))
        after = Tally.counts()
        for name in before | after:
            if name.startswith("notices.") or name == "suppressed":
                self.assertEqual(after[name], counted()[name], name)
            else:
                self.assertEqual(after[name], before[name], name)

    def test_health_reads_use_indexes_not_the_orders_or_attempts_whole(self):
        mail_gone_out()
        self.client.force_login(User.objects.create_superuser("boss", "boss@example.com", "x"))
        with CaptureQueriesContext(connection) as reads:
            self.assertEqual(self.client.get("/healthz").status_code, 200)
            self.assertEqual(self.client.get("/metrics").status_code, 200)
        # Read whole by design: a few rows each, whatever the orders. The orders only through
        # the partial indexes of what is pending, the tally through its own; the attempts not
        # at all.
        small = {"orders_tally", "orders_arrival", "orders_heartbeat"}
        indexed = {"order_due_idx", "order_sending_idx", "tally_idx"}
        postgresql = connection.vendor == "postgresql"
        with connection.cursor() as cursor:
            if postgresql:
                cursor.execute("SET LOCAL enable_seqscan = off")  # an index wherever one serves
            for read in reads.captured_queries:
                if "orders_" not in read["sql"]:
                    continue
                cursor.execute(f"EXPLAIN {'' if postgresql else 'QUERY PLAN '}{read['sql']}")
                plan = "\n".join(str(row[-1]) for row in cursor.fetchall())
                if postgresql:
                    whole = re.findall(r"Seq Scan on (\w+)", plan)
                    indexes = re.findall(r"Index (?:Only )?Scan (?:using|on) (\w+)", plan)
                else:
                    whole = re.findall(r"SCAN (\w+)$", plan, re.MULTILINE)
                    indexes = re.findall(r"USING (?:COVERING )?INDEX (\w+)", plan)
                self.assertLessEqual(set(whole), small, plan)
                self.assertLessEqual(
                    {i for i in indexes if not i.startswith(tuple(small))}, indexed, plan
                )


class TallyMigrationTests(TransactionTestCase):
    def test_a_populated_database_migrated_forward_starts_its_tally_from_its_tables(self):
        catalog()
        MigrationExecutor(connection).migrate([("orders", "0021_russian_names_for_internals")])
        mail_gone_out()  # written with no tally and no triggers

        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())

        self.assertEqual(+Tally.counts(), counted())
        self.assertIn("notices.sent", Tally.counts())
