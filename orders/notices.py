"""Delivering notices: what the worker (`manage.py send_notices`) does, outside any request.

Requests only record facts (orders, arrivals; see `orders/models.py`). The worker makes the
notices of waiting orders due when their robot arrives, claims due notices in small batches,
and sends each over SMTP, never inside a database transaction.

What holds, and why:
- Each message's outcome is recorded right after the server answers, in its own short
  transaction, conditional on the claim still being this worker's; the same transaction
  renews the lease of the rest of the batch. So a worker that dies, or a database that
  drops its connections, can leave at most the one message in flight per connection
  unrecorded: only that one may go twice.
- A live worker's lease never lapses during an exchange: it is renewed after every message
  and after every (re)connection, each of which takes at most five SMTP replies, and
  settings refuse a lease shorter than five EMAIL_TIMEOUTs.
- A failing recipient delays no other: after a connection-level failure the sender
  reconnects for the rest of its batch, and fresh notices are claimed before those that
  keep failing.
"""

import logging
import smtplib
import threading
import time
import uuid
from datetime import timedelta
from email.utils import make_msgid, parseaddr

from django.conf import settings
from django.core.mail import EmailMessage, mailers
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import Case, F, Q, Value, When
from django.utils import timezone

from customers.models import Customer
from orders.models import Arrival, Notice, Order, StopToken, capped_today

log = logging.getLogger(__name__)

SUBJECT = "Робот {serial} в наличии"
BODY = (
    "Добрый день!\n"
    "Недавно вы интересовались нашим роботом модели {model}, версии {version}.\n"
    "Этот робот теперь в наличии. Если вам подходит этот вариант - пожалуйста, "
    "свяжитесь с нами"
)
# Notices one sender claims at once: small, so that several senders share a backlog evenly
# and a sender that stops leaves little to wait for its lease.
BATCH = 10
EXPAND_CHUNK = 1000  # orders made due per transaction (bounds SQLite's write lock)
FIRST_RETRY = timedelta(seconds=30)
LAST_RETRY = timedelta(hours=6)

SENT, RETRY, FAILED = "sent", "retry", "failed"


def expand_arrivals() -> bool:
    """Make due the notices of the orders waiting for the oldest arrival's serial.

    Idempotent, so several workers may do it at once and a crash half-way loses nothing:
    the arrivals are deleted only after every waiting order is due.
    """
    arrival = Arrival.objects.order_by("pk").first()
    if arrival is None:
        return False
    serial = arrival.serial
    # Arrivals of the serial that come in meanwhile stay for the next round.
    last = Arrival.objects.filter(serial=serial).order_by("-pk").values_list("pk", flat=True)
    last = last.first()
    if last is None:  # another worker has just finished them
        return True
    now = timezone.now()
    waiting = Order.objects.filter(robot_serial=serial, notice=Notice.WAITING)
    while True:
        with transaction.atomic():
            chunk = list(waiting.order_by("pk").values_list("pk", flat=True)[:EXPAND_CHUNK])
            if not chunk:
                break
            waiting.filter(pk__in=chunk).update(
                notice=Notice.DUE, attempts=0, next_attempt_at=now, last_error=""
            )
    Arrival.objects.filter(serial=serial, pk__lte=last).delete()
    return True


def _due(now) -> Q:
    return Q(notice=Notice.DUE, next_attempt_at__lte=now) | Q(
        notice=Notice.SENDING, claimed_until__lt=now
    )


def has_work() -> bool:
    """Is anything to expand or to send? Two indexed reads, no lock."""
    return Arrival.objects.exists() or Order.objects.filter(_due(timezone.now())).exists()


def claim_due(limit: int = BATCH) -> tuple[uuid.UUID, list[Order]]:
    """Take up to `limit` due notices (or notices whose worker's lease ran out).

    Each comes with `stop_secret`, the secret of the stop link its message will carry: made
    with the claim, one INSERT a batch, so that sending a message writes nothing first.
    """
    now = timezone.now()
    claim = uuid.uuid4()
    due = _due(now)
    # A plain read first: an idle sender must not take SQLite's write lock.
    if not Order.objects.filter(due).exists():
        return claim, []
    order = ("attempts", "next_attempt_at", "pk")
    with transaction.atomic():
        # skip_locked: several senders on PostgreSQL never wait for, nor take, the same rows.
        ids = list(
            Order.objects.select_for_update(skip_locked=True)
            .filter(due)
            .order_by(*order)
            .values_list("pk", flat=True)[:limit]
        )
        # Conditional on `due` still holding: on SQLite the write lock makes this the claim.
        Order.objects.filter(due, pk__in=ids).update(
            notice=Notice.SENDING, claim=claim, claimed_until=now + _lease()
        )
        mine = Order.objects.filter(claim=claim, notice=Notice.SENDING)
        mine = list(mine.select_related("customer").order_by(*order))
        for claimed, secret in zip(mine, StopToken.issue([o.customer for o in mine]), strict=True):
            claimed.stop_secret = secret
    return claim, mine


def message_for(order: Order) -> EmailMessage:
    """The notice: the factory's exact text, and a one-click link that stops mail (RFC 8058).

    Each message gets a link of its own (made by claim_due), so that it exists only in the
    mail.
    """
    model, version = order.robot_serial.split("-")
    stop = f"{settings.SITE_URL}/stop/{order.stop_secret}/"
    sender_domain = parseaddr(settings.DEFAULT_FROM_EMAIL)[1].rpartition("@")[2]
    return EmailMessage(
        subject=SUBJECT.format(serial=order.robot_serial),
        body=BODY.format(model=model, version=version),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[order.customer.email],
        headers={
            "List-Unsubscribe": f"<{stop}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            # In the sender's domain, not this host's name, as its SPF, DKIM and DMARC are.
            "Message-ID": make_msgid(domain=sender_domain),
        },
    )


def purge_old_notices(now=None) -> int:
    """Forget notices done with over NOTICE_RETENTION_DAYS ago (sent, stopped, failed), the
    links in them, and customers left with no order. How many notices."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.NOTICE_RETENTION_DAYS)
    done = Q(notice=Notice.SENT, notified_at__lt=cutoff) | Q(
        notice__in=[Notice.STOPPED, Notice.FAILED], next_attempt_at__lt=cutoff
    )
    count = Order.objects.filter(done).delete()[1].get(Order._meta.label, 0)
    StopToken.objects.filter(created_at__lt=cutoff).delete()
    Customer.objects.filter(created_at__lt=cutoff, orders__isnull=True).delete()
    return count


class MailConnection:
    """One sender's connection to the mail server, kept across its batches while busy."""

    def __init__(self):
        self.mailer = mailers.default
        self.is_open = False

    def open(self) -> None:
        if not self.is_open:
            self.mailer.open()
            self.is_open = True

    def close(self) -> None:
        if self.is_open:
            self.is_open = False
            try:
                self.mailer.close()
            except (OSError, smtplib.SMTPException):
                pass  # it is gone already

    def send(self, order: Order) -> tuple[str, str]:
        """Send the order's notice: (SENT, "") or (RETRY or FAILED, the server's words).

        After a failure that leaves the connection unusable it is closed, so that the next
        message opens a new one.
        """
        try:
            self.mailer.send_messages([message_for(order)])
        except smtplib.SMTPRecipientsRefused as error:
            codes = [code for code, _ in error.recipients.values()]
            if 421 in codes:  # "closing connection": smtplib has dropped it
                self.close()
            return (FAILED if min(codes) >= 500 else RETRY), _describe(error)
        except smtplib.SMTPResponseException as error:
            if error.smtp_code == 421:
                self.close()
            # A 5xx to the message is about this recipient; to the sender, about us.
            rejected = isinstance(error, smtplib.SMTPDataError) and error.smtp_code >= 500
            return (FAILED if rejected else RETRY), _describe(error)
        except ValueError as error:  # an address the mail library cannot encode
            return FAILED, str(error)
        except (OSError, smtplib.SMTPException) as error:
            # The connection broke (or timed out) mid-exchange.
            self.close()
            return RETRY, _describe(error)
        return SENT, ""


def deliver(
    claim: uuid.UUID,
    orders: list[Order],
    mail: MailConnection,
    stop: threading.Event | None = None,
) -> None:
    """Send the claimed notices one by one, recording each outcome as soon as it is known."""
    for index, order in enumerate(orders):
        if stop is not None and stop.is_set():
            release(claim)
            return
        if not mail.is_open:
            try:
                mail.open()
            except (OSError, smtplib.SMTPException) as error:
                # Down, refusing or too slow: nothing was sent, the rest waits for a retry.
                mail.close()
                for rest in orders[index:]:
                    record(claim, rest, RETRY, _describe(error))
                return
            # Opening took up to five replies of the lease; the exchange may take five more.
            if not renew(claim):
                log.error("claim %s was lost while connecting; leaving its notices", claim)
                return
        outcome, error = mail.send(order)
        if not record(claim, order, outcome, error):
            log.error("claim %s was lost; another worker has its notices", claim)
            return


def _lease() -> timedelta:
    return timedelta(seconds=settings.NOTICE_LEASE_SECONDS)


def _durably(write):
    """Run `write` in a transaction; after a dropped connection, again on a new one.

    A message the server accepted but whose outcome is not recorded would go again after
    the lease: a database that restarts or drops connections must not cause that.
    """
    for attempt in range(4):
        try:
            with transaction.atomic():
                return write()
        except (OperationalError, InterfaceError):
            if attempt == 3:
                raise
            log.warning("database connection lost; recording again", exc_info=True)
            connection.close()
            time.sleep(0.5 * 2**attempt)


def record(claim: uuid.UUID, order: Order, outcome: str, error: str) -> bool:
    """Record one notice's outcome and renew the rest of the claim; False if it is lost."""
    now = timezone.now()
    again = Q(placed_again=True)
    if outcome == SENT:
        log.info("notice to %s: sent", order.pk)
        today = timezone.localdate()
        # Placed again meanwhile: one more notice, unless this one fills the day's cap.
        again_allowed = again & ~capped_today(sending_one_more=True)
        change = {
            "notice": Case(
                When(again_allowed, then=Value(Notice.DUE)), default=Value(Notice.SENT)
            ),
            "notified_at": now,
            "next_attempt_at": now,
            "attempts": Case(When(again_allowed, then=Value(0)), default=F("attempts") + 1),
            "last_error": "",
            "sent_that_day": Case(
                When(sent_on=today, then=F("sent_that_day") + 1), default=Value(1)
            ),
            "sent_on": today,
        }
    elif outcome == RETRY:
        # Growing delays: 30 s, 1 min, 2 min, ... up to 6 h, until the server takes it.
        delay = min(FIRST_RETRY * 2**order.attempts, LAST_RETRY)
        log.warning("notice to %s: attempt failed, next in %s: %s", order.pk, delay, error)
        change = {
            "notice": Notice.DUE,
            "next_attempt_at": now + delay,
            "attempts": F("attempts") + 1,
            "last_error": error,
        }
    else:
        log.error("notice to %s: rejected for good: %s", order.pk, error)
        # A placing made during the exchange still gets its own try.
        change = {
            "notice": Case(When(again, then=Value(Notice.DUE)), default=Value(Notice.FAILED)),
            "next_attempt_at": now,
            "attempts": Case(When(again, then=Value(0)), default=F("attempts") + 1),
            "last_error": error,
        }
    mine = Order.objects.filter(claim=claim, notice=Notice.SENDING)

    def write() -> bool:
        if not mine.filter(pk=order.pk).update(
            **change, claim=None, claimed_until=None, placed_again=False
        ):
            return False
        mine.update(claimed_until=now + _lease())
        return True

    return _durably(write)


def renew(claim: uuid.UUID) -> bool:
    """Extend the lease of a claim's unsent notices; False if none is this worker's any more."""
    mine = Order.objects.filter(claim=claim, notice=Notice.SENDING)
    return bool(_durably(lambda: mine.update(claimed_until=timezone.now() + _lease())))


def release(claim: uuid.UUID) -> None:
    """Give a claim's unsent notices back, due as they were (a stopping worker)."""
    mine = Order.objects.filter(claim=claim, notice=Notice.SENDING)
    _durably(lambda: mine.update(notice=Notice.DUE, claim=None, claimed_until=None))


def _describe(error: Exception) -> str:
    """The server's own words where it gave some, for the admin's `last error`."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        replies = list(error.recipients.values())
    elif isinstance(error, smtplib.SMTPResponseException):
        replies = [(error.smtp_code, error.smtp_error)]
    else:
        return f"{type(error).__name__}: {error}"[:1000]
    return "; ".join(
        f"{code} {reply.decode(errors='replace') if isinstance(reply, bytes) else reply}"
        for code, reply in replies
    )[:1000]


def send_due(mail: MailConnection | None = None, stop: threading.Event | None = None) -> bool:
    """A sender's unit of work: claim a batch and deliver it. True if there was one."""
    claim, orders = claim_due()
    if not orders:
        return False
    own = mail is None
    mail = mail or MailConnection()
    try:
        deliver(claim, orders, mail, stop)
    finally:
        if own:
            mail.close()
    return True


def process_due() -> bool:
    """What `send_notices --once` repeats: True if it found anything to do."""
    return expand_arrivals() or send_due()


def retry_failed_now(orders) -> int:
    """Make failed notices due again now (the admin's action)."""
    return orders.filter(notice=Notice.FAILED).update(
        notice=Notice.DUE, attempts=0, next_attempt_at=timezone.now()
    )


def backlog() -> dict:
    """What waits for the worker: notices due or being sent, and since when; arrivals."""
    now = timezone.now()
    due = Order.objects.filter(notice__in=[Notice.DUE, Notice.SENDING], next_attempt_at__lte=now)
    oldest = due.order_by("next_attempt_at").values_list("next_attempt_at", flat=True).first()
    return {
        "due": due.count(),
        "oldest_due_seconds": round((now - oldest).total_seconds(), 1) if oldest else 0,
        "arrivals": Arrival.objects.count(),
    }
