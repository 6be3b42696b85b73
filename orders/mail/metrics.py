"""What `/metrics` says about the notices, read from the database at scrape time.

Every web process answers the same numbers, whichever one Prometheus reaches, because they
come from the database, not from counters in a process: from the tally the database keeps
as it writes (`Tally`), and the worker's backlog over its indexes, so that a scrape takes
as long at a million orders as at ten thousand. The counters count every attempt and bounce
ever recorded, also those forgotten since with their notices.
"""

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)

from orders.mail.outbox import backlog
from orders.models import BUCKETS, REPLY_CLASSES, Bounce, Heartbeat, State, Tally


class NoticeCollector:
    """The r4c_* families: the tally, and the backlog over the worker's indexes."""

    def describe(self) -> list:
        # Registering a collector without this would collect it at once: a query at import.
        return []

    def collect(self):
        tally = Tally.counts()
        notices = GaugeMetricFamily("r4c_notices", "Notices by state.", labels=["state"])
        for state in State:
            notices.add_metric([state.value], tally[f"notices.{state.value}"])
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
        for name in [*REPLY_CLASSES, "connection"]:
            replies.add_metric([name], tally[f"replies.{name}"])
        yield replies

        bounces = CounterMetricFamily(
            "r4c_bounces",
            "Bounces and complaints that came back about notices, by kind.",
            labels=["kind"],
        )
        for kind in Bounce.Kind:
            bounces.add_metric([kind.value], tally[f"bounces.{kind.value}"])
        yield bounces
        yield GaugeMetricFamily(
            "r4c_suppressed_addresses",
            "Addresses no notice is sent to: they bounced or complained.",
            value=tally["suppressed"],
        )

        within, cumulative = [], 0
        for le in BUCKETS:
            cumulative += tally[f"delivery.{le}"]
            within.append((str(le), cumulative))
        yield HistogramMetricFamily(
            "r4c_notice_delivery_seconds",
            "Seconds from a notice becoming due to the mail server accepting it.",
            buckets=[*within, ("+Inf", tally["delivery.count"])],
            sum_value=tally["delivery.ms"] / 1000,
        )
