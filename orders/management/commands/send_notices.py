import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from orders.mail import worker
from orders.mail.checks import SITE_URL_MISSING


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
            raise CommandError(SITE_URL_MISSING)
        if once:
            worker.send_once()
            return
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        worker.serve(stop, settings.NOTICE_CONNECTIONS)
