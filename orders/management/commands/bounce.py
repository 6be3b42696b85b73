import logging
import os
import sys

from django.core.management.base import BaseCommand
from django.db import InterfaceError, OperationalError

from orders.mail import bounces

log = logging.getLogger("orders.mail.bounces")

# A bounce of a notice, with the notice inside, is a few kilobytes; past this it is not one.
MAX_BYTES = 1024 * 1024
# sysexits.h: the MTA keeps the message and tries again later.
EX_TEMPFAIL = 75


class Command(BaseCommand):
    help = (
        "Read one message that came back to BOUNCE_ADDRESS on standard input, as an MTA's "
        "pipe delivers it, and act on it: a delivery failure or a complaint is recorded on "
        "its notice and may suppress the address; anything else is ignored. Exit 75 when "
        "the database is unavailable, so that the MTA tries again."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "recipient",
            nargs="*",
            help="the address the message came to (Postfix pipe: ${original_recipient}); else "
            "$ORIGINAL_RECIPIENT or $RECIPIENT as the MTA sets them, else its headers",
        )

    def handle(self, *args, recipient: list[str], **options):
        raw = sys.stdin.buffer.read(MAX_BYTES + 1)
        if len(raw) > MAX_BYTES:
            while sys.stdin.buffer.read(1 << 16):  # take it all, keep none of it
                pass
            log.warning("bounce: ignored: a message over %d bytes is no bounce of a notice",
                        MAX_BYTES)  # fmt: skip
            return
        env = [os.environ.get(name, "") for name in ("ORIGINAL_RECIPIENT", "RECIPIENT")]
        try:
            bounces.handle(raw, [*recipient, *filter(None, env)])
        except (OperationalError, InterfaceError) as error:
            log.error("bounce: the database is unavailable, the MTA will retry: %s",
                      str(error).strip().splitlines()[0])  # fmt: skip
            sys.exit(EX_TEMPFAIL)
        except Exception as error:  # noqa: BLE001 (no traceback: one line, and no retry)
            log.error("bounce: ignored: it could not be read (%s)", type(error).__name__)
