from datetime import timedelta

from django.db import connection
from django.utils import timezone

from R4C.tests.problem import ProblemAssertions
from robots.models import Robot
from robots.tests.report import ReportTestCase, by_model, read_report, sheet
from robots.utils import HEADER, report_name, weekly_window

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class DownloadProductionListTests(ProblemAssertions, ReportTestCase):
    def assert_nothing_written(self):
        self.assertFalse((self.folder / "robots_list.xlsx").exists())

    def test_it_serves_the_week_as_an_excel_attachment(self):
        self.produce("R2", "D2", 2, created=timezone.now() - timedelta(days=1))

        response = self.client.get("/download/")

        self.assertEqual(response.status_code, 200)
        self.assertEqual(response["Content-Type"], XLSX)
        # Named by its week: weeks downloaded into one folder do not collide.
        name = report_name(weekly_window())
        self.assertRegex(name, r"^robots_\d{4}-\d\d-\d\d_\d{4}-\d\d-\d\d\.xlsx$")
        self.assertEqual(
            response["Content-Disposition"],
            f"attachment; filename=\"{name}\"; filename*=UTF-8''{name}",
        )
        self.assertEqual(by_model(response.content), {"R2": sheet(("R2", "D2", 2))})
        self.assertEqual((self.folder / "robots_list.xlsx").read_bytes(), response.content)

    def test_a_row_written_before_serials_were_checked_is_left_out_and_logged(self):
        self.produce("R2", "D2", 2, created=timezone.now() - timedelta(days=1))
        robot = Robot.objects.first()
        with connection.cursor() as cursor:  # as a database from before migration 0013 holds
            for name in ["robots_check_serial", "robots_check_serial_insert"]:
                cursor.execute(
                    f"DROP TRIGGER IF EXISTS {name}"
                    + (" ON robots_robot" if connection.vendor == "postgresql" else "")
                )
            for serial in ["", "R2D2"]:
                cursor.execute(
                    "INSERT INTO robots_robot (model_id, version_id, serial, created) "
                    "SELECT model_id, version_id, %s, created FROM robots_robot WHERE id = %s",
                    [serial, robot.pk],
                )

        with self.assertLogs("robots.utils", "ERROR") as logged:
            response = self.client.get("/download/")
        self.assertEqual(response.status_code, 200)
        self.assertEqual(by_model(response.content), {"R2": sheet(("R2", "D2", 2))})
        self.assertEqual(len(logged.records), 2)
        self.assertIn("'R2D2'", logged.output[-1])

    def test_it_counts_the_last_seven_days_up_to_now(self):
        week_ago = timezone.now() - timedelta(days=7)
        self.produce("R2", "D2", 1, created=week_ago + timedelta(minutes=1))
        self.produce("R2", "D2", 1, created=timezone.now() - timedelta(seconds=1))
        self.produce("R2", "A1", 1, created=week_ago - timedelta(minutes=1))
        self.produce("13", "XS", 1, created=timezone.now() + timedelta(hours=1))

        report = by_model(self.client.get("/download/").content)

        self.assertEqual(report, {"R2": sheet(("R2", "D2", 2))})

    def test_a_week_without_production_is_a_report_not_an_error(self):
        self.produce("R2", "D2", 5, created=timezone.now() - timedelta(days=30))

        response = self.client.get("/download/")

        self.assertEqual(response.status_code, 200)
        self.assertEqual(by_model(response.content), {})
        week, header, line, total = read_report(response.content)["Итого"]
        self.assertTrue(week[0].startswith("Неделя: с "))
        self.assertEqual((header, total), (("Робот", HEADER[2]), ("Итого", 0)))
        self.assertIn("не производились", line[0])

    def test_head_is_allowed(self):
        response = self.client.head("/download/")
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response["Content-Type"], XLSX)

    def test_other_methods_get_405_in_the_problem_shape(self):
        for method in ["post", "put", "delete"]:
            with self.subTest(method=method):
                response = getattr(self.client, method)("/download/")
                self.assert_problem(response, 405)
                self.assertEqual(response["Allow"], "GET, HEAD")
