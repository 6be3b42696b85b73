"""The catalog's names hold whatever path writes them: forms, save(), raw SQL."""

from datetime import UTC, datetime

from django.db import IntegrityError, connection, transaction
from django.test import TestCase, TransactionTestCase

from orders.models import Order
from R4C.tests.world import place, while_open
from robots.models import Model, Robot, Version


def raw(sql: str, *params) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


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

    def refused(self, write) -> None:
        with self.assertRaises(IntegrityError), transaction.atomic():
            write()

    def test_the_database_refuses_to_rename_an_entry_robots_or_orders_go_by(self):
        r2 = Model.objects.create(name="R2")
        d2 = Version.objects.create(model=r2, name="D2")
        a1 = Version.objects.create(model=r2, name="A1")
        Robot.objects.create(model=r2, version=d2, created=datetime(2023, 10, 3, tzinfo=UTC))
        place("R2-A1", "ann@example.com")  # an order waits for A1, no robot yet
        x5 = Model.objects.create(name="X5")

        d2.name = "D3"
        self.refused(d2.save)
        self.refused(lambda: Version.objects.filter(pk=a1.pk).update(name="A2"))
        self.refused(lambda: Version.objects.filter(pk=d2.pk).update(model=x5))  # moving it
        self.refused(lambda: Model.objects.filter(pk=r2.pk).update(name="R3"))
        self.refused(lambda: raw("UPDATE robots_model SET name = 'R3' WHERE id = %s", r2.pk))

        self.assertEqual(Robot.objects.get().serial, "R2-D2")
        self.assertEqual(
            sorted(Version.objects.values_list("model__name", "name")),
            [("R2", "A1"), ("R2", "D2")],
        )
        Model.objects.filter(pk=x5.pk).update(name="X6")  # nothing goes by X5

    def test_the_database_refuses_a_robot_or_order_whose_serial_is_not_its_version_s(self):
        r2 = Model.objects.create(name="R2")
        d2 = Version.objects.create(model=r2, name="D2")
        x5 = Model.objects.create(name="X5")
        created = datetime(2023, 10, 3, tzinfo=UTC)
        for serial, model in [("", r2), ("R2-A1", r2), ("X5-D2", x5), ("R2-D2", x5)]:
            with self.subTest(serial=serial, model=model.name):
                robot = Robot(model=model, version=d2, serial=serial, created=created)
                self.refused(lambda robot=robot: Robot.objects.bulk_create([robot]))
        self.refused(
            lambda: raw(
                "INSERT INTO robots_robot (model_id, version_id, serial, created) "
                "VALUES (%s, %s, 'R2-D1', '2023-10-03 00:00:00')",
                r2.pk,
                d2.pk,
            )
        )
        [robot] = Robot.objects.bulk_create(
            [Robot(model=r2, version=d2, serial="R2-D2", created=created)]
        )
        self.refused(lambda: Robot.objects.filter(pk=robot.pk).update(serial="R2-D3"))
        [order] = place("R2-D2", "ann@example.com")
        self.refused(lambda: Order.objects.filter(pk=order.pk).update(robot_serial="R2-A1"))
        self.assertEqual(Robot.objects.count(), 1)

    def test_an_entry_nothing_goes_by_can_be_renamed(self):
        a1 = Version.objects.create(model=Model.objects.create(name="R2"), name="A1")
        a1.name = "A2"
        a1.save()
        self.assertEqual(Version.objects.get().serial, "R2-A2")


class RenameRaceTests(TransactionTestCase):
    """A version renamed at the moment its first robot is recorded: one waits for the other,
    and no robot is stored under a name its version no longer has."""

    def setUp(self):
        r2 = Model.objects.create(name="R2")
        self.d2 = Version.objects.create(model=r2, name="D2")

    def test_a_robot_posted_while_its_version_is_renamed_is_not_in_the_catalog(self):
        robot = while_open(
            lambda: Version.objects.filter(pk=self.d2.pk).update(name="D3"),
            lambda: Robot.objects.produce("R2", "D2", datetime(2023, 10, 3, tzinfo=UTC)),
        )
        self.assertIsNone(robot)
        self.assertFalse(Robot.objects.exists())

    def test_a_version_renamed_while_its_first_robot_is_recorded_keeps_its_name(self):
        def rename():
            with self.assertRaises(IntegrityError):
                Version.objects.filter(pk=self.d2.pk).update(name="D3")

        while_open(
            lambda: Robot.objects.produce("R2", "D2", datetime(2023, 10, 3, tzinfo=UTC)),
            rename,
        )
        self.assertEqual(list(Robot.objects.values_list("serial", flat=True)), ["R2-D2"])
        self.assertEqual(Version.objects.get().name, "D2")
