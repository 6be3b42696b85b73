from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.templatetags.static import static
from django.views.decorators.csrf import csrf_exempt
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from orders.models import Worker
from orders.outbox import backlog
from R4C import metrics as collected
from R4C import openapi as contract
from R4C.http import UNAVAILABLE_RETRY_AFTER, allow_methods, problem
from robots.access import require_key


@csrf_exempt  # so that a POST gets the 405 problem, not a CSRF page: this view only reads
@allow_methods("GET", "HEAD")
def healthz(request: HttpRequest) -> JsonResponse:
    """For a load balancer or a monitor: is the database there, and is the worker keeping up?

    200 whenever the database answers, also with the worker down or mail stuck: those are
    for a monitor to alert on, not a reason for a load balancer to take this node out.
    """
    try:
        notices = backlog() | {"worker_seen_seconds": Worker.seen_seconds()}
    except DatabaseError:
        return problem(503, "The database does not answer.", retry_after=UNAVAILABLE_RETRY_AFTER)
    return JsonResponse({"status": "ok", "database": "ok", "notices": notices})


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
