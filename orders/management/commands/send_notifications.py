import logging
import signal
import threading

from django.core.management.base import BaseCommand
from django.db import close_old_connections

from orders.notifications import process_due

log = logging.getLogger(__name__)


class Command(BaseCommand):
    help = (
        "Deliver the customers' 'your robot is in stock' e-mails. Runs until SIGTERM or "
        "SIGINT; several may run at once."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--once", action="store_true", help="send what is due, then exit (cron, tests)"
        )
        parser.add_argument(
            "--idle", type=float, default=1.0, help="seconds to sleep when nothing is due"
        )

    def handle(self, *args, once: bool, idle: float, **options):
        stop = threading.Event()
        if not once:
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, lambda *_: stop.set())
            log.info("sending notifications; stop with SIGTERM or Ctrl-C")
        while not stop.is_set():
            try:
                busy = process_due()
            except Exception:
                if once:
                    raise
                # A database that is down or locked for too long: wait and go on, the
                # queue is in the database and nothing is lost.
                log.exception("the notification worker failed; retrying")
                close_old_connections()
                busy = False
            if not busy:
                if once:
                    break
                stop.wait(idle)
        log.info("notification worker stopped")
