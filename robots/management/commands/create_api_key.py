from django.core.management.base import BaseCommand

from robots.models import ApiKey


class Command(BaseCommand):
    help = "Create an API key for a machine and print it once, alone on one line."

    def add_arguments(self, parser):
        parser.add_argument("name", help="whose key it is, e.g. 'line 3'")

    def handle(self, *args, name: str, **options):
        _, key = ApiKey.issue(name)
        # Alone on stdout, so that a script can take it: `KEY=$(manage.py create_api_key x)`.
        self.stdout.write(key)
        self.stderr.write(f"Created the API key {name!r}; it is not shown again.")
