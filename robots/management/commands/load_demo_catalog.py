from django.core.management.base import BaseCommand
from django.db import transaction

from robots.models import Model, Version

DEMO_CATALOG = {"R2": ["D2", "A1"], "13": ["XS"], "X5": ["LT"]}


class Command(BaseCommand):
    help = "Fill an empty robot catalog with the demo models and versions."

    def handle(self, *args, **options):
        with transaction.atomic():
            if Model.objects.exists():
                self.stdout.write("The catalog has models already; left as it is.")
                return
            for model_name, version_names in DEMO_CATALOG.items():
                model = Model.objects.create(name=model_name)
                for name in version_names:
                    Version.objects.create(model=model, name=name)
        self.stdout.write(self.style.SUCCESS(f"Loaded the demo catalog: {DEMO_CATALOG}."))
