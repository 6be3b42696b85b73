from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import OperationalError, connection

from orders.mail.checks import SITE_URL_MISSING, placeholders
from R4C.backups import unreachable


class Command(BaseCommand):
    help = (
        "Stop, naming it in one line, if a setting that serving needs is missing or wrong "
        "(make serve and make run run this before anything else); with DEBUG (make run), "
        "say which database, mail server and site it uses."
    )

    def handle(self, *args, **options):
        # Reading an empty SECRET_KEY raises ImproperlyConfigured, which manage.py prints as
        # one line; every other setting was read and checked when the settings loaded.
        settings.SECRET_KEY  # noqa: B018
        if not settings.SITE_URL:
            raise CommandError(SITE_URL_MISSING)
        if not settings.DEBUG and (found := placeholders()):
            raise CommandError("; ".join(found))
        # Before any migration: a database that does not exist, refuses the connection or
        # the password is named in one line, not in migrate's traceback.
        try:
            connection.ensure_connection()
        except OperationalError as error:
            raise CommandError(unreachable(error)) from None
        if settings.DEBUG:  # make run: what it uses, lest a production .env be used unseen
            self.stdout.write("\n".join(uses()))


def uses() -> list[str]:
    """The database, the mail path and the stop links' site, and which came from `.env`."""
    db, mail = connection.settings_dict, settings.MAILERS["default"].get("OPTIONS", {})

    def said(what: str, *names: str) -> str:
        return what + (" (from .env)" if settings.FROM_DOTENV & set(names) else "")

    if connection.vendor == "sqlite":
        database = f"SQLite {db['NAME']}"
    else:
        database = f"PostgreSQL {db['NAME']!r} at {db['HOST']}:{db['PORT'] or 5432}"
    to = f"SMTP {mail['host']}:{mail['port']}" if mail else "the console (no EMAIL_HOST)"
    return [
        said(f"Database: {database}", "DATABASE_URL"),
        said(f"Mail: {to}", "EMAIL_HOST", "EMAIL_PORT"),
        said(f"Links in the mail: {settings.SITE_URL}", "SITE_URL"),
    ]
