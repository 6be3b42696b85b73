"""The catalog's names hold whatever path writes them: forms, save(), raw SQL."""

from datetime import UTC, datetime

from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.test import TestCase

from robots.models import Model, Robot, Version


class CatalogNameTests(TestCase):
    def test_the_database_refuses_a_name_that_bypassed_validation(self):
        r2 = Model.objects.create(name="R2")
        for table, column, name in [
            ("robots_model", "name", "R/"),
            ("robots_model", "name", "r2"),
            ("robots_model", "name", "=1"),
            ("robots_version", "name", "D "),
            ("robots_version", "name", "Д2"),
        ]:
            with (
                self.subTest(table=table, name=name),
                self.assertRaises(IntegrityError),
                transaction.atomic(),
                connection.cursor() as cursor,
            ):
                if table == "robots_model":
                    cursor.execute("UPDATE robots_model SET name = %s", [name])
                else:
                    cursor.execute(
                        "INSERT INTO robots_version (model_id, name) VALUES (%s, %s)",
                        [r2.pk, name],
                    )
        self.assertEqual(list(Model.objects.values_list("name", flat=True)), ["R2"])
        self.assertFalse(Version.objects.exists())

    def test_save_refuses_to_rename_an_entry_robots_go_by(self):
        r2 = Model.objects.create(name="R2")
        d2 = Version.objects.create(model=r2, name="D2")
        Robot.objects.create(model=r2, version=d2, created=datetime(2023, 10, 3, tzinfo=UTC))

        d2.name = "D3"
        with self.assertRaisesMessage(
            ValidationError, "R2-D2 нельзя переименовать: это имя носят роботы: 1"
        ):
            d2.save()
        r2.name = "R3"
        with self.assertRaisesMessage(
            ValidationError, "R2 нельзя переименовать: это имя носят роботы: 1"
        ):
            r2.save()
        d2.refresh_from_db()
        d2.model = Model.objects.create(name="X5")  # moving it changes its serial too
        with self.assertRaises(ValidationError):
            d2.save()

        self.assertEqual(Robot.objects.get().serial, "R2-D2")
        self.assertEqual(
            sorted(Version.objects.values_list("model__name", "name")), [("R2", "D2")]
        )

    def test_an_entry_nothing_goes_by_can_be_renamed(self):
        a1 = Version.objects.create(model=Model.objects.create(name="R2"), name="A1")
        a1.name = "A2"
        a1.save()
        self.assertEqual(Version.objects.get().serial, "R2-A2")
