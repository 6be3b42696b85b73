"""Orders and the one e-mail that tells a customer their robot is in stock.

Requests only record facts, in one transaction with the work they cause: an order, a robot
(with an Arrival when orders wait for its serial), a Notice. The worker
(`manage.py send_notifications`) does the rest, outside any request: it turns arrivals into
notices, and delivers notices over one SMTP connection per batch, never inside a database
transaction.

No duplicates: every writer of notices first locks the order rows concerned (PostgreSQL
`SELECT ... FOR UPDATE`; SQLite's IMMEDIATE transactions take the whole write lock), then
looks for an open notice; the partial unique index on open notices is the last guard. An
order's placing and a robot's production of the same serial lock that catalog Version row,
so that one of them always sees the other.
"""

import logging
import smtplib
import time
import uuid
from datetime import timedelta

from django.conf import settings
from django.core.mail import EmailMessage, mailers
from django.db import transaction
from django.db.models import F, Max, Q
from django.dispatch import receiver
from django.utils import timezone

from customers.models import Customer
from orders.models import Arrival, Notice, Order
from robots.models import Robot, Version
from robots.signals import robot_produced

log = logging.getLogger(__name__)

SUBJECT = "Робот {serial} в наличии"
BODY = (
    "Добрый день!\n"
    "Недавно вы интересовались нашим роботом модели {model}, версии {version}.\n"
    "Этот робот теперь в наличии. Если вам подходит этот вариант - пожалуйста, "
    "свяжитесь с нами"
)
BATCH = 50  # notices sent on one SMTP connection, then recorded in one transaction
EXPAND_CHUNK = 1000  # orders turned into notices per transaction (bounds SQLite's write lock)
FIRST_RETRY = timedelta(seconds=30)
LAST_RETRY = timedelta(hours=6)


def place_order(email: str, serial: str) -> tuple[Order, bool, bool]:
    """Create or renew the customer's order for `serial`: (order, created, in stock).

    A renewed order waits again (is_notified False). If a robot of the serial exists, the
    customer is notified through the worker like everyone else.
    """
    model, version = serial.split("-")
    with transaction.atomic():
        _lock_catalog_entry(Version.objects.filter(model__name=model, name=version))
        customer, _ = Customer.objects.get_or_create(
            email__iexact=email, defaults={"email": email}
        )
        order, created = Order.objects.select_for_update().get_or_create(
            customer=customer, robot_serial=serial
        )
        if not created:
            order.is_notified = False
            order.save(update_fields=["is_notified", "updated_at"])
        in_stock = Robot.objects.filter(serial=serial).exists()
        if in_stock:
            _queue_notices([order.pk], placed_again=True)
    return order, created, in_stock


@receiver(robot_produced, dispatch_uid="orders.note_arrival")
def note_arrival(sender, robot: Robot, **kwargs) -> None:
    """In the robot's transaction: leave an Arrival if orders wait for its serial."""
    _lock_catalog_entry(Version.objects.filter(pk=robot.version_id))
    if Order.objects.filter(robot_serial=robot.serial, is_notified=False).exists():
        Arrival.objects.create(serial=robot.serial)


def _lock_catalog_entry(versions) -> None:
    # Serialises an order's stock check with the production of the same serial (PostgreSQL;
    # SQLite serialises every write transaction anyway).
    list(versions.select_for_update(of=("self",)).values_list("pk"))


def _queue_notices(order_ids: list[int], *, placed_again: bool) -> int:
    """A pending notice for each of these orders that has none open. Call in a transaction.

    Unless the customer has just placed the order again, an order whose address was
    rejected for good since it was placed gets no new notice: another robot would only
    bounce again.
    """
    locked = list(
        Order.objects.select_for_update()
        .filter(pk__in=order_ids, is_notified=False)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    # Read after the locks are held: nobody else can be adding notices for these orders.
    skip = Notice.objects.filter(order_id__in=locked, state__in=Notice.OPEN)
    if not placed_again:
        skip |= Notice.objects.filter(
            order_id__in=locked,
            state=Notice.State.FAILED,
            created_at__gte=F("order__updated_at"),
        )
    skip = set(skip.values_list("order_id", flat=True))
    new = [Notice(order_id=pk) for pk in locked if pk not in skip]
    Notice.objects.bulk_create(new)
    return len(new)


def expand_arrivals() -> bool:
    """Turn the oldest serial's arrivals into notices for its waiting orders.

    Idempotent, so several workers may do it at once and a crash half-way loses nothing:
    the arrivals are deleted only after every waiting order has its notice.
    """
    arrival = Arrival.objects.order_by("pk").first()
    if arrival is None:
        return False
    serial = arrival.serial
    # Arrivals of the serial that come in meanwhile stay for the next round.
    last_arrival = Arrival.objects.filter(serial=serial).aggregate(Max("pk"))["pk__max"]
    if last_arrival is None:  # another worker has just finished them
        return True
    after = 0
    while True:
        with transaction.atomic():
            chunk = list(
                Order.objects.filter(robot_serial=serial, is_notified=False, pk__gt=after)
                .order_by("pk")
                .values_list("pk", flat=True)[:EXPAND_CHUNK]
            )
            if not chunk:
                break
            _queue_notices(chunk, placed_again=False)
        after = chunk[-1]
    Arrival.objects.filter(serial=serial, pk__lte=last_arrival).delete()
    return True


def claim_due(limit: int = BATCH) -> list[Notice]:
    """Take up to `limit` notices that are due, or whose worker's lease ran out."""
    now = timezone.now()
    claim = uuid.uuid4()
    due = Q(state=Notice.State.PENDING, next_attempt_at__lte=now) | Q(
        state=Notice.State.SENDING, claimed_until__lt=now
    )
    # A plain read first: an idle worker must not take SQLite's write lock every second.
    if not Notice.objects.filter(due).exists():
        return []
    with transaction.atomic():
        # skip_locked: several workers on PostgreSQL never wait for, nor take, the same rows.
        ids = list(
            Notice.objects.select_for_update(skip_locked=True)
            .filter(due)
            .order_by("next_attempt_at", "pk")
            .values_list("pk", flat=True)[:limit]
        )
        # Conditional on `due` still holding: on SQLite the write lock makes this the claim.
        Notice.objects.filter(due, pk__in=ids).update(
            state=Notice.State.SENDING,
            attempts=F("attempts") + 1,
            claim=claim,
            claimed_until=now + timedelta(seconds=settings.NOTICE_LEASE_SECONDS),
        )
    return list(
        Notice.objects.filter(claim=claim, state=Notice.State.SENDING)
        .select_related("order__customer")
        .order_by("pk")
    )


def message_for(notice: Notice) -> EmailMessage:
    serial = notice.order.robot_serial
    model, version = serial.split("-")
    return EmailMessage(
        subject=SUBJECT.format(serial=serial),
        body=BODY.format(model=model, version=version),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[notice.order.customer.email],
    )


def deliver(notices: list[Notice]) -> None:
    """Send the claimed notices over one connection and record each outcome."""
    sent, retry, failed = [], [], []
    mailer = mailers.default
    lease = settings.NOTICE_LEASE_SECONDS
    renew_at = time.monotonic() + lease / 2
    try:
        mailer.open()
        for notice in notices:
            if time.monotonic() > renew_at:
                # A slow server must not let the lease run out under a live worker, or
                # another one would take these notices and mail them twice.
                Notice.objects.filter(claim=notice.claim, state=Notice.State.SENDING).update(
                    claimed_until=timezone.now() + timedelta(seconds=lease)
                )
                renew_at = time.monotonic() + lease / 2
            try:
                mailer.send_messages([message_for(notice)])
            except smtplib.SMTPRecipientsRefused as error:
                codes = [code for code, _ in error.recipients.values()]
                (failed if min(codes) >= 500 else retry).append((notice, _describe(error)))
            except smtplib.SMTPDataError as error:
                (failed if error.smtp_code >= 500 else retry).append((notice, _describe(error)))
            except ValueError as error:  # an address the mail library cannot encode
                failed.append((notice, str(error)))
            else:
                sent.append(notice)
    except (OSError, smtplib.SMTPException) as error:
        # The server is down, slow or gone: this notice and the rest wait for a retry.
        done = {n.pk for n in sent} | {n.pk for n, _ in retry + failed}
        retry += [(n, _describe(error)) for n in notices if n.pk not in done]
    finally:
        try:
            mailer.close()
        except (OSError, smtplib.SMTPException):
            pass
    _record(sent, retry, failed)


def _describe(error: Exception) -> str:
    """The server's own words where it gave some, for the admin's `last error`."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        replies = [(code, reply) for code, reply in error.recipients.values()]
    elif isinstance(error, smtplib.SMTPResponseException):
        replies = [(error.smtp_code, error.smtp_error)]
    else:
        return f"{type(error).__name__}: {error}"[:1000]
    return "; ".join(
        f"{code} {reply.decode(errors='replace') if isinstance(reply, bytes) else reply}"
        for code, reply in replies
    )[:1000]


def _record(sent: list[Notice], retry: list, failed: list) -> None:
    now = timezone.now()
    with transaction.atomic():
        # Orders first, as everywhere, so that lock order never deadlocks.
        order_ids = sorted({n.order_id for n in sent})
        list(Order.objects.select_for_update().filter(pk__in=order_ids).values_list("pk"))
        Notice.objects.filter(pk__in=[n.pk for n in sent], state=Notice.State.SENDING).update(
            state=Notice.State.SENT,
            sent_at=now,
            claim=None,
            claimed_until=None,
            last_error="",
        )
        Order.objects.filter(pk__in=order_ids).update(is_notified=True, updated_at=now)
        for notice, error in retry:
            # Growing delays: 30 s, 1 min, 2 min, ... up to 6 h, until the server takes it.
            delay = min(FIRST_RETRY * 2 ** (notice.attempts - 1), LAST_RETRY)
            log.warning(
                "notice %s: attempt %s failed, next in %s: %s",
                notice.pk,
                notice.attempts,
                delay,
                error,
            )
            Notice.objects.filter(pk=notice.pk, claim=notice.claim).update(
                state=Notice.State.PENDING,
                next_attempt_at=now + delay,
                claim=None,
                claimed_until=None,
                last_error=error,
            )
        for notice, error in failed:
            log.error("notice %s: rejected for good: %s", notice.pk, error)
            Notice.objects.filter(pk=notice.pk, claim=notice.claim).update(
                state=Notice.State.FAILED,
                claim=None,
                claimed_until=None,
                last_error=error,
            )
    if sent:
        log.info("sent %s notices", len(sent))


def process_due() -> bool:
    """The worker's unit of work: True if it found anything to do."""
    expanded = expand_arrivals()
    notices = claim_due()
    if notices:
        deliver(notices)
    return expanded or bool(notices)


def retry_failed_now(notices) -> int:
    """Put failed notices back in the queue, due now; skip those whose order has moved on."""
    count = 0
    for notice in notices.filter(state=Notice.State.FAILED).order_by("order_id"):
        with transaction.atomic():
            order = Order.objects.select_for_update().get(pk=notice.order_id)
            if order.is_notified or order.notices.filter(state__in=Notice.OPEN).exists():
                continue
            count += Notice.objects.filter(pk=notice.pk, state=Notice.State.FAILED).update(
                state=Notice.State.PENDING, next_attempt_at=timezone.now()
            )
    return count
