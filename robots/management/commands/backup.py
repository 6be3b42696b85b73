from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from R4C import backups


class Command(BaseCommand):
    help = (
        "Write a consistent backup of the database to PATH while R4C serves: SQLite's online "
        "backup, or pg_dump's custom format for PostgreSQL. The migration state is in it."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", type=Path, help="the file to write; it must not exist")

    def handle(self, *args, path: Path, **options):
        try:
            backups.backup(path)
        except backups.BackupError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(self.style.SUCCESS(f"Backed up to {path}."))
