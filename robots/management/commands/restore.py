from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from R4C import backups


class Command(BaseCommand):
    help = (
        "Restore a backup made by `manage.py backup` into an empty database, if it was made "
        "by this schema version (the same migrations applied)."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", type=Path, help="a file written by manage.py backup")

    def handle(self, *args, path: Path, **options):
        try:
            backups.restore(path)
        except backups.BackupError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(self.style.SUCCESS(f"Restored {path}."))
