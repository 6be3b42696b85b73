"""Two references that /add_robot/ is measured against, served by the same server."""

import json
from datetime import datetime

from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from robots.models import Robot, Version


@csrf_exempt
def trivial(request: HttpRequest) -> JsonResponse:
    """What Django and the server cost alone."""
    return JsonResponse({"ok": True})


@csrf_exempt
def insert(request: HttpRequest) -> JsonResponse:
    """Parse the robot and insert it: no validation, no catalog look-up, no hooks."""
    data = json.loads(request.body)
    version = _version(data["model"], data["version"])
    created = timezone.make_aware(datetime.strptime(data["created"], "%Y-%m-%d %H:%M:%S"))
    [robot] = Robot.objects.bulk_create(
        [
            Robot(
                model_id=version.model_id,
                version_id=version.pk,
                serial=f"{data['model']}-{data['version']}",
                created=created,
            )
        ]
    )
    return JsonResponse({"id": robot.pk}, status=201)


_versions = {}


def _version(model: str, name: str) -> Version:
    # Looked up once per process: the reference does no catalog work per request.
    key = (model, name)
    if key not in _versions:
        _versions[key] = Version.objects.get(model__name=model, name=name)
    return _versions[key]
