"""References that the API is measured against, served by the same server.

Each does what its endpoint must do at the least (parse the body, insert its rows) and
nothing else: no validation, no catalog look-up, no limits, no hooks.
"""

import json
from datetime import datetime
from inspect import unwrap

from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from customers.models import Customer
from orders.models import Order
from R4C.http import in_english
from robots import views as robots
from robots.models import Robot, Version


@csrf_exempt
def trivial(request: HttpRequest) -> JsonResponse:
    """What Django and the server cost alone."""
    return JsonResponse({"ok": True})


@csrf_exempt
def insert(request: HttpRequest) -> JsonResponse:
    """Parse the robot and insert it."""
    data = json.loads(request.body)
    version = _version(f"{data['model']}-{data['version']}")
    created = timezone.make_aware(datetime.strptime(data["created"], "%Y-%m-%d %H:%M:%S"))
    [robot] = Robot.objects.bulk_create(
        [
            Robot(
                model_id=version.model_id,
                version_id=version.pk,
                serial=version.serial,
                created=created,
            )
        ]
    )
    return JsonResponse({"id": robot.pk}, status=201)


@csrf_exempt
def insert_order(request: HttpRequest) -> JsonResponse:
    """Parse the order's form and insert a customer and an order: the two rows of a new
    customer's order."""
    email, version = request.POST["email"], _version(request.POST["robot-serial"])
    [customer] = Customer.objects.bulk_create(
        [Customer(email=email, email_key=email, inbox=email)]
    )
    [order] = Order.objects.bulk_create(
        [Order(customer=customer, version=version, robot_serial=version.serial)]
    )
    return JsonResponse({"id": order.pk}, status=201)


@csrf_exempt
def add_robot_without_key(request: HttpRequest) -> JsonResponse:
    """POST /add_robot/ as it runs where keys are not required (development)."""
    request.api_key = None
    return _add_robot(request)


_add_robot = in_english(unwrap(robots.add_robot))


_versions = {}


def _version(serial: str) -> Version:
    # Looked up once per process: the references do no catalog work per request.
    if serial not in _versions:
        model, name = serial.split("-")
        _versions[serial] = Version.objects.select_related("model").get(
            model__name=model, name=name
        )
    return _versions[serial]
