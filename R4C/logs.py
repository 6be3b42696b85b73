"""How every R4C process logs: one line per event, in one time format (UTC, ISO 8601).

LOG_FORMAT=text (the default) prints readable lines; LOG_FORMAT=json one JSON object a line,
for a log shipper. Django's processes (web, worker, commands) and gunicorn's own error and
access logs all go through these formatters (R4C/settings.py's LOGGING, R4C/gunicorn.py).
"""

import json
import logging
import os
import re
import sys
import time

# What no log line may keep: an e-mail address (a server's reply quotes the recipient), a
# stop link's secret (whoever reads it could stop that customer's mail), an admin search.
SECRETS = [
    (re.compile(r"[^\s<>\"'(),;:]+@[^\s<>\"'(),;:]+\.[^\s<>\"'(),;:]+"), "<address>"),
    (re.compile(r"/stop/[^/\s?\"]+"), "/stop/…"),
    (re.compile(r"([?&]q=)[^&\s\"]*"), r"\1…"),
]


def redact(text: str) -> str:
    for pattern, replacement in SECRETS:
        text = pattern.sub(replacement, text)
    return text


class Redact(logging.Filter):
    """On every handler: addresses, stop secrets and admin searches leave no log line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, dict):  # gunicorn's access line: its atoms
            record.args = {
                k: redact(v) if isinstance(v, str) else v for k, v in record.args.items()
            }
        else:
            record.msg, record.args = redact(record.getMessage()), None
        return True


class OneLine(logging.Filter):
    """For a library that logs its own tracebacks (flufl.bounce's detectors, on a message
    they cannot read): the line, without the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info = record.exc_text = None
        return True


# Ids that a log call may pass as `extra`, kept as fields of their own in JSON.
IDS = ("order", "claim", "code", "request_id")


class TextFormatter(logging.Formatter):
    converter = time.gmtime
    default_time_format = "%Y-%m-%dT%H:%M:%S"
    default_msec_format = "%s.%03dZ"

    def __init__(self):
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")


class JsonFormatter(TextFormatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "event": record.getMessage(),
        }
        line |= {name: getattr(record, name) for name in IDS if hasattr(record, name)}
        request = getattr(record, "request", None)  # Django's django.request lines carry it
        if getattr(request, "id", None):
            line["request_id"] = request.id
        if record.name == "gunicorn.access" and isinstance(record.args, dict):
            atoms = record.args  # gunicorn's, for its access line
            line |= {
                "method": atoms.get("m"),
                "path": atoms.get("U"),
                "status": atoms.get("s"),
                "ms": atoms.get("M"),
                "client": atoms.get("{x-forwarded-for}i"),
                "request_id": atoms.get("{x-request-id}o"),
            }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


# nginx's error log line: "2026/12/07 17:30:19 [error] 41#41: *7 what happened".
NGINX_LINE = re.compile(r"^\S+ \S+ \[(\w+)\] \d+#\d+: (?:\*\d+ )?(.*)$")
NGINX_LEVELS = {"debug": "DEBUG", "info": "INFO", "notice": "INFO", "warn": "WARNING"}


def nginx_log() -> None:
    """`python -m R4C.logs`: make serve's nginx error log (standard input) as R4C's own lines
    (standard error): redacted, and one JSON object a line under LOG_FORMAT=json."""
    name = os.environ.get("LOG_FORMAT", "text").strip().title() or "Text"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if name == "Json" else TextFormatter())
    handler.addFilter(Redact())
    for line in sys.stdin:
        found = NGINX_LINE.match(line.rstrip("\n"))
        level, text = found.groups() if found else ("error", line.rstrip("\n"))
        level = logging.getLevelName(NGINX_LEVELS.get(level, "ERROR"))
        handler.handle(logging.LogRecord("nginx", level, "", 0, text, None, None))


if __name__ == "__main__":
    nginx_log()
