"""The API's contract, OpenAPI 3.1, served at /openapi.json.

Built here rather than kept as a file so that each problem, header and limit is written once.
R4C/tests/test_openapi.py checks that it names every route of the API and no other, and
`make check` runs schemathesis against a live server with it.
"""

from http import HTTPStatus

from django.conf import settings

from robots import models
from robots.views import MAX_ROBOT_BODY, XLSX

PROBLEM = "application/problem+json"
NAME = {"type": "string", "pattern": f"^{models.NAME}$", "examples": ["R2"]}
SERIAL = {"type": "string", "pattern": f"^{models.NAME}-{models.NAME}$", "examples": ["R2-D2"]}


def header(description: str, **schema) -> dict:
    return {"description": description, "schema": {"type": "string", **schema}}


HEADERS = {
    "Retry-After": header("Seconds to wait before trying again.", pattern="^[0-9]+$"),
    "WWW-Authenticate": header('`Bearer realm="R4C"`: send an API key.'),
    "Allow": header("The methods the path takes."),
    "Idempotent-Replayed": header(
        "`true`: this is the first answer to this Idempotency-Key, replayed byte for byte.",
        enum=["true"],
    ),
    "RateLimit-Policy": header(
        "The limits this request is counted in (draft-ietf-httpapi-ratelimit-headers-11), "
        'e.g. `"client";q=30;w=60, "email";q=5;w=600`: `q` requests per `w` seconds. Only '
        "where limits are on (production)."
    ),
    "RateLimit": header(
        'The limit nearest to being reached, e.g. `"client";r=29;t=42`: `r` requests left, '
        "`t` seconds until its window ends. Only where limits are on (production)."
    ),
}

# Why each status is answered; an operation lists its own.
PROBLEMS = {
    400: "The request is malformed or not valid; `errors` names each bad field.",
    401: "No valid API key (production): missing, wrong, malformed or revoked.",
    405: "A method the path does not take (`Allow` lists those it does).",
    411: "A chunked body without Content-Length.",
    413: "The body is over the endpoint's limit.",
    415: "The body is not of the media type the endpoint takes.",
    422: "This Idempotency-Key came with another body before.",
    429: "Over a rate limit; `Retry-After` says when to try again.",
    503: "The database cannot answer now; nothing was written. Try again after `Retry-After`.",
}
PROBLEM_HEADERS = {
    401: ["WWW-Authenticate"],
    405: ["Allow"],
    429: ["Retry-After"],
    503: ["Retry-After"],
}


def ref(kind: str, name: str) -> dict:
    return {"$ref": f"#/components/{kind}/{name}"}


def answer(description: str, media: str, schema: dict, headers=(), **extra) -> dict:
    return {
        "description": description,
        "headers": {name: ref("headers", name) for name in headers},
        "content": {media: {"schema": schema, **extra}},
    }


def operation(summary: str, success: dict, problems, *, limited=False, **extra) -> dict:
    """An operation answering `success` (status → answer) or the problems numbered."""
    limits = ["RateLimit-Policy", "RateLimit"] if limited else []
    responses = {str(status): value for status, value in success.items()}
    for status in problems:
        responses[str(status)] = answer(
            PROBLEMS[status],
            PROBLEM,
            ref("schemas", "Problem"),
            [*PROBLEM_HEADERS.get(status, []), *limits],
        )
    for value in responses.values():
        for name in limits:
            value["headers"].setdefault(name, ref("headers", name))
    return {"summary": summary, "responses": responses, **extra}


def read_only(operation: dict) -> dict:
    """GET and HEAD alike (HEAD: the same answer without a body)."""
    head = {**operation, "summary": f"{operation['summary']} (headers only)"}
    head["operationId"] = operation["operationId"].replace("get", "head", 1)
    return {"get": operation, "head": head}


PUBLIC = []

ROBOT = {
    "type": "object",
    "additionalProperties": False,
    "required": ["model", "version", "created"],
    "properties": {
        "model": NAME,
        "version": NAME,
        "created": {
            "type": "string",
            "description": "Wall-clock time in the server's TIME_ZONE; a real moment, not "
            "before 2000-01-01 nor more than five minutes ahead.",
            "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}$",
            "examples": ["2023-10-03 23:59:12"],
        },
    },
}
ROBOT_RECORDED = {
    "type": "object",
    "required": ["id", "serial", "model", "version", "created"],
    "properties": {"id": {"type": "integer"}, "serial": SERIAL} | ROBOT["properties"],
}
ORDER_FORM = {
    "type": "object",
    "required": ["email", "robot-serial"],
    "properties": {
        "email": {
            "type": "string",
            "maxLength": 254,
            "description": "One deliverable address; normalised before it is stored.",
            "examples": ["ann@example.com"],
        },
        "robot-serial": SERIAL,
    },
}
ORDER = {
    "type": "object",
    "required": ["id", "email", "robot_serial", "is_notified", "in_stock", "last_notified_at"],
    "properties": {
        "id": {"type": "integer"},
        "email": {"type": "string"},
        "robot_serial": SERIAL,
        "is_notified": {"type": "boolean", "const": False},
        "in_stock": {"type": "boolean"},
        "last_notified_at": {
            "type": ["string", "null"],
            "format": "date-time",
            "description": "The mail that already answers this address for this serial, "
            "within NOTICE_REPEAT_HOURS: this placing waits for the next robot.",
        },
    },
}
HEALTH = {
    "type": "object",
    "required": ["status", "database", "notices"],
    "properties": {
        "status": {"const": "ok"},
        "database": {"const": "ok"},
        "notices": {
            "type": "object",
            "properties": {
                "due": {"type": "integer"},
                "oldest_due_seconds": {"type": "number"},
                "unsent": {"type": "integer"},
                "oldest_unsent_seconds": {"type": "number"},
                "arrivals": {"type": "integer"},
                "worker_seen_seconds": {"type": ["number", "null"]},
                "wakeup": {"enum": ["listen", "poll"]},
            },
        },
    },
}
PROBLEM_SCHEMA = {
    "type": "object",
    "description": "RFC 9457 problem details; `errors` maps a field to its messages.",
    "required": ["type", "title", "status", "detail", "errors"],
    "properties": {
        "type": {"const": "about:blank"},
        "title": {"enum": [status.phrase for status in HTTPStatus]},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "errors": {
            "type": "object",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
        },
    },
}
IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "The same key and body within a day get the first 201 again, byte for "
    "byte, with `Idempotent-Replayed: true`, and no second robot; another body with the key "
    "gets 422. A copy sent while the first is still processed waits for it and gets its "
    "answer (never 409). Other answers, 5xx included, are not kept: try again with the key. "
    "Keys are per API key (draft-ietf-httpapi-idempotency-key-header-07).",
    "schema": {"type": "string", "pattern": "^[\\x20-\\x7e]{1,255}$"},
}


def document() -> dict:
    """The contract of this server: with API_KEYS_REQUIRED off (development), no key."""
    keyed = [{"bearer": []}] if settings.API_KEYS_REQUIRED else PUBLIC
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "R4C",
            "version": "1",
            "description": "The robot factory's system of record: robots produced, the weekly "
            "report, customers' orders. Errors are RFC 9457 problems. docs/api.md says it in prose.",
        },
        "paths": {
            "/add_robot/": {
                "post": operation(
                    "A production line reports one robot it built",
                    {
                        201: answer(
                            "Recorded: the robot.",
                            "application/json",
                            ROBOT_RECORDED,
                            ["Idempotent-Replayed"],
                        )
                    },
                    [400, 401, 405, 411, 413, 415, 422, 503],
                    operationId="addRobot",
                    security=keyed,
                    parameters=[IDEMPOTENCY_KEY],
                    requestBody={
                        "required": True,
                        "description": f"UTF-8 JSON, no byte order mark, no key twice, at most "
                        f"{MAX_ROBOT_BODY} bytes.",
                        "content": {"application/json": {"schema": ROBOT}},
                    },
                )
            },
            "/create_order/": {
                "post": operation(
                    "A customer asks for a robot and gets one e-mail when it is in stock",
                    {
                        201: answer("A new order.", "application/json", ORDER),
                        200: answer("The same order placed again.", "application/json", ORDER),
                    },
                    [400, 405, 411, 413, 415, 429, 503],
                    limited=True,
                    operationId="createOrder",
                    security=PUBLIC,
                    requestBody={
                        "required": True,
                        "content": {
                            "application/x-www-form-urlencoded": {"schema": ORDER_FORM},
                            "multipart/form-data": {"schema": ORDER_FORM},
                        },
                    },
                )
            },
            "/download/": read_only(
                operation(
                    "The weekly production report as an Excel workbook",
                    {200: answer("The workbook, as an attachment.", XLSX, {})},
                    [401, 405, 503],
                    operationId="getReport",
                    security=keyed,
                )
            ),
            "/healthz": read_only(
                operation(
                    "Is the database there, and is the mail worker keeping up?",
                    {200: answer("The database answers.", "application/json", HEALTH)},
                    [405, 503],
                    operationId="getHealth",
                    security=PUBLIC,
                )
            ),
            "/metrics": read_only(
                operation(
                    "Requests and notices in Prometheus' text format",
                    {200: answer("The metrics.", "text/plain", {"type": "string"})},
                    [401, 405, 503],
                    operationId="getMetrics",
                    security=keyed,
                )
            ),
            "/openapi.json": read_only(
                operation(
                    "This document",
                    {200: answer("OpenAPI 3.1.", "application/json", {"type": "object"})},
                    [405],
                    operationId="getContract",
                    security=PUBLIC,
                )
            ),
        },
        "components": {
            "schemas": {"Problem": PROBLEM_SCHEMA},
            "headers": HEADERS,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key from `manage.py create_api_key` or the admin. "
                    "Asked for in production only; `/download/` and `/metrics` also serve a "
                    "manager signed in to the admin.",
                }
            },
        },
    }
