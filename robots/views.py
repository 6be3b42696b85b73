import hashlib
import json

from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from R4C.http import allow_methods, in_english, max_body, problem
from robots.access import require_key
from robots.forms import CREATED_FORMAT, clean_robot
from robots.models import IdempotentAnswer, Robot, split_serial
from robots.utils import (
    count_by_serial,
    create_production_list,
    describe_window,
    report_name,
    robots_in,
    weekly_window,
)

JSON = "application/json"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

# A robot record is under 200 bytes; anything much bigger is not one.
MAX_ROBOT_BODY = 4 * 1024
ROBOT_FIELDS = ("model", "version", "created")


@max_body(MAX_ROBOT_BODY)
@csrf_exempt  # machine clients with no cookies: the API key is the credential
@allow_methods("POST")
@require_key()
@in_english
def add_robot(request: HttpRequest) -> JsonResponse:
    if request.content_type != "application/json":
        return problem(
            415,
            "Send the robot as JSON with the header Content-Type: application/json.",
        )
    body = request.body
    if body.startswith(b"\xef\xbb\xbf"):
        return problem(400, "The body starts with a byte order mark; send plain UTF-8 JSON.")
    try:
        # UTF-8 only, as RFC 8259 asks: json.loads(bytes) would also guess UTF-16 or 32.
        data = json.loads(body.decode("utf-8"), object_pairs_hook=_no_repeated_keys)
    except RepeatedKey as error:
        return problem(400, f"The body names {error} more than once.")
    except (ValueError, RecursionError):
        return problem(400, "The body is not valid UTF-8 JSON.")
    if not isinstance(data, dict):
        return problem(400, "The body must be a JSON object with model, version and created.")

    errors = {key: ["Unknown field."] for key in data if key not in ROBOT_FIELDS}
    for key in ROBOT_FIELDS:
        if key not in data:
            errors[key] = ["This field is required."]
        elif not isinstance(data[key], str):
            errors[key] = [f"Must be a string, not {type(data[key]).__name__}."]
    if errors:
        return problem(400, "The robot has missing, unknown or mistyped fields.", errors)

    try:
        reported = clean_robot(data)
    except ValidationError as error:
        return problem(400, "The robot is not valid.", error.message_dict)
    key = request.headers.get("Idempotency-Key")
    if key is None:
        robot = _produce(reported)
        if robot is None:
            return _not_in_catalog(reported)
        return JsonResponse(robot_json(robot), status=201)
    return _add_robot_once(request, reported, key)


class RepeatedKey(ValueError):
    pass


def _no_repeated_keys(pairs: list[tuple[str, object]]) -> dict:
    # {"model": "R2", "model": "X9"} would otherwise quietly mean the last one.
    data = dict(pairs)
    if len(data) != len(pairs):
        repeated = next(key for key, _ in pairs if [k for k, _ in pairs].count(key) > 1)
        raise RepeatedKey(json.dumps(repeated))
    return data


def _produce(reported: dict, then=None) -> Robot | None:
    return Robot.objects.produce(reported["model"], reported["version"], reported["created"], then)


def _not_in_catalog(reported: dict) -> JsonResponse:
    model, version = reported["model"], reported["version"]
    missing = f"The catalog has no version {version} of model {model}."
    return problem(400, "The robot is not valid.", {"version": [missing]})


def _add_robot_once(request: HttpRequest, reported: dict, key: str) -> JsonResponse:
    """The same Idempotency-Key and body within a day: the first answer again, no new robot.

    A copy that comes while the first is being processed waits for it (the unique key's
    index holds it) and then replays its answer. Only a 201 is kept: after any other answer,
    a 5xx included, the same key may simply be tried again.
    """
    if not (key.isascii() and key.isprintable() and 1 <= len(key) <= 255):
        return problem(400, "Idempotency-Key must be 1 to 255 printable ASCII characters.")
    scope = str(request.api_key.pk) if request.api_key else ""
    digest = hashlib.sha256(request.body).hexdigest()

    def answer(robot: Robot) -> None:
        nonlocal response
        response = JsonResponse(robot_json(robot), status=201)
        IdempotentAnswer.keep(scope, key, digest, response)

    response = earlier = None
    while earlier is None:
        try:  # the robot and its answer, in one transaction
            if _produce(reported, then=answer) is None:
                return _not_in_catalog(reported)
            return response
        except IdempotentAnswer.Taken:  # by a request before, or at the same moment: that
            earlier = IdempotentAnswer.earlier(scope, key)  # one's answer is committed
            if earlier is None:
                IdempotentAnswer.forget_expired(scope, key)  # older than a day
    if earlier.digest != digest:
        return problem(422, "This Idempotency-Key came with another body before.")
    # The first answer's very bytes: a client may compare or sign bodies.
    response = HttpResponse(earlier.body, status=earlier.status, content_type=JSON)
    response["Idempotent-Replayed"] = "true"
    return response


def robot_json(robot: Robot) -> dict:
    model, version = split_serial(robot.serial)
    return {
        "id": robot.id,
        "serial": robot.serial,
        "model": model,
        "version": version,
        "created": timezone.localtime(robot.created).strftime(CREATED_FORMAT),
    }


@csrf_exempt  # so that a POST gets the 405 below, not a CSRF page: this view only reads
@allow_methods("GET", "HEAD")
@require_key(or_staff=True)
@in_english
def download_production_list(request: HttpRequest) -> HttpResponse:
    window = weekly_window()
    response = HttpResponse(create_production_list(robots_in(window), window), content_type=XLSX)
    # Named by its week, so that weeks downloaded into one folder do not collide.
    name = report_name(window)
    response["Content-Disposition"] = f"attachment; filename=\"{name}\"; filename*=UTF-8''{name}"
    return response


# The report page's bar chart: an SVG drawn by the template (no script, no inline style).
BAR_HEIGHT, BAR_GAP, LABEL_WIDTH, BARS_WIDTH = 22, 8, 70, 420


@staff_member_required
@allow_methods("GET", "HEAD")
def report_page(request: HttpRequest) -> HttpResponse:
    """The weekly report for a manager in the admin: its window and counts, then the file."""
    window = weekly_window()
    counts = count_by_serial(robots_in(window))
    most = max((count for _, count in counts), default=0)
    bars = [
        {
            "serial": serial,
            "count": count,
            "y": index * (BAR_HEIGHT + BAR_GAP),
            "text_y": index * (BAR_HEIGHT + BAR_GAP) + round(BAR_HEIGHT * 0.7),
            "width": max(1, round(BARS_WIDTH * count / most)),
        }
        for index, (serial, count) in enumerate(counts)
    ]
    context = {
        **admin.site.each_context(request),
        "title": "Еженедельный отчёт о производстве",
        "window": describe_window(window),
        "counts": counts,
        "total": sum(count for _, count in counts),
        "bars": bars,
        "chart": {
            "height": len(bars) * (BAR_HEIGHT + BAR_GAP),
            "width": LABEL_WIDTH + BARS_WIDTH + 60,
            "label_width": LABEL_WIDTH,
            "bar_height": BAR_HEIGHT,
        },
    }
    return render(request, "admin/robots/report.html", context)
