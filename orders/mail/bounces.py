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


def findings(message: Message) -> list[Finding]:
    """What a message that came back says, read as healthchecks' bounce view reads it: the
    parts of a report are blocks of fields. A complaint (ARF's Feedback-Type); a DSN's failed
    recipients (Action and Status: a delay warning is no failure, the message may yet
    arrive); else the failures a non-standard bounce names (flufl.bounce's detectors)."""
    parts = list(message.walk())
    if kind := next((part["Feedback-Type"] for part in parts if "Feedback-Type" in part), None):
        return [Finding(Bounce.Kind.COMPLAINT, "", f"feedback report: {kind}")]
    if reports := [part for part in parts if "Action" in part and "Status" in part]:
        failed = [p for p in reports if p["Action"].strip().lower() == "failed"]
        statuses = [(status_in(p["Status"]), " ".join(p.get("Diagnostic-Code", "").split()))
                    for p in failed]  # fmt: skip
        return [Finding(kind_of(status), status, said) for status, said in statuses if status]
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
    """The notice a message is about: by the signed tag of the address it came to, or one
    anywhere in it (a report quotes the notice's Return-Path, or its Original-Mail-From);
    None if it carries none. Nothing else names a notice: an order's id and the moment of
    its placing can be guessed, a signature cannot."""
    order_id = tagged_order([*recipients, _text(message)])
    if order_id is None:
        return None
    return Order.objects.select_related("customer").filter(pk=order_id).first()


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


GRAVITY = [Bounce.Kind.COMPLAINT, Bounce.Kind.HARD, Bounce.Kind.SOFT]


def handle(raw: bytes, recipients: list[str]) -> int:
    """Act on one message that came back: 1 if it was about a notice, else 0."""
    if not settings.BOUNCE_ADDRESS:  # no notice went out with a tag to match
        log.warning("bounce: ignored: BOUNCE_ADDRESS is not set, so nothing is read")
        return 0
    message = email.message_from_bytes(raw, policy=email.policy.compat32)
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
