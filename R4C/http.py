"""The API's one error shape (RFC 9457 problem details) and its method guard."""

from collections.abc import Callable
from functools import wraps
from http import HTTPStatus

from django.forms import Form
from django.http import HttpRequest, HttpResponse, JsonResponse

PROBLEM_CONTENT_TYPE = "application/problem+json"


def problem(status: int, detail: str, errors: dict[str, list[str]] | None = None) -> JsonResponse:
    """Answer `status` with a problem document; `errors` maps a field to its messages."""
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
    return JsonResponse(body, status=status, content_type=PROBLEM_CONTENT_TYPE)


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


def form_problem(form: Form, detail: str) -> JsonResponse:
    """400 with the form's field errors as plain messages."""
    errors = {
        field: [error["message"] for error in messages]
        for field, messages in form.errors.get_json_data().items()
    }
    return problem(400, detail, errors)
