"""A manager uses the admin and the weekly report in Debian's Chromium, on the live server."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.test import override_settings
from django.utils import timezone
from openpyxl import load_workbook
from selenium.webdriver.common.by import By

from R4C.tests.browser import BrowserTestCase
from R4C.tests.world import catalog, place, wait_for
from robots.models import Model, Robot

pytestmark = pytest.mark.slow

PERMISSIONS = [
    f"{action}_{model}" for model in ("model", "version") for action in ("add", "change", "view")
] + ["view_robot"]


# As in production: the report is for staff (or a machine with a key), not for anyone.
@override_settings(API_KEYS_REQUIRED=True)
class AdminInBrowserTests(BrowserTestCase):
    def setUp(self):
        manager = User.objects.create_user("manager", password="a-long-passphrase", is_staff=True)
        manager.user_permissions.set(Permission.objects.filter(codename__in=PERMISSIONS))

    def sign_in(self):
        self.driver.get(f"{self.live_server_url}/admin/")
        self.driver.find_element(By.ID, "id_username").send_keys("manager")
        self.driver.find_element(By.ID, "id_password").send_keys("a-long-passphrase")
        self.driver.find_element(By.CSS_SELECTOR, "#login-form [type=submit]").click()
        self.driver.find_element(By.CSS_SELECTOR, ".app-reports")  # the admin's home page

    def test_a_manager_adds_a_model_with_two_versions_and_downloads_the_week_s_report(self):
        self.sign_in()
        self.driver.get(f"{self.live_server_url}/admin/robots/model/add/")
        self.driver.find_element(By.ID, "id_name").send_keys("x7")
        self.driver.find_element(By.ID, "id_versions-0-name").send_keys("A1")
        self.driver.find_element(By.CSS_SELECTOR, "#versions-group .add-row a").click()
        self.driver.find_element(By.ID, "id_versions-1-name").send_keys("B2")
        self.driver.find_element(By.NAME, "_save").click()
        self.driver.find_element(By.CSS_SELECTOR, "#result_list")  # back at the list

        model = Model.objects.get(name="X7")
        self.assertEqual([v.name for v in model.versions.order_by("name")], ["A1", "B2"])
        now = timezone.now()
        for version, count in (("A1", 3), ("B2", 1)):
            for _ in range(count):
                Robot.objects.produce("X7", version, now - timedelta(hours=1))
        Robot.objects.produce("X7", "A1", now - timedelta(days=8))  # before the week

        self.driver.refresh()
        listed = self.driver.find_element(By.CSS_SELECTOR, "#result_list tbody").text
        self.assertIn("A1 (4), B2 (1)", listed)  # robots per version, all time
        self.browser.screenshot("admin-catalog")

        self.driver.get(f"{self.live_server_url}/admin/")
        self.browser.screenshot("admin-home")
        self.driver.find_element(By.LINK_TEXT, "Еженедельный отчёт о производстве").click()
        self.assertIn("Неделя: с", self.driver.find_element(By.ID, "window").text)
        rows = [
            [cell.text for cell in row.find_elements(By.TAG_NAME, "td")]
            for row in self.driver.find_elements(By.CSS_SELECTOR, "#counts tbody tr")
        ]
        self.assertEqual(rows, [["X7-A1", "3"], ["X7-B2", "1"]])
        self.assertEqual(len(self.driver.find_elements(By.CSS_SELECTOR, "#chart rect")), 2)
        self.look_at("admin-report")

        self.driver.find_element(By.ID, "download").click()
        downloaded = lambda: list(self.browser.downloads.glob("robots_*.xlsx"))
        self.assertTrue(wait_for(downloaded, 15), "the report was not downloaded")
        [report] = downloaded()
        self.assertRegex(report.name, r"^robots_\d{4}-\d\d-\d\d_\d{4}-\d\d-\d\d\.xlsx$")
        sheet = load_workbook(report)["X7"]
        self.assertEqual(
            list(sheet.iter_rows(max_col=3, values_only=True)),  # the table, beside the week
            [
                ("Модель", "Версия", "Количество за неделю"),
                ("X7", "A1", 3),
                ("X7", "B2", 1),
                ("Итого", None, 4),
            ],
        )

    def test_produced_robots_are_read_only_for_a_manager(self):
        Model.objects.create(name="R2").versions.create(name="D2")
        robot = Robot.objects.produce("R2", "D2", timezone.now())
        self.sign_in()

        self.driver.get(f"{self.live_server_url}/admin/robots/robot/{robot.pk}/change/")

        self.assertIn("R2-D2", self.driver.find_element(By.ID, "content").text)
        self.assertEqual(self.driver.find_elements(By.NAME, "_save"), [])
        self.assertEqual(self.driver.find_elements(By.CSS_SELECTOR, "a.deletelink"), [])

    def test_a_manager_sees_what_customers_wait_for(self):
        catalog()
        place("R2-D2", "a@example.com", "b@example.com", "c@example.com")
        place("13-XS", "d@example.com")
        self.sign_in()

        self.driver.find_element(By.LINK_TEXT, "Спрос: чего ждут покупатели").click()

        rows = [
            [cell.text for cell in row.find_elements(By.TAG_NAME, "td")]
            for row in self.driver.find_elements(By.CSS_SELECTOR, "#demand tbody tr")
        ]
        self.assertEqual([(row[0], row[1], row[3], row[4]) for row in rows], [
            ("R2-D2", "3", "0", "нет"),
            ("13-XS", "1", "0", "нет"),
        ])  # fmt: skip
        self.look_at("admin-demand")
