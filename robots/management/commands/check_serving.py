from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import OperationalError, connection

from orders.checks import SITE_URL_MISSING


class Command(BaseCommand):
    help = (
        "Stop, naming it in one line, if a setting that serving needs is missing or wrong "
        "(make serve runs this before anything else)."
    )

    def handle(self, *args, **options):
        # Reading an empty SECRET_KEY raises ImproperlyConfigured, which manage.py prints as
        # one line; every other setting was read and checked when the settings loaded.
        settings.SECRET_KEY  # noqa: B018
        if not settings.SITE_URL:
            raise CommandError(SITE_URL_MISSING)
        # Before any migration: a database that does not exist, refuses the connection or
        # the password is named in one line, not in migrate's traceback.
        try:
            connection.ensure_connection()
        except OperationalError as error:
            raise CommandError(unreachable(error)) from None


def unreachable(error: Exception) -> str:
    """One line: which database, and why it cannot be reached."""
    db = connection.settings_dict
    where = db["NAME"] if connection.vendor == "sqlite" else f"{db['NAME']!r} at {db['HOST']}"
    reason = next((line.strip() for line in str(error).splitlines() if line.strip()), "")
    return f"The database {where} cannot be reached: {reason}"
