from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

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
