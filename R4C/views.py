from django.db import DatabaseError
from django.http import HttpRequest, JsonResponse

from orders.notices import backlog
from R4C.http import allow_methods, unavailable


@allow_methods("GET", "HEAD")
def healthz(request: HttpRequest) -> JsonResponse:
    """For a load balancer or a monitor: is the database there, and is the worker keeping up?"""
    try:
        notices = backlog()
    except DatabaseError:
        return unavailable("The database does not answer.")
    return JsonResponse({"status": "ok", "database": "ok", "notices": notices})
