"""What comes back about a notice: bounces and complaints, read as the mail server says them.

Each notice goes out from its own envelope sender when BOUNCE_ADDRESS is set (VERP):
`bounces+n<order>-<signature>@domain`, signed with a key derived from SECRET_KEY, so that
a bounce names its notice and a forged one cannot suppress someone else: a message without a
valid tag changes nothing. `manage.py bounce` hands each message that comes back to `handle`,
and what it finds to `outbox.bounced`.

The kinds, by the enhanced status code (RFC 3463):
- hard: 5.1.x (no such mailbox or domain) and 5.2.1 (mailbox disabled): suppressed at once;
- soft: 4.x.x, 5.2.2 (mailbox full), 5.4.4 and any other failure: recorded, suppressed after
  three in 14 days;
- complaint: a feedback report (RFC 5965, ARF): suppressed at once, its mail stopped.
"""

import email
import email.policy
import logging
import re
from dataclasses import dataclass
from email.message import Message
from email.utils import getaddresses

from django.conf import settings
from django.utils.crypto import constant_time_compare, salted_hmac
from flufl.bounce import all_failures

from orders.mail import outbox
from orders.models import Bounce, Order

log = logging.getLogger(__name__)

STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
TAG = re.compile(r"\+n(\d{1,18})-([0-9a-f]{20})@", re.IGNORECASE)


def _signature(order_id: int) -> str:
    # The salt of every tag sent so far: kept when this module moved into orders.mail.
    return salted_hmac("orders.bounces", str(order_id), algorithm="sha256").hexdigest()[:20]


def envelope_sender(order_id: int) -> str:
    """The notice's envelope sender (MAIL FROM, Return-Path): BOUNCE_ADDRESS with its tag."""
    local, _, domain = settings.BOUNCE_ADDRESS.rpartition("@")
    return f"{local}+n{order_id}-{_signature(order_id)}@{domain}"


def tagged_order(addresses: list[str]) -> int | None:
    """The order whose signed tag one of `addresses` carries (forged tags are logged)."""
    for address in addresses:
        for order_id, signature in TAG.findall(address):
            if constant_time_compare(signature.lower(), _signature(int(order_id))):
                return int(order_id)
            log.warning("bounce: a tag with a wrong signature, ignored")
    return None


def kind_of(status: str) -> str:
    """hard or soft, by an enhanced status code such as 5.1.1."""
    klass, subject, detail = status.split(".")
    if klass == "5" and (subject == "1" or (subject, detail) == ("2", "1")):
        return Bounce.Kind.HARD
    return Bounce.Kind.SOFT


def status_in(text: str) -> str:
    """The first enhanced status code in a server's reply or a diagnostic, or ""."""
    found = STATUS.search(text or "")
    return ".".join(found.groups()) if found else ""


@dataclass(frozen=True)
class Finding:
    """What a message reports about its notice: `kind`, `status` and `diagnostic` as it says
    (which notice, and so which address, only its signed tag tells: `notice_for`)."""

    kind: str
    status: str = ""
    diagnostic: str = ""


def parse(raw: bytes) -> Message:
    return email.message_from_bytes(raw, policy=email.policy.compat32)


def findings(message: Message) -> list[Finding]:
    """What a message that came back says: a complaint, a DSN's failed recipients (a delay
    warning is no failure: the message may yet arrive), or the failures a non-standard
    bounce names (flufl.bounce's detectors)."""
    if _is_report(message, "feedback-report"):
        kind = _fields(_part(message, "message/feedback-report")).get("feedback-type", "abuse")
        return [Finding(Bounce.Kind.COMPLAINT, "", f"feedback report: {kind}")]
    if _is_report(message, "delivery-status"):
        found = []
        part = _part(message, "message/delivery-status")
        for block in _blocks(part)[1:] if part is not None else []:  # [0]: the message's
            action = block.get("action", "").lower()
            status = status_in(block.get("status", ""))
            if action != "failed" or not status:
                continue
            diagnostic = " ".join(block.get("diagnostic-code", "").split())
            found.append(Finding(kind_of(status), status, diagnostic))
        return found
    temporary, permanent = all_failures(message)
    text = _text(message, headers=False)
    found = []
    for addresses, default in ((permanent, "5.0.0"), (temporary, "4.0.0")):
        for address in addresses:
            address = address.decode(errors="replace")
            # The reply quoted after the address, e.g. qmail's "... (#5.1.1)".
            after = text[text.find(address) :] if address in text else ""
            status = status_in(after[:500]) or default
            paragraph = re.split(r"\n[ \t]*\n", after[len(address) : 1000])[0]
            diagnostic = " ".join(paragraph.split()).strip(">: ")
            found.append(Finding(kind_of(status), status, diagnostic))
    return found


def notice_for(message: Message, recipients: list[str]) -> Order | None:
    """The notice a message is about: by the signed tag of the address it came to (or that
    the reported message came from); None if it carries none. Nothing else names a notice:
    an order's id and the moment of its placing can be guessed, a signature cannot."""
    report = _fields(_part(message, "message/feedback-report"))
    original = _original(message)
    addresses = recipients + _addresses(message, "Delivered-To", "X-Original-To", "To")
    addresses += [report.get("original-mail-from", "")]
    if original is not None:
        addresses += _addresses(original, "Return-Path")
    order_id = tagged_order(addresses)
    if order_id is None:
        return None
    return Order.objects.select_related("customer").filter(pk=order_id).first()


def _is_report(message: Message, report_type: str) -> bool:
    return (
        message.get_content_type() == "multipart/report"
        and (message.get_param("report-type") or "").lower() == report_type
    )


def _part(message: Message, *types: str) -> Message | None:
    return next((part for part in message.walk() if part.get_content_type() in types), None)


def _original(message: Message) -> Message | None:
    """The reported message (or its headers), as a report carries it."""
    part = _part(message, "message/rfc822", "text/rfc822-headers")
    if part is None:
        return None
    payload = part.get_payload()
    if isinstance(payload, list):
        return payload[0] if payload else None
    return email.message_from_string(payload or "", policy=email.policy.compat32)


def _fields(part: Message | None) -> dict[str, str]:
    return {k: v for block in _blocks(part) for k, v in block.items()} if part else {}


def _blocks(part: Message) -> list[dict[str, str]]:
    """A report part's header blocks, each a dict of lower-cased field names: Python's parser
    reads a message/* part as its blocks (a DSN: the message's, then one per recipient)."""
    payload = part.get_payload()
    blocks = payload if isinstance(payload, list) else []
    return [{k.lower(): str(v) for k, v in block.items()} for block in blocks]


def _text(message: Message, headers: bool = True) -> str:
    """Every text the message holds, and its headers and those of a reported message."""
    chunks = []
    for part in message.walk():
        if headers:
            chunks += [f"{name}: {value}" for name, value in part.items()]
        if not part.is_multipart():
            payload = part.get_payload(decode=True)
            chunks.append(payload.decode(errors="replace") if payload else "")
    return "\n".join(chunks)


def _addresses(message: Message, *names: str) -> list[str]:
    values = [str(v) for name in names for v in message.get_all(name, [])]
    return [address for _, address in getaddresses(values)]


GRAVITY = [Bounce.Kind.COMPLAINT, Bounce.Kind.HARD, Bounce.Kind.SOFT]


def handle(raw: bytes, recipients: list[str]) -> int:
    """Act on one message that came back: 1 if it was about a notice, else 0."""
    if not settings.BOUNCE_ADDRESS:  # no notice went out with a tag to match
        log.warning("bounce: ignored: BOUNCE_ADDRESS is not set, so nothing is read")
        return 0
    message = parse(raw)
    found = findings(message)
    if not found:
        log.info("bounce: ignored: not a delivery failure or a complaint")
        return 0
    order = notice_for(message, recipients)
    if order is None:
        log.info("bounce: ignored: no signed tag names a notice R4C sent")
        return 0
    # One notice, one recipient: the blocks of one report are one outcome, the gravest.
    finding = min(found, key=lambda f: GRAVITY.index(f.kind))
    suppressed = outbox.bounced(order, finding.kind, finding.status, finding.diagnostic)
    log.info("order %s: %s bounce %s%s", order.pk, finding.kind, finding.status,
             ", address suppressed" if suppressed else "")  # fmt: skip
    return 1
