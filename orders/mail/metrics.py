"""What `/metrics` says about the notices, read from the database at scrape time.

Every web process answers the same numbers, whichever one Prometheus reaches, because they
come from the database, not from counters in a process. Counters are counted over the
attempts on record, which the worker forgets with their notices after
NOTICE_RETENTION_DAYS: Prometheus sees that as a counter reset, which `rate()` allows for.
"""

from django.db.models import Count, Q, Sum
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)

from orders.mail.outbox import backlog
from orders.models import Attempt, Bounce, Heartbeat, Order, State, Suppression

# Seconds from due to accepted: a notice should go within a second; an SMTP outage shows as
# minutes to hours (retries back off up to six hours).
BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600, 21600)
# SMTP reply classes; `connection`: the server never answered (down, refused, timed out).
REPLY_CLASSES = {
    "2xx": Q(code__gte=200, code__lt=300),
    "4xx": Q(code__gte=400, code__lt=500),
    "5xx": Q(code__gte=500, code__lt=600),
    "connection": Q(code__isnull=True),
}


class NoticeCollector:
    """The r4c_* families; a few queries a scrape, each over an index or a small table."""

    def describe(self) -> list:
        # Registering a collector without this would collect it at once: a query at import.
        return []

    def collect(self):
        states = dict(Order.objects.values_list("state").annotate(n=Count("pk")).order_by())
        notices = GaugeMetricFamily("r4c_notices", "Notices by state.", labels=["state"])
        for state in State:
            notices.add_metric([state.value], states.get(state.value, 0))
        yield notices

        waiting = backlog()
        yield GaugeMetricFamily(
            "r4c_notice_oldest_unsent_seconds",
            "Seconds since the oldest notice not yet accepted by the mail server became due.",
            value=waiting["oldest_unsent_seconds"],
        )
        yield GaugeMetricFamily(
            "r4c_arrivals_pending",
            "Robot arrivals whose waiting orders the worker has not yet made due.",
            value=waiting["arrivals"],
        )
        seen = Heartbeat.seen_seconds()
        yield GaugeMetricFamily(
            "r4c_worker_seen_seconds",
            "Seconds since a notice worker last showed it is alive (NaN: never).",
            value=float("nan") if seen is None else seen,
        )

        replies = CounterMetricFamily(
            "r4c_smtp_replies", "SMTP attempts by the server's reply class.", labels=["class"]
        )
        counted = Attempt.objects.aggregate(
            **{name: Count("pk", filter=match) for name, match in REPLY_CLASSES.items()}
        )
        for name in REPLY_CLASSES:
            replies.add_metric([name], counted[name])
        yield replies

        bounces = CounterMetricFamily(
            "r4c_bounces",
            "Bounces and complaints that came back about notices, by kind.",
            labels=["kind"],
        )
        kinds = dict(Bounce.objects.values_list("kind").annotate(n=Count("pk")).order_by())
        for kind in Bounce.Kind:
            bounces.add_metric([kind.value], kinds.get(kind.value, 0))
        yield bounces
        yield GaugeMetricFamily(
            "r4c_suppressed_addresses",
            "Addresses no notice is sent to: they bounced or complained.",
            value=Suppression.objects.count(),
        )

        sent = Attempt.objects.filter(waited__isnull=False)
        within = sent.aggregate(
            total=Count("pk"),
            seconds=Sum("waited"),
            **{f"le{i}": Count("pk", filter=Q(waited__lte=le)) for i, le in enumerate(BUCKETS)},
        )
        yield HistogramMetricFamily(
            "r4c_notice_delivery_seconds",
            "Seconds from a notice becoming due to the mail server accepting it.",
            buckets=[(str(le), within[f"le{i}"]) for i, le in enumerate(BUCKETS)]
            + [("+Inf", within["total"])],
            sum_value=within["seconds"] or 0,
        )
