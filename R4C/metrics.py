"""Request metrics, and the registry `/metrics` answers from.

Under gunicorn's several worker processes (`make serve`), each process writes its samples
to PROMETHEUS_MULTIPROC_DIR and a scrape sums them all (prometheus_client's multiprocess
mode), so whichever process Prometheus reaches answers the same numbers; the notices'
numbers come from the database (orders/mail/metrics.py).
"""

import os
import time
import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from prometheus_client import REGISTRY, CollectorRegistry, Histogram
from prometheus_client.multiprocess import MultiProcessCollector

from orders.mail.metrics import NoticeCollector

REQUESTS = Histogram(
    "r4c_http_request_seconds",
    "Seconds to answer a request, by view (its URL name) and status.",
    ["view", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
NOTICES = NoticeCollector()
REGISTRY.register(NOTICES)


def registry() -> CollectorRegistry:
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    combined = CollectorRegistry()
    MultiProcessCollector(combined)
    combined.register(NOTICES)
    return combined


class RequestMetricsMiddleware:
    """Times every answer, labelled by its view's URL name (a bounded set, unlike paths), and
    gives each request an id: the proxy's X-Request-ID if it sent a sane one, else a new one.
    The answer carries it back, and every log line about the request names it."""

    def __init__(self, get_response: Callable):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        given = request.headers.get("X-Request-ID", "")
        sane = given.isascii() and given.isprintable() and 0 < len(given) <= 64
        request.id = given if sane else uuid.uuid4().hex
        response = self.get_response(request)
        response["X-Request-ID"] = request.id
        match = request.resolver_match
        view = (match.view_name if match else "") or "unmatched"
        REQUESTS.labels(view, str(response.status_code)).observe(time.perf_counter() - started)
        return response
