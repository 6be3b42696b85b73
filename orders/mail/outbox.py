"""The one owner of an order's mail: every write to its delivery state is a function here.

An order is the outbox row of the one notice that answers its latest placing. Its state
columns (`state`, `attempts`, `next_attempt_at`, `due_at`, `claim`, `claimed_until`,
`last_error`, `notified_at`, `sent_on`, `sent_that_day`, and `placed_at` as the placing that
notice answers) change only through these transitions:

    from       to        by
    (new)      waiting   place: no robot of the serial yet, or mailed for it lately
    (new)      due       place: a robot is in stock
    waiting    due       make_due: a robot arrived (the database left an Arrival)
    sent,      waiting   place again: no robot in stock, or mailed for this serial less
    failed,                than NOTICE_REPEAT_HOURS ago, or the day's cap is reached
    stopped    due       place again: a robot is in stock
    due        sending   claim: a worker takes it until claimed_until (its lease)
    sending    sent      record: the server accepted it
    sending    due       record: a temporary failure (later), or release (a worker stops,
                           or hands a batch on behind a slow reply)
    sending    failed    record: rejected for good
    waiting,   stopped   stop: the address pressed a notice's stop link, or complained
    due,                   (bounced: a feedback report)
    sending
    due        failed    claim: the address is suppressed (bounced: it does not exist,
                           or it complained); its waiting orders stay waiting
    failed     due       retry_failed: a manager's admin action
    sent,      (gone)    purge: done with over NOTICE_RETENTION_DAYS ago
    stopped,
    failed
    any        (gone)    forget: the customer is forgotten

Placing again while the notice is due or being sent changes nothing (but one that waits to
retry is tried now): that notice answers the new placing too, so that a double click mails
once. A sending row whose lease ran out counts as due. Every write that can meet a worker
is one conditional UPDATE (on the claim, or on the state it saw), or placing's upsert,
which locks the order's row for its short transaction.

The arrival trigger (migration 0007, then 0010) reads `WAITING` and `CHANNEL`; a test reads
the installed trigger back and checks them. The tally's triggers (migration 0022) count every
change of state for /metrics, whichever transition makes it.
"""

import hashlib
import logging
import socket
import uuid
from collections import Counter
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import Case, Count, F, Min, OuterRef, Q, Subquery, Sum, Value, When
from django.dispatch import receiver
from django.utils import timezone

from customers.models import Customer, customer_forgotten, inbox, normalize_address
from orders.models import (
    Arrival,
    Attempt,
    Bounce,
    Order,
    RateCounter,
    State,
    StopLink,
    Suppression,
)
from R4C.logs import redact
from robots.models import Version

log = logging.getLogger(__name__)

# The PostgreSQL channel on which requests and the arrival trigger wake the worker (a test
# reads the installed triggers back for it).
CHANNEL = "r4c_notices"
WAITING = State.WAITING.value  # what the arrival trigger looks for
EXPAND_CHUNK = 1000  # orders made due per transaction (bounds SQLite's write lock)
FIRST_RETRY = timedelta(seconds=30)
LAST_RETRY = timedelta(hours=6)
PENDING = [State.DUE, State.SENDING]
SUPPRESSED = "not sent: mail to this address came back (a suppressed address)"
CAPPED = "not sent today: the address had NOTICE_DAILY_CAP notices for this robot today"


@dataclass(frozen=True)
class Placing:
    """What placing an order did: `last_sent` is set when a recent mail answers it already."""

    order: Order
    created: bool
    in_stock: bool
    last_sent: datetime | None = None


def place(email: str, version: Version) -> Placing:
    """Create or renew the order of `email` for `version`.

    One mail answers each wish: at once through the worker when a robot is in stock, else
    when one is produced. Raises ValidationError for an address that is not one mailbox, and
    for a version renamed or deleted since this process looked it up (Version.by_serial).
    PostgreSQL runs ORDER in one call of orders_place() (migration 0019), one round trip;
    SQLite runs CUSTOMER and ORDER in one transaction, which takes its write lock at BEGIN.
    """
    address, key = normalize_address(email)
    now, db = timezone.now(), connection.ops
    params = {
        "email": address, "key": key, "inbox": inbox(address), "version": version.pk,
        "serial": version.serial, "now": db.adapt_datetimefield_value(now),
        "today": db.adapt_datefield_value(timezone.localdate()),
        "repeat_after": db.adapt_datetimefield_value(now - _repeat_after()),
        "cap": settings.NOTICE_DAILY_CAP,
    }  # fmt: skip
    try:
        # One transaction; a savepoint within a caller's.
        with transaction.atomic() if connection.in_atomic_block else nullcontext():
            if connection.vendor == "postgresql":
                named = ", ".join(f"%({name})s" for name in PLACE_ARGUMENTS)
                [order] = Order.objects.raw(f"SELECT * FROM orders_place({named})", params)
            else:
                with transaction.atomic(), connection.cursor() as cursor:
                    cursor.execute(CUSTOMER.format(**SQLITE), params)
                    [order] = Order.objects.raw(ORDER.format(**SQLITE), params)
    except IntegrityError:
        # The only write of a placing that a valid order can break: the order's serial or
        # version is no longer the catalog's. Renamed, or deleted and made anew, since
        # this process looked it up: look it up afresh, once.
        Version.recent.forget(version.serial)
        fresh = Version.by_serial(version.serial)
        if fresh is not None and fresh.pk != version.pk:
            return place(email, fresh)
        raise ValidationError(f"The catalog has no robot {version.serial}.") from None
    order.version = version
    if order.state == State.DUE:
        transaction.on_commit(wake_worker)
    last_sent = mailed_lately(order, now) if order.renewed else None
    return Placing(order, bool(order.created), bool(order.in_stock), last_sent)


def mailed_lately(order: Order, now: datetime | None = None) -> datetime | None:
    """When the notice that answers this waiting order was sent, if that was less than
    NOTICE_REPEAT_HOURS ago (placed again since, it waits for the next robot); else None."""
    lately = order.notified_at and (now or timezone.now()) - order.notified_at < _repeat_after()
    return order.notified_at if order.state == State.WAITING and lately else None


# Placing's transitions, written once, for both databases: the customer, whose fresh request
# lifts a stop, then the order. A new order is due if a robot is in stock and the inbox's
# notices for the serial today are under the daily cap, else waiting. An order placed again
# while its notice is due or being sent is left alone (but one waiting to retry is tried
# now); else it is placed anew, due as a new one, but waiting if a notice answered it less
# than NOTICE_REPEAT_HOURS ago. The stock and the cap are read after the version's lock
# (PostgreSQL; SQLite's write lock), so that a robot just committed is seen, or sees the order
# (its trigger). {names} are the arguments: orders_place's own, or SQLite's parameters.
PLACE_ARGUMENTS = ["email", "key", "inbox", "version", "serial", "now", "today",
                   "repeat_after", "cap"]  # fmt: skip
CUSTOMER = """
INSERT INTO customers_customer (email, email_key, inbox, created_at, mail_stopped_at)
VALUES ({email}, {key}, {inbox}, {now}, NULL)
ON CONFLICT (email_key) DO UPDATE SET mail_stopped_at = NULL"""
ORDER = """
INSERT INTO orders_order AS o (customer_id, version_id, robot_serial, placed_at, created_at,
    state, attempts, next_attempt_at, due_at, last_error, sent_that_day)
SELECT {customer}, {version}, {serial}, {now}, {now},
    CASE WHEN {stock} AND {sent} < {cap} THEN '{due}' ELSE '{waiting}' END,
    0, {now}, {now}, '', 0
WHERE TRUE  -- for SQLite: what follows is the upsert's, not the SELECT's
ON CONFLICT (customer_id, version_id) DO UPDATE SET
    state = CASE WHEN o.state IN ('{due}', '{sending}') THEN o.state
        WHEN excluded.state = '{due}'
            AND (o.notified_at IS NULL OR o.notified_at <= {repeat_after}) THEN '{due}'
        ELSE '{waiting}' END,
    next_attempt_at = CASE WHEN o.state = '{sending}'
        OR o.state = '{due}' AND o.next_attempt_at < {now} THEN o.next_attempt_at
        ELSE {now} END,
    attempts = CASE WHEN o.state IN ('{due}', '{sending}') THEN o.attempts ELSE 0 END,
    due_at = CASE WHEN o.state IN ('{due}', '{sending}') THEN o.due_at ELSE {now} END,
    last_error = CASE WHEN o.state IN ('{due}', '{sending}') THEN o.last_error ELSE '' END,
    placed_at = CASE WHEN o.state IN ('{due}', '{sending}') THEN o.placed_at ELSE {now} END
RETURNING id, customer_id, version_id, robot_serial, state, placed_at, created_at,
    notified_at, {stock} AS in_stock, created_at = {now} AS created, placed_at = {now} AS renewed
"""
STATES = {"due": State.DUE.value, "sending": State.SENDING.value, "waiting": State.WAITING.value}
SQLITE = (
    {name: f"%({name})s" for name in PLACE_ARGUMENTS}
    | STATES
    | {
        "customer": "(SELECT id FROM customers_customer WHERE email_key = %(key)s)",
        "stock": "EXISTS (SELECT 1 FROM robots_robot WHERE version_id = %(version)s)",
        # The inbox's notices for the serial today, under whichever of its addresses.
        "sent": "(SELECT COALESCE(SUM(s.sent_that_day), 0) FROM orders_order s "
        "JOIN customers_customer c ON c.id = s.customer_id "
        "WHERE c.inbox = %(inbox)s AND s.version_id = %(version)s AND s.sent_on = %(today)s)",
    }
)


def wake_address() -> str | None:
    """Where the worker on this host is woken on SQLite: a Unix datagram socket in Linux's
    abstract namespace, named by the database file (no file to leave behind, freed when the
    worker dies); None on PostgreSQL, where the order's trigger NOTIFYs the worker."""
    if connection.vendor != "sqlite":
        return None
    name = hashlib.sha256(str(connection.settings_dict["NAME"]).encode()).hexdigest()[:32]
    return f"\0r4c-notices-{name}"


def wake_worker() -> None:
    """Tell the worker on this host that a notice is due now (an order in stock, a manager's
    retry), at once instead of at its next poll. One datagram, never waited for: with no
    worker listening, it is dropped. Not for robots: a worker woken by every robot a line
    reports would take a core from the web under load (make bench: the robot's rate on
    SQLite fell by a fifth), and looking first whether orders wait costs the robot more."""
    if (address := wake_address()) is None:
        return
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        try:
            sock.sendto(b"!", address)
        except OSError:  # no worker, or a full queue of wakes: it polls
            pass


def _repeat_after() -> timedelta:
    return timedelta(hours=settings.NOTICE_REPEAT_HOURS)


def stop(customer_id: int) -> int:
    """Stop all mail to the address, also a notice claimed right now. How many."""
    with transaction.atomic():
        Customer.objects.filter(pk=customer_id).update(mail_stopped_at=timezone.now())
        pending = Order.objects.filter(
            customer_id=customer_id, state__in=[State.WAITING, *PENDING]
        )
        return pending.update(state=State.STOPPED, next_attempt_at=timezone.now())


SOFT_LIMIT, SOFT_WINDOW = 3, timedelta(days=14)


def bounced(order: Order, kind: str, status: str = "", diagnostic: str = "") -> bool:
    """Record what came back about `order`'s notice; True if its address is now suppressed:
    at once for a hard bounce or a complaint (which also stops its mail, as the stop link
    does), once soft ones came back about SOFT_LIMIT notices within SOFT_WINDOW (the same
    notice's bounces, however many, count once)."""
    with transaction.atomic():
        diagnostic = redact(diagnostic)[:300]  # the server's text without the address
        bounce = Bounce.objects.create(
            order=order, kind=kind, status=status, diagnostic=diagnostic
        )
        if kind == Bounce.Kind.COMPLAINT:
            stop(order.customer_id)
        elif kind == Bounce.Kind.SOFT:
            recent = Bounce.objects.filter(
                order__customer_id=order.customer_id,
                kind=Bounce.Kind.SOFT,
                at__gte=bounce.at - SOFT_WINDOW,
            )
            if recent.order_by().values("order_id").distinct().count() < SOFT_LIMIT:
                return False
        _, created = Suppression.objects.get_or_create(
            customer_id=order.customer_id,
            defaults={
                "kind": kind,
                "status": status,
                "diagnostic": diagnostic,
                "order": order,
            },
        )
        if created:
            log.warning("order %s: its address is suppressed (%s %s)", order.pk, kind, status)
        return True


def suppressed(customer_id: int) -> bool:
    return Suppression.objects.filter(customer_id=customer_id).exists()


def lift(suppressions) -> int:
    """Mail the addresses again (a manager's admin action): their next notices go."""
    return suppressions.delete()[0]


@receiver(customer_forgotten, dispatch_uid="orders.forget")
def forget(sender, customer: Customer, **kwargs) -> None:
    """A customer is being forgotten: their orders (and attempts), links and counters go."""
    Order.objects.filter(customer=customer).delete()
    buckets = {f"email:{customer.email_key}", f"email:{inbox(customer.email)}"}
    RateCounter.objects.filter(bucket__in=buckets).delete()


def retry_failed(orders) -> int:
    """Make failed notices due again now (the admin's action)."""
    transaction.on_commit(wake_worker)
    return orders.filter(state=State.FAILED).update(
        state=State.DUE, attempts=0, next_attempt_at=timezone.now(), due_at=timezone.now()
    )


def purge(now=None) -> int:
    """Forget notices done with over NOTICE_RETENTION_DAYS ago (sent, stopped, failed), with
    their attempts, the links in them, and customers left with no order (but those whose
    address is suppressed). How many notices."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.NOTICE_RETENTION_DAYS)
    done = Q(state=State.SENT, notified_at__lt=cutoff) | Q(
        state__in=[State.STOPPED, State.FAILED], next_attempt_at__lt=cutoff
    )
    count = Order.objects.filter(done).delete()[1].get(Order._meta.label, 0)
    StopLink.objects.filter(created_at__lt=cutoff).delete()
    # A suppressed address is kept: mail must not go to it again when it orders again.
    Customer.objects.filter(
        created_at__lt=cutoff, orders__isnull=True, suppression__isnull=True
    ).delete()
    return count


def backlog() -> dict:
    """What waits for the worker: notices due now, and since when; notices not yet accepted
    by the mail server (due, being sent, or waiting to retry), and since when they are due;
    arrivals not yet made due."""
    now = timezone.now()
    # One read a state, each over its partial index (order_due_idx, order_sending_idx):
    # as quick at a million orders done with as at none.
    reads = [
        Order.objects.filter(state=state).aggregate(
            due=Count("pk", filter=Q(next_attempt_at__lte=now)),
            oldest_due=Min("next_attempt_at", filter=Q(next_attempt_at__lte=now)),
            unsent=Count("pk"),
            oldest_unsent=Min("due_at"),
        )
        for state in PENDING
    ]
    return {
        "due": sum(read["due"] for read in reads),
        "oldest_due_seconds": _age(now, (read["oldest_due"] for read in reads)),
        "unsent": sum(read["unsent"] for read in reads),
        "oldest_unsent_seconds": _age(now, (read["oldest_unsent"] for read in reads)),
        "arrivals": Arrival.objects.count(),
    }


def _age(now: datetime, times) -> float:
    """Seconds since the earliest of `times` (None: nothing), or 0."""
    since = min(filter(None, times), default=None)
    return round((now - since).total_seconds(), 1) if since else 0


# The worker's side: arrivals, claims, outcomes.


def make_due() -> bool:
    """Make due the notices of the orders waiting for the oldest arrival's serial.

    Idempotent, so several workers may do it at once and a crash half-way loses nothing:
    the arrivals are deleted in the transaction that makes the last waiting order due.
    """
    # The oldest arrival's serial, and the last arrival of it now: those that come in
    # meanwhile stay for the next round.
    # Both by the primary key's index, whatever the table holds.
    newest = Arrival.objects.filter(serial=OuterRef("serial")).order_by("-pk").values("pk")
    arrival = (
        Arrival.objects.order_by("pk").values("serial").annotate(last=Subquery(newest[:1])).first()
    )
    if arrival is None:
        return False
    now = timezone.now()
    waiting = Order.objects.filter(robot_serial=arrival["serial"], state=State.WAITING)
    while True:
        with transaction.atomic():
            chunk = waiting.order_by("pk").values("pk")[:EXPAND_CHUNK]
            made = waiting.filter(pk__in=chunk).update(
                state=State.DUE, attempts=0, next_attempt_at=now, due_at=now, last_error=""
            )
            if made < EXPAND_CHUNK:
                Arrival.objects.filter(serial=arrival["serial"], pk__lte=arrival["last"]).delete()
                return True


def _due(now) -> Q:
    return Q(state=State.DUE, next_attempt_at__lte=now) | Q(
        state=State.SENDING, claimed_until__lt=now
    )


def due_count(up_to: int) -> int:
    """How many notices are due now, counting no further than `up_to`: one indexed read."""
    return Order.objects.filter(_due(timezone.now()))[:up_to].count()


def _lease() -> timedelta:
    return timedelta(seconds=settings.NOTICE_LEASE_SECONDS)


def claim(limit: int) -> tuple[uuid.UUID, list[Order]]:
    """Take up to `limit` due notices (or notices whose worker's lease ran out).

    Each order comes with `stop_secret`, the secret of the stop link its message will carry:
    made with the claim, one INSERT a batch, so that sending a message writes nothing first.
    """
    now = timezone.now()
    tag = uuid.uuid4()
    # A stop makes its address's notices `stopped` in one UPDATE (see `stop`), so `due` leaves
    # them out; joining the customers here would cost PostgreSQL half its delivery rate.
    due = _due(now)
    # A plain read first: an idle sender must not take SQLite's write lock.
    if not Order.objects.filter(due).exists():
        return tag, []
    order = ("attempts", "next_attempt_at", "pk")
    with transaction.atomic():
        # skip_locked: several senders on PostgreSQL never wait for, nor take, the same rows.
        # Read first, not as a subquery of the UPDATE: PostgreSQL may run that again for rows
        # that other senders changed meanwhile, and one claim took 839 notices, not 10.
        ids = list(
            Order.objects.select_for_update(skip_locked=True)
            .filter(due)
            .order_by(*order)
            .values_list("pk", flat=True)[:limit]
        )
        # Conditional on `due` still holding: on SQLite the write lock makes this the claim.
        Order.objects.filter(due, pk__in=ids).update(
            state=State.SENDING, claim=tag, claimed_until=now + _lease()
        )
        mine = Order.objects.filter(claim=tag, state=State.SENDING)
        mine = list(mine.select_related("customer__suppression").order_by(*order))
        barred = [o.pk for o in mine if hasattr(o.customer, "suppression")]
        if barred:  # never offered to the mail server
            Order.objects.filter(pk__in=barred).update(
                state=State.FAILED, claim=None, claimed_until=None, last_error=SUPPRESSED
            )
            mine = [o for o in mine if o.pk not in barred]
        if capped := _over_the_daily_cap(mine):  # due again at the factory's next midnight
            Order.objects.filter(pk__in=capped).update(
                state=State.DUE,
                claim=None,
                claimed_until=None,
                next_attempt_at=_next_midnight(),
                last_error=CAPPED,
            )
            mine = [o for o in mine if o.pk not in capped]
        for claimed, secret in zip(mine, StopLink.issue([o.customer for o in mine]), strict=True):
            claimed.stop_secret = secret
    return tag, mine


def _over_the_daily_cap(orders: list[Order]) -> list[int]:
    """Those of `orders` whose inbox has had NOTICE_DAILY_CAP notices for their serial today,
    counting the batch's own in order: an arrival's notices keep the cap, as placing does."""
    today = timezone.localdate()
    sent = (
        Order.objects.filter(
            sent_on=today,
            customer__inbox__in={o.customer.inbox for o in orders},
            version_id__in={o.version_id for o in orders},
        )
        .values_list("customer__inbox", "version_id")
        .annotate(n=Sum("sent_that_day"))
    )
    counts = Counter({(inbox, version): n for inbox, version, n in sent})
    over = []
    for o in orders:
        key = (o.customer.inbox, o.version_id)
        if counts[key] >= settings.NOTICE_DAILY_CAP:
            over.append(o.pk)
        counts[key] += 1
    return over


def _next_midnight() -> datetime:
    tomorrow = timezone.localdate() + timedelta(days=1)
    return timezone.make_aware(datetime.combine(tomorrow, datetime.min.time()))


def may_send(tag: uuid.UUID, order: Order) -> bool:
    """Right before its message goes: is the notice still this claim's, and its address
    neither stopped nor suppressed? Renews its lease. False: it was stopped, suppressed,
    forgotten or taken over; do not send (a suppressed one fails, as at the claim)."""
    mine = Order.objects.filter(pk=order.pk, claim=tag, state=State.SENDING)
    clear = mine.filter(customer__mail_stopped_at__isnull=True, customer__suppression__isnull=True)
    if clear.update(claimed_until=timezone.now() + _lease()):
        return True
    mine.filter(customer__suppression__isnull=False).update(
        state=State.FAILED, claim=None, claimed_until=None, last_error=SUPPRESSED
    )
    return False


def what_became_of(tag: uuid.UUID, order: Order) -> str:
    """For the log: what became of a claimed notice that is no longer this claim's."""
    now = Order.objects.filter(pk=order.pk).values_list("state", "last_error").first()
    if now is None:
        return "it was deleted (its customer forgotten)"
    if now[0] == State.STOPPED:
        return "its address stopped mail"
    if now == (State.FAILED, SUPPRESSED):
        return "its address is suppressed"
    return "another sender took it (its lease ran out, or its batch was handed on)"


def record(tag: uuid.UUID, order: Order, attempt: Attempt) -> bool:
    """Record one notice's attempt and its outcome, in one transaction.

    False, recording nothing about the state, if the notice is no longer this claim's.
    """
    now = attempt.at
    outcome = attempt.outcome
    if outcome == Attempt.Outcome.SENT:
        if order.due_at:
            attempt.waited = round((now - order.due_at).total_seconds(), 3)
        today = timezone.localdate()
        change = {
            "state": State.SENT,
            "notified_at": now,
            "next_attempt_at": now,
            "attempts": F("attempts") + 1,
            "last_error": "",
            "sent_that_day": Case(
                When(sent_on=today, then=F("sent_that_day") + 1), default=Value(1)
            ),
            "sent_on": today,
        }
    elif outcome == Attempt.Outcome.RETRY:
        # Growing delays: 30 s, 1 min, 2 min, ... up to 6 h, until the server takes it.
        delay = min(FIRST_RETRY * 2**order.attempts, LAST_RETRY)
        change = {
            "state": State.DUE,
            "next_attempt_at": now + delay,
            "attempts": F("attempts") + 1,
            "last_error": attempt.reply,
        }
    else:
        change = {
            "state": State.FAILED,
            "next_attempt_at": now,
            "attempts": F("attempts") + 1,
            "last_error": attempt.reply,
        }
    attempt.pk = None  # a retried transaction inserts it anew
    attempt.order_id = order.pk
    with transaction.atomic():
        mine = Order.objects.filter(pk=order.pk, claim=tag, state=State.SENDING)
        if mine.update(**change, claim=None, claimed_until=None):
            attempt.save()
            if attempt.bounce:  # refused at once as a mailbox that does not exist
                bounced(order, Bounce.Kind.HARD, attempt.bounce, attempt.reply)
            return True
        # Stopped meanwhile: its attempt is still on record. Forgotten: nothing is.
        if Order.objects.select_for_update().filter(pk=order.pk).exists():
            attempt.save()
        return False


def renew(tag: uuid.UUID) -> bool:
    """Extend the lease of a claim's unsent notices; False if none is this claim's any more."""
    mine = Order.objects.filter(claim=tag, state=State.SENDING)
    return bool(mine.update(claimed_until=timezone.now() + _lease()))


def release(tag: uuid.UUID, pks: list[int] | None = None) -> int:
    """Give a claim's unsent notices (those of `pks`) back, due as they were (a stopping
    worker, or a batch handed on behind a slow reply). How many."""
    mine = Order.objects.filter(claim=tag, state=State.SENDING)
    mine = mine if pks is None else mine.filter(pk__in=pks)
    return mine.update(state=State.DUE, claim=None, claimed_until=None)
