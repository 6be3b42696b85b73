"""The API's one error shape (RFC 9457 problem details) and its method guard."""

import logging
from collections.abc import Callable
from functools import wraps
from http import HTTPStatus
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network

from django.conf import settings
from django.db import InterfaceError, OperationalError, connections
from django.forms import Form
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.template import loader
from django.urls import Resolver404, resolve
from django.utils import translation
from django.views.defaults import page_not_found

log = logging.getLogger(__name__)

PROBLEM_CONTENT_TYPE = "application/problem+json"


def problem(
    status: int,
    detail: str,
    errors: dict[str, list[str]] | None = None,
    *,
    retry_after: int | None = None,
) -> JsonResponse:
    """Answer `status` with a problem document; `errors` maps a field to its messages.

    `retry_after`: seconds after which the client may try again (503, 429).
    """
    title = HTTPStatus(status).phrase
    body = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
        "errors": errors or {},
    }
    # ASCII JSON (\u escapes): field names echoed from a request may hold lone surrogates,
    # which have no UTF-8 form.
    response = JsonResponse(body, status=status, content_type=PROBLEM_CONTENT_TYPE)
    if retry_after is not None:
        response["Retry-After"] = str(retry_after)
    return response


def allow_methods(*methods: str) -> Callable:
    """Like Django's require_http_methods, but a wrong method gets the problem shape."""

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def inner(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if request.method not in methods:
                response = problem(
                    405,
                    f"{request.method} is not allowed here; use {' or '.join(methods)}.",
                )
                response["Allow"] = ", ".join(methods)
                return response
            return view(request, *args, **kwargs)

        return inner

    return decorator


def in_english(view: Callable) -> Callable:
    """The API speaks English, Django's own validation messages included, whatever
    LANGUAGE_CODE gives the pages that people read."""

    @wraps(view)
    def inner(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        with translation.override("en"):
            return view(request, *args, **kwargs)

    return inner


def prefers_html(request: HttpRequest) -> bool:
    """Does the client rank a page above JSON, as browsers do (`text/html,...,*/*;q=0.8`)?

    curl and API clients send `*/*`, JSON or nothing, and get JSON.
    """
    return request.get_preferred_type(["application/json", "text/html"]) == "text/html"


def form_problem(form: Form, detail: str) -> JsonResponse:
    """400 with the form's field errors as plain messages."""
    errors = {
        field: [error["message"] for error in messages]
        for field, messages in form.errors.get_json_data().items()
    }
    return problem(400, detail, errors)


def max_body(limit: int) -> Callable:
    """The largest body (bytes, by its Content-Length) the view takes; a larger one is a 413
    before it is read. Views without one take DATA_UPLOAD_MAX_MEMORY_SIZE."""

    def decorator(view: Callable) -> Callable:
        view.max_body = limit
        return view

    return decorator


def body_limit(path: str) -> int:
    try:
        view = resolve(path).func
    except Resolver404:
        view = None  # a 404 then, as for any other request
    return getattr(view, "max_body", settings.DATA_UPLOAD_MAX_MEMORY_SIZE)


# How long a client should wait before it tries again after a 503.
UNAVAILABLE_RETRY_AFTER = 5
READ_ONLY = "25006"  # PostgreSQL's read_only_sql_transaction


class ProblemMiddleware:
    """A database that is down, locked for too long or full is a 503 problem, not a 500 page.

    The request's transaction is rolled back by then (ATOMIC_REQUESTS is off; each write is
    its own transaction), so nothing is half written and the client may simply retry.
    """

    def __init__(self, get_response: Callable):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        length = request.META.get("CONTENT_LENGTH") or ""
        chunked = "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower()
        if chunked and not length:
            # Django reads a body by its length: without one it would see an empty body.
            return problem(411, "Send the body with a Content-Length, not chunked.")
        # Before anything reads the body (the CSRF check reads a form's): refused unread.
        if length.isdigit() and int(length) > (limit := body_limit(request.path_info)):
            return problem(413, f"The body is over {limit} bytes, this endpoint's limit.")
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception):
        # A server that turned read-only (a standby, a primary demoted after a failover)
        # wrote nothing: its connections go, and the request is tried once more on a new
        # one, which a multi-host DATABASE_URL's target_session_attrs leads to the primary.
        read_only = getattr(exception.__cause__, "sqlstate", None) == READ_ONLY
        if not read_only and not isinstance(exception, (OperationalError, InterfaceError)):
            return None
        log.error("database unavailable for %s %s: %s", request.method, request.path, exception)
        for connection in connections.all(initialized_only=True):
            if read_only:
                connection.close()
            else:  # a broken connection must not be handed to the next request
                connection.close_if_unusable_or_obsolete()
        if read_only and not getattr(request, "tried_again", False):
            request.tried_again = True
            return self.get_response(request)
        return problem(
            503,
            "The database is unavailable right now; try again shortly.",
            retry_after=UNAVAILABLE_RETRY_AFTER,
        )


def server_error(request: HttpRequest) -> JsonResponse:
    """handler500: the API's error shape, also for what nobody foresaw."""
    return problem(500, "Something went wrong on our side; it has been logged.")


def _wants_page(request: HttpRequest) -> bool:
    # The admin, and a browser anywhere, read pages (400.html, 404.html); API clients read
    # problems.
    return request.path.startswith("/admin/") or prefers_html(request)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """handler400: what Django itself refuses (a malformed request) in the API's shape."""
    if _wants_page(request):
        # Not Django's own bad_request view: it checks the CSRF token, which reads the body
        # that could not be read, and fails again (a 500).
        return HttpResponseBadRequest(loader.render_to_string("400.html"))
    return problem(400, "The request is malformed.")


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """handler404: problem+json for the API; pages for the admin and browsers."""
    if _wants_page(request):
        return page_not_found(request, exception)
    return problem(404, f"There is nothing at {request.path}.")


def client_address(request: HttpRequest) -> str:
    """The client as the order limits and the admin's lockout count it: its IPv4 address, or
    the /64 network of its IPv6 address (what one host is given), as that network's address.

    The address the connection came from; over a local socket (make serve's nginx,
    deploy/nginx-site.conf), the one nginx saw, which it sets in X-Real-IP over anything a
    client wrote. When that address is one of TRUSTED_PROXIES, the nearest address in
    X-Forwarded-For that is not (each proxy appends the address it saw; what stands further
    left is whatever the client wrote); a malformed hop ends the walk, so that what a
    client writes can never make it someone else, or no one. Never empty: a socket with no
    X-Real-IP counts as 0.0.0.0, one client for all such requests.
    """
    peer = request.META.get("REMOTE_ADDR", "")
    client = _ip(request.headers.get("X-Real-IP", "") if peer == "" else peer)
    client = client or ip_address("0.0.0.0")
    forwarded = request.headers.get("X-Forwarded-For", "")
    for hop in reversed(forwarded.split(",") if len(forwarded) < 1000 else []):
        if not _trusted(client) or (hop := _ip(hop)) is None:
            break
        client = hop
    if client.version == 6:
        if client.ipv4_mapped:
            return str(client.ipv4_mapped)
        return str(ip_network(f"{client}/64", strict=False).network_address)
    return str(client)


def _ip(text: str) -> IPv4Address | IPv6Address | None:
    try:
        return ip_address(text.strip())
    except ValueError:
        return None


def _trusted(address: IPv4Address | IPv6Address) -> bool:
    return any(address in network for network in settings.TRUSTED_PROXIES)
