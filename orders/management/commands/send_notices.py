import logging
import signal
import threading
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from orders.models import NOTICE_CHANNEL, RateCounter
from orders.notices import (
    MailConnection,
    expand_arrivals,
    has_work,
    process_due,
    purge_old_notices,
    send_due,
)
from robots.models import IdempotentAnswer

log = logging.getLogger(__name__)

# How often an idle worker looks for work without being woken: on SQLite, which has no
# LISTEN, this is the latency of a notice; on PostgreSQL it only picks up retries and
# leases that came due with time.
POLL = {"sqlite": 0.1, "postgresql": 1.0}
TIDY_EVERY = 600  # seconds between purges of what has expired (counters, answers, notices)


class Bell:
    """Wakes the idle senders; a ring while a sender is busy is not lost."""

    def __init__(self):
        self._rung = threading.Condition()
        self.count = 0

    def ring(self) -> None:
        with self._rung:
            self.count += 1
            self._rung.notify_all()

    def wait(self, seen: int, timeout: float) -> int:
        with self._rung:
            self._rung.wait_for(lambda: self.count != seen, timeout)
            return self.count


class Command(BaseCommand):
    help = (
        "Send the customers' 'your robot is in stock' notices. Runs until SIGTERM or SIGINT, "
        "on NOTICE_CONNECTIONS SMTP connections at once; several may run at once."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--once",
            action="store_true",
            help="send what is due on one connection, then exit (cron, tests)",
        )

    def handle(self, *args, once: bool, **options):
        if not settings.SITE_URL:
            raise CommandError(
                "SITE_URL is not set: every notice carries a link to stop mail, made from it. "
                "Set it to the https:// address customers reach R4C at."
            )
        if once:
            while process_due():
                pass
            return
        stop, bell = threading.Event(), Bell()

        def on_signal(*_):
            stop.set()
            bell.ring()

        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, on_signal)
        senders = [
            threading.Thread(target=self.send, args=(stop, bell), name=f"sender-{n}")
            for n in range(settings.NOTICE_CONNECTIONS)
        ]
        for sender in senders:
            sender.start()
        log.info(
            "sending notices on up to %s connections; stop with SIGTERM or Ctrl-C", len(senders)
        )
        try:
            self.dispatch(stop, bell)
        finally:
            stop.set()
            bell.ring()
            for sender in senders:
                sender.join()
            connection.close()
        log.info("notice worker stopped")

    def dispatch(self, stop: threading.Event, bell: Bell) -> None:
        """Turn arrivals into due notices, and wake the senders when anything is due."""
        listening = None
        tidy_at = 0.0
        while not stop.is_set():
            try:
                if time.monotonic() > tidy_at:
                    # The one long-running process also forgets what has expired.
                    RateCounter.purge()
                    IdempotentAnswer.purge()
                    purge_old_notices()
                    tidy_at = time.monotonic() + TIDY_EVERY
                while expand_arrivals():
                    pass
                if has_work():
                    bell.ring()
                if connection.vendor != "postgresql":
                    stop.wait(POLL["sqlite"])
                    continue
                # A request's NOTIFY (sent when it commits) ends the wait at once.
                if listening is not connection.connection:
                    with connection.cursor() as cursor:
                        cursor.execute(f"LISTEN {NOTICE_CHANNEL}")
                    listening = connection.connection
                for _ in connection.connection.notifies(timeout=POLL["postgresql"]):
                    break
            except Exception:
                # A database that is down or locked for too long: wait and go on; the
                # queue is in the database and nothing is lost.
                log.exception("the notice worker's dispatcher failed; retrying")
                connection.close()
                listening = None
                stop.wait(1)

    def send(self, stop: threading.Event, bell: Bell) -> None:
        """One sender: its own SMTP and database connections, batch after batch."""
        mail = MailConnection()
        seen = bell.count
        try:
            while not stop.is_set():
                try:
                    if send_due(mail, stop):
                        continue
                except Exception:
                    log.exception("a notice sender failed; retrying")
                    mail.close()
                    connection.close()
                    stop.wait(1)
                    continue
                mail.close()  # idle: hold no connection that the server would time out
                seen = bell.wait(seen, timeout=5)
        finally:
            mail.close()
            connection.close()
