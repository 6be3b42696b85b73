"""Sending notices: the worker's one loop (`manage.py send_notices`), outside any request.

Requests only record facts (orders, arrivals). The worker makes waiting orders' notices due
when their robot arrives, claims due notices in small batches, and sends each over SMTP,
never inside a database transaction. Every state change goes through `orders/mail/outbox.py`.

What holds, and why:
- Right before each message the notice is taken again (`outbox.may_send`): one stopped,
  forgotten or taken over since the claim is not sent, and the rest of the batch goes on.
- Each message's outcome is recorded right after the server answers, with the attempt, in
  one short transaction, conditional on the claim. A database that drops its connections
  or refuses them is retried for as long as the lease holds, and no other message is sent
  meanwhile: an outage shorter than the lease mails no one twice.
- A live worker's lease never lapses, however slowly the server answers: a heartbeat
  renews it every third of the lease while the batch is being sent.
- A worker killed mid-exchange leaves at most its message in flight per connection in
  doubt; that message goes again with the same Message-ID, so receivers can tell.
- A failing recipient delays no other: after a connection-level failure the sender
  reconnects for the rest of its batch, and fresh notices are claimed before those that
  keep failing. A slow one neither: after HAND_ON s its batch's other notices go back to
  the queue for idle senders, and its exchange is cut off at its deadline.
- The senders press the mail server only as hard as it takes (`Pace`): they open more
  connections while it accepts them, halve them when it says "too many", and keep to
  NOTICE_MAX_RATE messages a second.
"""

import contextlib
import itertools
import logging
import os
import select
import smtplib
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from contextlib import contextmanager
from email.utils import parseaddr

from django.conf import settings
from django.core.mail import EmailMessage, mailers
from django.db import DatabaseError, InterfaceError, OperationalError, connection
from django.db import connections as db_connections
from django.utils import timezone

from customers.models import ascii_address
from orders.mail import outbox
from orders.mail.bounces import envelope_sender, kind_of, status_in
from orders.models import Attempt, Bounce, Heartbeat, Order, RateCounter, Tally
from R4C.logs import redact
from robots.models import IdempotentAnswer, split_serial

log = logging.getLogger(__name__)

SUBJECT = "Робот {serial} в наличии"
# The factory's text, exactly; then, below the signature separator ("-- "), who writes, how
# to reach the factory and how to stop this mail, in plain sight.
BODY = (
    "Добрый день!\n"
    "Недавно вы интересовались нашим роботом модели {model}, версии {version}.\n"
    "Этот робот теперь в наличии. Если вам подходит этот вариант - пожалуйста, "
    "свяжитесь с нами.\n"
    "\n"
    "-- \n"
    "R4C, завод роботов{contact}\n"
    "Робот {serial} на сайте: {robot}\n"
    "Вы получили это письмо, потому что просили сообщить о роботе {serial} на {site}.\n"
    "Больше не присылать писем на этот адрес: {stop}\n"
)
# Notices one sender claims at once: small, so that several senders share a backlog evenly
# and a sender that stops leaves little to wait for its lease.
BATCH = 10
# How often an idle worker looks for work without being woken: on SQLite, which has no
# LISTEN, this is the latency of a notice; on PostgreSQL it only picks up retries and
# leases that came due with time.
POLL = {"sqlite": 0.1, "postgresql": 1.0}
# A message whose exchange takes longer than HAND_ON seconds hands the rest of its batch back
# to the queue, for idle senders; one that takes longer than DEADLINE times the mail server's
# timeout (EMAIL_TIMEOUT, per read) is cut off and tried again later: a reply that trickles
# in a byte at a time holds its own notice only.
HAND_ON = 1.0
DEADLINE = 6
WATCH_EVERY = 0.25  # seconds between the lease thread's looks at the message in hand
TIDY_EVERY = 600  # seconds between purges of what has expired (counters, answers, notices)
WORKER_BEAT = 5  # seconds between a worker's signs of life (/healthz: worker_seen_seconds)


def wakeup() -> str:
    """How a worker learns that a notice is due: "listen" (PostgreSQL's LISTEN, at once) or
    "poll" (every POLL seconds: SQLite, or behind a pooler with no LISTEN_DATABASE_URL)."""
    if connection.vendor == "postgresql" and (
        "listen" in settings.DATABASES or not settings.DATABASE_POOLED
    ):
        return "listen"
    return "poll"


def message_for(order: Order) -> EmailMessage:
    """The notice: the factory's exact text, a signature with the factory's contact, and a
    link that stops mail, in the body and as the one-click header (RFC 8058).

    Its Message-ID names the order and the placing it answers, so every attempt of one
    notice is the same message. The recipient is the address's ASCII form (IDNA 2008), as
    stored: nothing downstream may encode the domain again by other rules.
    """
    model, version = split_serial(order.robot_serial)
    stop = f"{settings.SITE_URL}/stop/{order.stop_secret}/"
    sender_domain = parseaddr(settings.DEFAULT_FROM_EMAIL)[1].rpartition("@")[2]
    placing = int(order.placed_at.timestamp() * 1_000_000)
    return EmailMessage(
        subject=SUBJECT.format(serial=order.robot_serial),
        body=BODY.format(
            model=model,
            version=version,
            serial=order.robot_serial,
            contact=f"\nСвязаться с заводом: {settings.FACTORY_CONTACT}"
            if settings.FACTORY_CONTACT
            else "",
            robot=f"{settings.SITE_URL}/?serial={order.robot_serial}",
            site=settings.SITE_URL,
            stop=stop,
        ),
        # The envelope sender: where bounces go, tagged per notice when BOUNCE_ADDRESS is set.
        from_email=envelope_sender(order.pk) if settings.BOUNCE_ADDRESS else None,
        to=[ascii_address(order.customer.email)],
        headers={
            "From": settings.DEFAULT_FROM_EMAIL,
            "List-Unsubscribe": f"<{stop}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            # Sent by a program, not a person: no auto-replies to it (RFC 3834).
            "Auto-Submitted": "auto-generated",
            # In the sender's domain, not this host's name, as its SPF, DKIM and DMARC are.
            "Message-ID": f"<notice.{order.pk}.{placing}@{sender_domain}>",
        },
    )


# How many connections the senders start with, before the server has accepted any.
START = 2
# Seconds after a "too many" during which the server's further refusals are the same one
# (the sessions that were opening meanwhile), and after which one more connection is tried.
COOL, PROBE = 1.0, 60.0


class Pace:
    """How hard a worker's senders press the mail server, as Postfix's feedback does.

    They start with START connections and open one more for each connection or message the
    server accepts, up to `most` (NOTICE_CONNECTIONS) within a second or two. When it says
    "too many" or "slow down" (a 421, or a 4.7.x "try later"), they halve, and do not open
    more than were open then until PROBE s pass without another refusal; then one more, and
    so on. Sender n works while n < `allowed`; the others close their connections and wait.
    With `rate` (NOTICE_MAX_RATE), messages leave at most that many a second, evenly spaced.
    """

    def __init__(self, most: int, rate: float | None = None):
        self.most = most
        self.allowed = min(START, most)
        self.ceiling = most  # how far `allowed` grows without probing
        self.open = 0  # connections open now
        self.refused_at = -PROBE
        self.rate = rate
        self.next_slot = 0.0
        self.sent = deque()  # when each message of the last second was answered
        self.sending = 0  # messages between their turn and the server's answer
        self._changed = threading.Condition()

    def seated(self, sender: int, wait: float = 0) -> bool:
        """May sender n work now? Waits up to `wait` s for a seat."""
        with self._changed:
            return self._changed.wait_for(lambda: sender < self.allowed, wait)

    def opened(self) -> None:
        with self._changed:
            self.open += 1
        self.accepted()

    def closed(self) -> None:
        with self._changed:
            self.open -= 1

    def accepted(self) -> None:
        """The server accepted a connection or a message: one more sender may work."""
        with self._changed:
            now = time.monotonic()
            if self.ceiling < self.most and now - self.refused_at > PROBE:
                self.ceiling += 1
                self.refused_at = now  # the next probe a PROBE later
            if self.allowed < self.ceiling:
                self.allowed += 1
                self._changed.notify_all()

    def refused(self, opening: bool) -> bool:
        """The server said "too many" or "slow down" (to a connection `opening`, or to a
        message): halve the senders, once for all that say so within COOL s. True if other
        connections are open: then a refused connection is about their number, not about
        its message, which goes back to the queue untried."""
        with self._changed:
            now = time.monotonic()
            if now - self.refused_at > COOL:
                before = self.allowed
                # The most sessions the server took without complaint: it is not asked for
                # more until a probe. (None open: it refuses everyone, not a number.)
                if taken := self.open if opening else self.open - 1:
                    self.ceiling = max(1, min(self.ceiling, taken))
                self.allowed = max(1, min(self.allowed // 2, self.ceiling))
                self.refused_at = now
                log.warning(
                    "the mail server asks for fewer connections: %s now, up to %s, not %s",
                    self.allowed,
                    self.ceiling,
                    before,
                )
            return self.open > 0

    @contextmanager
    def turn(self):
        """A message's turn under NOTICE_MAX_RATE: evenly spaced, and never more than `rate`
        in any second counting those still on their way, so that a delay between a turn and
        the server's answer cannot bunch messages where the server counts them."""
        if not self.rate:
            yield
            return
        with self._changed:
            while True:
                now = time.monotonic()
                while self.sent and self.sent[0] <= now - 1:
                    self.sent.popleft()
                full = len(self.sent) + self.sending >= self.rate
                if now >= self.next_slot and not full:
                    break
                # Until the slot, and while full until the oldest leaves the second (or one
                # on its way is answered: it notifies).
                until = self.next_slot
                if full:
                    until = max(until, self.sent[0] + 1 if self.sent else now + 1)
                self._changed.wait(max(until - now, 0.001))
            self.sending += 1
            self.next_slot = now + 1 / self.rate
        try:
            yield
        finally:
            with self._changed:
                self.sending -= 1
                self.sent.append(time.monotonic())
                self._changed.notify_all()


class MailConnection:
    """One sender's connection to the mail server, kept across its batches while busy."""

    def __init__(self, pace: Pace | None = None, sender: int = 0):
        self.pace = pace or Pace(1, settings.NOTICE_MAX_RATE)
        self.sender = sender
        self.mailer = mailers.default
        self.is_open = False
        self.cut_off = False  # the exchange in hand passed its deadline (abort)
        self.deadline = DEADLINE * (getattr(self.mailer, "timeout", None) or 10)

    def abort(self) -> None:
        """Cut the exchange in hand off (from another thread): its reads fail at once."""
        sock = getattr(getattr(self.mailer, "connection", None), "sock", None)
        if sock is not None:
            self.cut_off = True
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # closed already

    def open(self) -> None:
        if not self.is_open:
            self.mailer.open()
            self.is_open = True
            self.pace.opened()

    def close(self) -> None:
        if self.is_open:
            self.is_open = False
            self.pace.closed()
            try:
                self.mailer.close()
            except (OSError, smtplib.SMTPException):
                pass  # it is gone already

    def send(self, order: Order) -> Attempt | None:
        """Send the order's notice, opening the connection if needed: the attempt, unsaved;
        None if the server turned the connection away for the others open (not tried).

        After a failure that leaves the connection unusable it is closed, so that the next
        message opens a new one.
        """
        attempt = self._send(order)
        if attempt is None or attempt.unreachable:  # the pace knows already
            return attempt
        if attempt.outcome == Attempt.Outcome.SENT:
            self.pace.accepted()
        elif attempt.code == 421 or status_in(attempt.reply).startswith("4.7."):
            self.pace.refused(opening=False)
        return attempt

    def _send(self, order: Order) -> Attempt | None:
        started = time.monotonic()
        self.cut_off = False
        try:
            self.open()
        except (OSError, smtplib.SMTPException) as error:
            # Down, refusing or too slow: nothing was sent.
            self.close()
            if getattr(error, "smtp_code", None) == 421 and self.pace.refused(opening=True):
                return None
            return _attempt(started, Attempt.Outcome.RETRY, None, _words(error), unreachable=True)
        try:
            self.mailer.send_messages([message_for(order)])
        except smtplib.SMTPRecipientsRefused as error:
            code, reply = min(error.recipients.values())
            if code == 421:  # "closing connection": smtplib has dropped it
                self.close()
            return _refused(started, code, reply)
        except smtplib.SMTPResponseException as error:
            if error.smtp_code == 421:
                self.close()
            if isinstance(error, smtplib.SMTPDataError):
                return _refused(started, error.smtp_code, error.smtp_error)
            # A refusal of the sender is about us, not the recipient: later.
            return _attempt(started, Attempt.Outcome.RETRY, error.smtp_code, error.smtp_error)
        except ValueError as error:  # an address the mail library cannot encode
            return _attempt(started, Attempt.Outcome.FAILED, None, str(error))
        except (OSError, smtplib.SMTPException) as error:
            # The connection broke, timed out or was cut off mid-exchange.
            self.close()
            if self.cut_off:
                said = f"no whole answer within {self.deadline:g} s: cut off"
                return _attempt(started, Attempt.Outcome.RETRY, None, said)
            return _attempt(started, Attempt.Outcome.RETRY, None, _words(error))
        except Exception as error:
            # A notice that cannot be made or sent, for a reason nobody foresaw, fails alone:
            # the worker lives on, and the rest of the batch goes, on a fresh connection.
            log.exception("order %s: its notice could not be sent", order.pk)
            self.close()
            return _attempt(started, Attempt.Outcome.FAILED, None, _words(error))
        return _attempt(started, Attempt.Outcome.SENT, 250, "")


def _refused(started: float, code: int, reply: str | bytes) -> Attempt:
    """The server refused the recipient (at RCPT) or the message (at DATA): 5xx fails the
    notice for good, and a hard bounce (5.1.x, 5.2.1) also suppresses the address."""
    if code < 500:
        return _attempt(started, Attempt.Outcome.RETRY, code, reply)
    attempt = _attempt(started, Attempt.Outcome.FAILED, code, reply)
    status = status_in(attempt.reply)
    if status and kind_of(status) == Bounce.Kind.HARD:
        attempt.bounce = status
    return attempt


def _words(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"


def _attempt(
    started: float, outcome: str, code: int | None, reply: str | bytes, unreachable=False
) -> Attempt:
    if isinstance(reply, bytes):
        reply = reply.decode(errors="replace")
    text = redact(f"{code} {reply}" if code and reply else reply)
    attempt = Attempt(
        at=timezone.now(),
        outcome=outcome,
        code=code,
        reply=text[:1000],
        seconds=round(time.monotonic() - started, 3),
    )
    attempt.unreachable = unreachable  # no server answered: nothing was sent
    attempt.bounce = ""  # the status of a hard bounce: the address is suppressed
    return attempt


class Claim:
    """A claimed batch, and until when this worker knows its lease holds."""

    def __init__(self, tag: uuid.UUID):
        self.tag = tag
        self.held_until = time.monotonic() + settings.NOTICE_LEASE_SECONDS
        self._watch = threading.Lock()
        self._sending = None  # (since, connection, the rest of the batch) while one is sent

    def retry_while_held(self, change: Callable, *args):
        """`change(*args)`; after a lost or refused connection, again and again while the
        lease holds, so that an accepted message's outcome is not lost."""
        for attempt in itertools.count():
            try:
                result = change(*args)
                self.held_until = time.monotonic() + settings.NOTICE_LEASE_SECONDS
                return result
            except (OperationalError, InterfaceError) as error:
                if time.monotonic() > self.held_until:
                    raise
                reason = str(error).strip().splitlines()[0]
                log.warning("database connection lost; recording again: %s", reason)
                connection.close()
                time.sleep(min(0.25 * 2**attempt, 2))

    @contextmanager
    def watched(self, mail: "MailConnection", rest: list[Order]):
        """While one message is sent, its batch's lease thread watches it: after HAND_ON s
        `rest`, the notices not yet offered, go back to the queue for idle senders; after
        the deadline the exchange is cut off. What it does ends before this returns."""
        with self._watch:
            self._sending = (time.monotonic(), mail, rest)
        try:
            yield
        finally:
            with self._watch:  # a hand-on under way ends before the next notice is taken
                self._sending = None

    def _look(self) -> None:
        with self._watch:
            if self._sending is None:
                return
            since, mail, rest = self._sending
            waited = time.monotonic() - since
            if rest and waited > HAND_ON:
                self._sending = (since, mail, [])
                try:
                    handed = outbox.release(self.tag, [order.pk for order in rest])
                    log.info(
                        "claim %s: %s notices handed on behind a slow reply", self.tag, handed
                    )
                except DatabaseError:
                    log.warning("claim %s: could not hand notices on", self.tag)
                    connection.close()
            if waited > mail.deadline:
                mail.abort()

    @contextmanager
    def kept_alive(self):
        """While the batch is sent, renew its lease every third of it (a server that answers
        slowly but surely must not let the lease lapse under a live worker), and watch the
        message in hand (`watched`)."""
        done = threading.Event()

        def beat():
            renew_at = time.monotonic() + settings.NOTICE_LEASE_SECONDS / 3
            try:
                while not done.wait(WATCH_EVERY):
                    self._look()
                    if time.monotonic() < renew_at:
                        continue
                    renew_at = time.monotonic() + settings.NOTICE_LEASE_SECONDS / 3
                    try:
                        if outbox.renew(self.tag):
                            self.held_until = time.monotonic() + settings.NOTICE_LEASE_SECONDS
                    except DatabaseError:
                        log.warning("could not renew claim %s; trying again", self.tag)
                        connection.close()
            finally:
                connection.close()  # this thread's own

        heart = threading.Thread(target=beat, name="lease", daemon=True)
        heart.start()
        try:
            yield
        finally:
            done.set()
            heart.join()


def send_batch(mail: MailConnection, stop: threading.Event | None = None) -> bool:
    """A sender's unit of work: claim a batch and send it. True if there was one."""
    tag, orders = outbox.claim(BATCH)
    if not orders:
        return False
    batch = Claim(tag)
    with batch.kept_alive():
        for index, order in enumerate(orders):
            if stop is not None and stop.is_set():
                batch.retry_while_held(outbox.release, tag)
                break
            # The claim itself was the check for the first message, a moment ago.
            if index and not batch.retry_while_held(outbox.may_send, tag, order):
                reason = batch.retry_while_held(outbox.what_became_of, tag, order)
                log.info("order %s: not sent: %s", order.pk, reason)
                continue
            with mail.pace.turn(), batch.watched(mail, orders[index + 1 :]):
                attempt = mail.send(order)
            if attempt is None:  # too many connections: the batch goes to those open
                batch.retry_while_held(outbox.release, tag)
                time.sleep(COOL / 4)
                break
            _log(tag, order, attempt)
            if not batch.retry_while_held(outbox.record, tag, order, attempt):
                reason = batch.retry_while_held(outbox.what_became_of, tag, order)
                log.warning("order %s: outcome not recorded: %s", order.pk, reason)
            if attempt.unreachable:
                # No server to talk to: the rest of the batch waits for the same retry.
                for rest in orders[index + 1 :]:
                    batch.retry_while_held(outbox.record, tag, rest, attempt)
                break
    return True


def _log(tag: uuid.UUID, order: Order, attempt: Attempt) -> None:
    sent = attempt.outcome == Attempt.Outcome.SENT
    # The code and status only: the server's text may quote the recipient (it is kept,
    # redacted, on the attempt).
    said = f"{attempt.code} {status_in(attempt.reply)}".strip() if attempt.code else attempt.reply
    log.log(
        logging.INFO if sent else logging.WARNING,
        "order %s: %s in %s s%s",
        order.pk,
        attempt.outcome,
        attempt.seconds,
        "" if sent else f": {said}",
        extra={"order": order.pk, "claim": str(tag), "code": attempt.code},
    )


def work(stop: threading.Event, mail: MailConnection, idle: Callable[[], bool] | None) -> None:
    """The worker's one loop, for each sender: make arrivals due and send batches while
    there is work; when there is none, `idle()` waits and says whether to go on.

    `send_notices --once` runs it on one connection with no `idle`: it ends when nothing is
    left, and an error ends it. The daemon runs it on NOTICE_CONNECTIONS threads with an
    `idle` that waits to be woken, and an error is logged and retried.
    """
    try:
        while not stop.is_set():
            if not mail.pace.seated(mail.sender):
                mail.close()  # the server asked for fewer connections: wait for a seat
                mail.pace.seated(mail.sender, wait=1)
                continue
            try:
                if outbox.make_due() or send_batch(mail, stop):
                    continue
            except Exception:
                if idle is None:
                    raise
                log.exception("a notice sender failed; retrying")
                mail.close()
                connection.close()
                stop.wait(1)
                continue
            mail.close()  # idle: hold no connection that the server would time out
            if idle is None or not idle():
                return
    finally:
        mail.close()


def send_once() -> None:
    """What `send_notices --once` does: everything due, on one connection, then return."""
    work(threading.Event(), MailConnection(), None)


class IdleSenders:
    """The senders waiting for work: `wake(n)` wakes as many as there are batches to send; a
    wake that finds fewer waiting is not lost: the next sender to wait goes on at once."""

    def __init__(self):
        self._rung = threading.Condition()
        self._tickets = 0

    def wake(self, senders: int) -> None:
        with self._rung:
            self._tickets = max(self._tickets, senders)
            self._rung.notify(senders)

    def wait(self) -> bool:
        """A sender's wait: for a wake (or 5 s), then it goes on looking for work."""
        with self._rung:
            if self._rung.wait_for(lambda: self._tickets > 0, 5):
                self._tickets -= 1
        return True


def serve(stop: threading.Event, connections: int) -> None:
    """The daemon: `connections` senders, woken by the database or by polling, until `stop`."""
    idle = IdleSenders()

    pace = Pace(connections, settings.NOTICE_MAX_RATE)

    def sender(n: int) -> None:
        try:
            work(stop, MailConnection(pace, n), idle.wait)
        finally:
            connection.close()

    senders = [
        threading.Thread(target=sender, args=(n,), name=f"sender-{n}") for n in range(connections)
    ]
    for thread in senders:
        thread.start()
    log.info("sending notices on up to %s connections; stop with SIGTERM or Ctrl-C", connections)
    try:
        with woken_by_requests() as door:
            dispatch(stop, idle, connections, door)
    finally:
        stop.set()
        idle.wake(connections)
        for thread in senders:
            thread.join()
        connection.close()
    log.info("notice worker stopped")


def dispatch(
    stop: threading.Event, idle: IdleSenders, connections: int, door: socket.socket | None
) -> None:
    """The worker's main thread: show the worker alive (its heartbeat row) and fold the
    tally every WORKER_BEAT s, forget what has expired now and then, make arrivals due, and
    wake as many senders as there are batches due (told by LISTEN on PostgreSQL; on SQLite
    by a request's datagram on `door`, or by polling, also behind a pooler)."""
    listening = None
    # LISTEN's session: the worker's own, or a direct one past the pooler.
    ear = db_connections["listen"] if "listen" in settings.DATABASES else connection
    tidy_at = beat_at = 0.0
    name = f"{socket.gethostname()}:{os.getpid()}"
    while not stop.is_set():
        try:
            if time.monotonic() > beat_at:
                # A write: on a server that turned read-only (a demoted primary) it fails,
                # and the connection is made again, to the primary.
                Heartbeat.seen(name)
                Tally.fold()  # what /metrics reads stays a few rows
                if ear is not connection and listening is not None:
                    with ear.cursor() as cursor:  # a vanished server is noticed (keepalives)
                        cursor.execute("SELECT 1")
                beat_at = time.monotonic() + WORKER_BEAT
            if time.monotonic() > tidy_at:
                RateCounter.purge()
                IdempotentAnswer.purge()
                Heartbeat.purge()
                outbox.purge()
                tidy_at = time.monotonic() + TIDY_EVERY
            # Arrivals are made due here, once, before the senders are woken: sixteen senders
            # racing for one arrival would only queue on its rows.
            while outbox.make_due():
                pass
            if listening is not None and listening is ear.connection:
                # Making them due notified the listener: the count below covers that.
                for _ in listening.notifies(timeout=0):
                    pass
            # One sender per batch due: sixteen woken for one notice would only contend for
            # its row, and for the interpreter, and each would answer later.
            due = outbox.due_count(up_to=BATCH * connections)
            if due:
                idle.wake(-(-due // BATCH))
            if wakeup() == "poll":
                if door is None:
                    stop.wait(POLL[connection.vendor])
                elif select.select([door], [], [], POLL["sqlite"])[0]:
                    with contextlib.suppress(BlockingIOError):
                        while door.recv(16):  # every wake that came: one look covers them
                            pass
                    log.debug("woken by a request")
                continue
            # A request's NOTIFY (sent when it commits) ends the wait at once.
            if listening is None or listening is not ear.connection:
                with ear.cursor() as cursor:
                    cursor.execute(f"LISTEN {outbox.CHANNEL}")
                listening = ear.connection
                info = listening.info
                log.info("listening for due notices on %s:%s", info.host, info.port)
            for _ in listening.notifies(timeout=POLL["postgresql"]):
                break
        except Exception:
            # A database that is down, locked for too long or read-only: wait and go on on a
            # new connection; the queue is in the database and nothing is lost.
            log.exception("the notice worker's watcher failed; retrying")
            connection.close()
            ear.close()
            listening = None
            stop.wait(1)


@contextmanager
def woken_by_requests():
    """On SQLite, the socket (outbox.wake_address) on which this host's web processes wake
    the worker when they make a notice due; None where it cannot be had (another worker has
    it) and on PostgreSQL: then the worker polls."""
    door = None
    if address := outbox.wake_address():
        door = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            door.bind(address)
            door.setblocking(False)
            log.info("woken by requests, and polling every %s s", POLL["sqlite"])
        except OSError:
            door.close()
            door = None
            log.info("another worker is woken by requests; this one polls")
    try:
        yield door
    finally:
        if door is not None:
            door.close()
