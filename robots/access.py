"""Who may use the factory's endpoints: a machine with an API key, or a signed-in manager."""

from collections.abc import Callable
from functools import wraps
from urllib.parse import urlencode

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect

from R4C.http import prefers_html, problem
from robots.models import ApiKey


def require_key(*, or_staff: bool = False) -> Callable:
    """Let through a request with a live `Authorization: Bearer` key (or, with `or_staff`,
    from a signed-in staff user); others get 401 problem+json, and a signed-out browser on an
    `or_staff` page goes to the admin's login and back. Off when API_KEYS_REQUIRED is.
    """

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def inner(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            request.api_key = None
            if not settings.API_KEYS_REQUIRED:
                return view(request, *args, **kwargs)
            scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() == "bearer" and presented:
                request.api_key = ApiKey.authenticate(presented.strip())
                if request.api_key:
                    return view(request, *args, **kwargs)
            elif or_staff and request.user.is_active and request.user.is_staff:
                return view(request, *args, **kwargs)
            elif or_staff and prefers_html(request):
                login = f"/admin/login/?{urlencode({'next': request.get_full_path()})}"
                return HttpResponseRedirect(login)
            response = problem(
                401,
                "Send a valid API key: Authorization: Bearer <key>."
                if not presented
                else "The API key is not valid (wrong, malformed or revoked).",
            )
            response["WWW-Authenticate"] = 'Bearer realm="R4C"'
            return response

        return inner

    return decorator
