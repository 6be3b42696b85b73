from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.templatetags.static import static
from django.views.decorators.csrf import csrf_exempt
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from orders.mail.outbox import backlog
from orders.mail.worker import wakeup
from orders.models import Heartbeat
from R4C import metrics as collected
from R4C import openapi as contract
from R4C.http import UNAVAILABLE_RETRY_AFTER, allow_methods, problem
from robots.access import require_key


@csrf_exempt  # so that a POST gets the 405 problem, not a CSRF page: this view only reads
@allow_methods("GET", "HEAD")
def healthz(request: HttpRequest) -> JsonResponse:
    """For a load balancer or a monitor: can the database record, and is the worker keeping up?

    200 whenever the database answers and takes writes, also with the worker down or mail
    stuck: those are for a monitor to alert on, not a reason for a load balancer to take
    this node out. A read-only server (a standby, a demoted primary) is a 503: nothing
    could be recorded there.
    """
    try:
        if not _writable():
            connection.close()  # the next request connects again, to the primary
            return problem(
                503,
                "The database is read-only (a standby, or a demoted primary): nothing can "
                "be recorded.",
                retry_after=UNAVAILABLE_RETRY_AFTER,
            )
        notices = backlog() | {"worker_seen_seconds": Heartbeat.seen_seconds(), "wakeup": wakeup()}
    except DatabaseError:
        return problem(503, "The database does not answer.", retry_after=UNAVAILABLE_RETRY_AFTER)
    return JsonResponse({"status": "ok", "database": "ok", "notices": notices})


def _writable() -> bool:
    if connection.vendor != "postgresql":
        return True
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT NOT pg_is_in_recovery() AND current_setting('transaction_read_only') = 'off'"
        )
        return cursor.fetchone()[0]


@csrf_exempt  # so that a POST gets the 405 problem, not a CSRF page: this view only reads
@allow_methods("GET", "HEAD")
@require_key(or_staff=True)
def metrics(request: HttpRequest) -> HttpResponse:
    """For Prometheus, in its text format: requests and notices. A key or staff in production."""
    return HttpResponse(generate_latest(collected.registry()), content_type=CONTENT_TYPE_LATEST)


@csrf_exempt  # as healthz
@allow_methods("GET", "HEAD")
def openapi(request: HttpRequest) -> JsonResponse:
    """The API's contract (R4C/openapi.py), for integrators and their client generators."""
    return JsonResponse(contract.document())


@allow_methods("GET", "HEAD")
def favicon(request: HttpRequest) -> HttpResponse:
    """Browsers ask every site for /favicon.ico: an icon, not a 404 in the log each time."""
    # Resolved per request: the hashed name exists only after collectstatic.
    return HttpResponseRedirect(static("orders/favicon.svg"))


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF_FAILURE_VIEW: a form posted without its token (the browser dropped the cookie, or
    the page is old) is asked again, in the site's words; no developer advice."""
    return render(request, "csrf_failure.html", status=403)
