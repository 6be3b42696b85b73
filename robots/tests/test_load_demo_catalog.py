from django.core.management import call_command
from django.test import TestCase

from robots.models import Model, Version


class LoadDemoCatalogTests(TestCase):
    def catalog(self):
        return sorted(Version.objects.values_list("model__name", "name"))

    def test_it_fills_an_empty_catalog_with_the_demo_robots(self):
        call_command("load_demo_catalog", stdout=None)
        self.assertEqual(self.catalog(), [("13", "XS"), ("R2", "A1"), ("R2", "D2"), ("X5", "LT")])

    def test_it_leaves_a_catalog_that_has_models_alone(self):
        Model.objects.create(name="Z9")
        call_command("load_demo_catalog")
        call_command("load_demo_catalog")
        self.assertEqual(list(Model.objects.values_list("name", flat=True)), ["Z9"])
        self.assertEqual(self.catalog(), [])
