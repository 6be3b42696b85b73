"""Orders, the attempts to mail them, and what a request records: a robot arriving.

An order is its own notice's outbox row: `state` says where the one e-mail that answers the
latest placing stands. Only `orders/mail/outbox.py` writes that state and the columns beside it;
its docstring holds the transition table.
"""

import hashlib
import secrets
from collections import Counter
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from django.db import connection, models, transaction
from django.utils import timezone

from customers.models import Customer
from robots.models import Robot, Version


class State(models.TextChoices):
    """Where an order's notice stands (see `orders/mail/outbox.py` for the transitions)."""

    WAITING = "waiting", "ждёт робота"
    DUE = "due", "к отправке"  # to send from next_attempt_at on
    SENDING = "sending", "отправляется"  # claimed by a worker until claimed_until
    SENT = "sent", "отправлено"  # accepted by the mail server at notified_at
    FAILED = "failed", "не доставлено"  # rejected for good; last_error says why
    STOPPED = "stopped", "отписка"  # its address stopped mail from a notice's link


class Order(models.Model):
    """A customer waits for a robot of a serial and wants one e-mail when it is in stock."""

    customer = models.ForeignKey(
        Customer, on_delete=models.PROTECT, related_name="orders", verbose_name="покупатель"
    )
    # PROTECT: a version that orders go by cannot be deleted (nor renamed: see CatalogEntry).
    # Labelled as the list's column is: the robot, by its serial (R2-D2).
    version = models.ForeignKey(
        Version, on_delete=models.PROTECT, related_name="orders", verbose_name="робот"
    )
    robot_serial = models.CharField("робот", max_length=5, editable=False)
    placed_at = models.DateTimeField("заказан", default=timezone.now)
    created_at = models.DateTimeField("впервые заказан", auto_now_add=True)

    state = models.CharField("письмо", max_length=7, choices=State, default=State.WAITING)
    attempts = models.PositiveIntegerField("попыток", default=0)
    next_attempt_at = models.DateTimeField("следующая попытка", default=timezone.now)
    # When the notice last became due (placed in stock, its robot arrived, a manager's retry):
    # how long a notice not yet accepted has waited, whatever its retries.
    due_at = models.DateTimeField(null=True, blank=True, editable=False)
    # The worker sending this notice, and until when; past that, another may take it.
    claim = models.UUIDField(null=True, blank=True, editable=False)
    claimed_until = models.DateTimeField("занято до", null=True, blank=True)
    last_error = models.TextField("последняя ошибка", blank=True)
    notified_at = models.DateTimeField("отправлено", null=True, blank=True)
    # Notices sent on `sent_on` (the factory's date): NOTICE_DAILY_CAP bounds them, so that
    # placing an order again and again cannot turn R4C against the address's owner.
    sent_on = models.DateField(null=True, blank=True, editable=False)
    sent_that_day = models.PositiveIntegerField(default=0, editable=False)

    class Meta:
        verbose_name, verbose_name_plural = "заказ", "заказы"
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "version"], name="one_order_per_customer_and_version"
            )
        ]
        indexes = [
            # A robot is produced: which orders wait for its serial?
            models.Index(
                fields=["robot_serial"],
                condition=models.Q(state=State.WAITING),
                name="order_waiting_idx",
            ),
            # The worker: what is due, fresh notices before those that keep failing.
            models.Index(
                fields=["attempts", "next_attempt_at"],
                condition=models.Q(state=State.DUE),
                name="order_due_idx",
            ),
            # The demand page: per serial, who waits since when and who was notified,
            # from the index alone.
            models.Index(
                fields=["robot_serial", "state", "placed_at", "notified_at"],
                name="order_demand_idx",
            ),
            # The worker: whose lease has run out?
            models.Index(
                fields=["claimed_until"],
                condition=models.Q(state=State.SENDING),
                name="order_sending_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.customer} — {self.robot_serial} ({self.get_state_display()})"

    @property
    def is_notified(self) -> bool:
        return self.state == State.SENT

    def save(self, *args, **kwargs) -> None:
        self.robot_serial = self.version.serial
        super().save(*args, **kwargs)


class Attempt(models.Model):
    """One SMTP exchange for an order's notice: when, how it ended, what the server said."""

    class Outcome(models.TextChoices):
        SENT = "sent", "принято"
        RETRY = "retry", "повтор позже"
        FAILED = "failed", "отказ"

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="attempt_log")
    at = models.DateTimeField("когда")
    outcome = models.CharField("итог", max_length=6, choices=Outcome)
    # The server's reply code; null when it never answered (a broken connection, a timeout).
    code = models.PositiveSmallIntegerField("код", null=True, blank=True)
    reply = models.TextField("ответ сервера", blank=True)
    seconds = models.FloatField("секунд")
    # Accepted: seconds from the moment the notice became due (r4c_notice_delivery_seconds).
    waited = models.FloatField("ждало секунд", null=True, blank=True)

    class Meta:
        verbose_name, verbose_name_plural = "попытка отправки", "попытки отправки"
        ordering = ["at"]

    def __str__(self) -> str:
        code = f" ({self.code})" if self.code else ""
        return (
            f"{timezone.localtime(self.at):%d.%m.%Y %H:%M:%S} — {self.get_outcome_display()}{code}"
        )


class Bounce(models.Model):
    """What came back about a notice: its address refused (at once, or later in a delivery
    status notification, RFC 3464) or marked as spam (a feedback report, RFC 5965).

    Only the status, the diagnostic line and the time are kept, never the message.
    """

    class Kind(models.TextChoices):
        HARD = "hard", "адреса нет"  # 5.1.x, 5.2.1: no such mailbox or domain, disabled
        SOFT = "soft", "временный отказ"  # 4.x.x, 5.2.2 full, and other failures
        COMPLAINT = "complaint", "жалоба на спам"

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="bounces")
    kind = models.CharField("вид", max_length=9, choices=Kind)
    status = models.CharField("статус", max_length=10, blank=True)  # e.g. 5.1.1
    diagnostic = models.CharField("причина", max_length=300, blank=True)
    at = models.DateTimeField("когда", default=timezone.now)

    class Meta:
        verbose_name, verbose_name_plural = "возврат письма", "возвраты писем"
        ordering = ["at"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.status}".strip()


class Suppression(models.Model):
    """An address R4C no longer mails: it does not exist, or its owner marked R4C as spam.

    Its orders are kept (the factory's demand counts them); their notices are not sent.
    """

    customer = models.OneToOneField(
        Customer,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="suppression",
        verbose_name="адрес",
    )
    kind = models.CharField("причина", max_length=9, choices=Bounce.Kind)
    status = models.CharField("статус", max_length=10, blank=True)
    diagnostic = models.CharField("ответ почтового сервера", max_length=300, blank=True)
    # The notice whose bounce or complaint caused it (gone when that notice is purged).
    order = models.ForeignKey(
        Order, on_delete=models.SET_NULL, null=True, blank=True, verbose_name="письмо"
    )
    created_at = models.DateTimeField("с", auto_now_add=True)

    class Meta:
        verbose_name, verbose_name_plural = "недоставляемый адрес", "недоставляемые адреса"

    def __str__(self) -> str:
        return str(self.customer)


class Heartbeat(models.Model):
    """A notice worker process's heartbeat: when it last showed it is alive (every
    WORKER_BEAT s)."""

    name = models.CharField(max_length=200, unique=True)  # host:pid
    seen_at = models.DateTimeField()

    class Meta:
        verbose_name, verbose_name_plural = "обработчик писем", "обработчики писем"

    def __str__(self) -> str:
        return self.name

    @classmethod
    def seen(cls, name: str) -> None:
        if not cls.objects.filter(name=name).update(seen_at=timezone.now()):
            cls.objects.create(name=name, seen_at=timezone.now())

    @classmethod
    def seen_seconds(cls) -> float | None:
        """Seconds since any worker last showed it is alive; None if none ever did."""
        last = cls.objects.order_by("-seen_at").values_list("seen_at", flat=True).first()
        return round((timezone.now() - last).total_seconds(), 1) if last else None

    @classmethod
    def purge(cls) -> int:
        """Forget workers not seen for a day (the worker calls this now and then)."""
        return cls.objects.filter(seen_at__lt=timezone.now() - timedelta(days=1)).delete()[0]


# The delivery histogram's buckets, seconds from due to accepted: a notice should go within
# a second; an SMTP outage shows as minutes to hours (retries back off up to six hours).
BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600, 21600)
# SMTP reply classes by code, [from, to); `connection`: the server never answered.
REPLY_CLASSES = {"2xx": (200, 300), "4xx": (400, 500), "5xx": (500, 600)}


class Tally(models.Model):
    """Running counts for /metrics, kept by the database (migration 0022's triggers): each
    write that changes a notice's state or records an attempt, a bounce or a suppression adds
    rows of +/-n under their names ("notices.due", "replies.2xx", "delivery.0.05",
    "delivery.ms", "bounces.hard", "suppressed"), and the worker folds them into one row a
    name every few seconds, so that a scrape reads a few rows however many orders there are.
    Inserts only, on the writes' side: nothing waits for another write's counter."""

    name = models.CharField(max_length=40)
    n = models.BigIntegerField()

    class Meta:
        verbose_name, verbose_name_plural = "счётчик", "счётчики"
        # Read from the index alone: after a burst (a fan-out's million rows, folded), the
        # table's file stays large until VACUUM FULL, and a whole scan would read all of it.
        indexes = [models.Index(fields=["name", "n"], name="tally_idx")]

    @classmethod
    def counts(cls) -> Counter:
        return Counter(dict(cls.objects.values_list("name").annotate(models.Sum("n")).order_by()))

    @classmethod
    def fold(cls) -> None:
        """Replace the rows by one a name. Exactly the rows deleted are summed: a write that
        commits meanwhile keeps its own row, also with several workers folding at once."""
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {cls._meta.db_table} RETURNING name, n")
            sums = Counter()
            for name, n in cursor.fetchall():
                sums[name] += n
            cls.objects.bulk_create(cls(name=name, n=n) for name, n in sums.items() if n)


class Arrival(models.Model):
    """Outbox entry: robots of `serial` were produced while orders waited for it.

    Written by the database in the robot's INSERT (a trigger: see migration 0007), one small
    row whatever the number of orders; the worker makes the waiting orders' notices due.
    """

    serial = models.CharField(max_length=5)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name, verbose_name_plural = "поступление", "поступления"

    def __str__(self) -> str:
        return f"{self.serial} produced"


@dataclass(frozen=True)
class Quota:
    """One rate limit as a request left it, in the terms of the IETF RateLimit header fields
    (draft-ietf-httpapi-ratelimit-headers-11): `limit` requests per `window` seconds, `used`
    of them in this window (this request included), `reset` seconds until the window ends."""

    name: str
    limit: int
    window: int
    used: int
    reset: int

    @property
    def exceeded(self) -> bool:
        return self.used > self.limit

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)

    @property
    def policy(self) -> str:
        return f'"{self.name}";q={self.limit};w={self.window}'

    @property
    def state(self) -> str:
        return f'"{self.name}";r={self.remaining};t={self.reset}'


class RateCounter(models.Model):
    """Requests counted per bucket (a client address, an e-mail address) and fixed window."""

    bucket = models.CharField(max_length=300, unique=True)
    window_start = models.DateTimeField()
    hits = models.PositiveIntegerField()

    class Meta:
        verbose_name, verbose_name_plural = "счётчик запросов", "счётчики запросов"

    @classmethod
    def hit(cls, limits: list[tuple[str, str, int, timedelta]]) -> list[Quota]:
        """Count one request in each of `limits`: (name, key such as a client or an address,
        requests allowed, per window). Their quotas, in that order.

        One statement (an upsert of every bucket), so that parallel requests on any number of
        processes count right on both databases, at one round trip whatever the number.
        """
        now = timezone.now()
        buckets, params, quotas = [], [], []
        for name, key, limit, window in limits:
            seconds = int(window.total_seconds())
            start = datetime.fromtimestamp(now.timestamp() // seconds * seconds, tz=UTC)
            reset = max(1, int((start + window - now).total_seconds() + 0.999))
            buckets.append(f"{name}:{key}")
            params += [buckets[-1], connection.ops.adapt_datetimefield_value(start)]
            quotas.append(Quota(name, limit, seconds, 0, reset))  # `used` once counted
        table = cls._meta.db_table
        with connection.cursor() as cursor:
            cursor.execute(
                f'INSERT INTO "{table}" (bucket, window_start, hits) VALUES '
                + ", ".join(["(%s, %s, 1)"] * len(buckets))
                + " ON CONFLICT (bucket) DO UPDATE SET hits = CASE WHEN excluded.window_start = "
                f'"{table}".window_start THEN "{table}".hits + 1 ELSE 1 END, '
                "window_start = excluded.window_start RETURNING bucket, hits",
                params,
            )
            hits = dict(cursor.fetchall())
        return [
            replace(quota, used=hits[bucket])
            for quota, bucket in zip(quotas, buckets, strict=True)
        ]

    @classmethod
    def purge(cls) -> int:
        """Forget windows that ended an hour ago or more (the worker calls this)."""
        return cls.objects.filter(window_start__lt=timezone.now() - timedelta(hours=1)).delete()[0]


class StopLink(models.Model):
    """One notice's one-click link that stops mail to its address; the URL holds its secret.

    Stored only as its SHA-256: the link is in the mail alone, and nothing R4C answers or
    stores reveals it. A random 256-bit secret needs no slow hash.
    """

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="stop_links")
    digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name, verbose_name_plural = "ссылка отписки", "ссылки отписки"

    @staticmethod
    def _digest(secret: str) -> str:
        return hashlib.sha256(secret.encode()).hexdigest()

    @classmethod
    def issue(cls, customers: list[Customer]) -> list[str]:
        """A new secret for a link to each customer, in one INSERT; only the hashes are kept."""
        made = [secrets.token_urlsafe(32) for _ in customers]
        cls.objects.bulk_create(
            cls(customer=customer, digest=cls._digest(secret))
            for customer, secret in zip(customers, made, strict=True)
        )
        return made

    @classmethod
    def find(cls, secret: str) -> "StopLink | None":
        if not (secret.isascii() and 20 <= len(secret) <= 100):
            return None
        return cls.objects.select_related("customer").filter(digest=cls._digest(secret)).first()


def demand(now=None) -> list[dict]:
    """What customers wait for, most awaited first: one grouped query over the demand index.

    Per serial: `waiting` customers, the `oldest` waiting placing, `notified_week` notices
    sent in the last 7 days, and `in_stock`. SQL, because stock is looked up once per serial
    after grouping, where the ORM would group by it and look it up once per order.
    """
    week_ago = connection.ops.adapt_datetimefield_value(
        (now or timezone.now()) - timedelta(days=7)
    )
    waiting, sent = State.WAITING.value, State.SENT.value
    orders, robots = Order._meta.db_table, Robot._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT d.robot_serial, d.waiting, d.oldest, d.notified_week, "
            f'EXISTS (SELECT 1 FROM "{robots}" r WHERE r.serial = d.robot_serial) '
            "FROM (SELECT robot_serial, "
            "COUNT(*) FILTER (WHERE state = %s) AS waiting, "
            "MIN(placed_at) FILTER (WHERE state = %s) AS oldest, "
            "COUNT(*) FILTER (WHERE state = %s AND notified_at >= %s) AS notified_week "
            f'FROM "{orders}" WHERE state = %s OR (state = %s AND notified_at >= %s) '
            "GROUP BY robot_serial) d "
            "ORDER BY d.waiting DESC, d.oldest, d.robot_serial",
            [waiting, waiting, sent, week_ago, waiting, sent, week_ago],
        )
        rows = cursor.fetchall()
    return [
        {
            "robot_serial": serial,
            "waiting": count,
            # SQLite gives its stored text, PostgreSQL an aware datetime.
            "oldest": connection.ops.convert_datetimefield_value(oldest, None, connection)
            if connection.vendor == "sqlite"
            else oldest,
            "notified_week": notified,
            "in_stock": bool(in_stock),
        }
        for serial, count, oldest, notified, in_stock in rows
    ]
