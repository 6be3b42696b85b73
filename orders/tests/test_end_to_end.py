"""The three users' paths through the real HTTP server, a real SMTP server and the worker."""

import json
import tempfile
import urllib.error
import urllib.parse
import urllib.request

from django.core.management import call_command
from django.test import LiveServerTestCase, override_settings
from django.utils import timezone

from orders.tests.smtp import smtp_server
from robots.models import Model, Version
from robots.tests.report import by_model, sheet


def request(url: str, data: bytes | None = None, content_type: str | None = None):
    headers = {"Content-Type": content_type} if content_type else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data, headers)) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


class EndToEndTests(LiveServerTestCase):
    def setUp(self):
        Version.objects.create(model=Model.objects.create(name="R2"), name="D2")
        folder = tempfile.TemporaryDirectory()
        self.addCleanup(folder.cleanup)
        settings = override_settings(PRODUCTION_LIST_DIR=folder.name)
        settings.enable()
        self.addCleanup(settings.disable)

    def order(self, email: str):
        form = urllib.parse.urlencode({"email": email, "robot-serial": "R2-D2"}).encode()
        status, _, body = request(
            f"{self.live_server_url}/create_order/", form, "application/x-www-form-urlencoded"
        )
        return status, json.loads(body)

    def add_robot(self, body: dict):
        status, headers, content = request(
            f"{self.live_server_url}/add_robot/", json.dumps(body).encode(), "application/json"
        )
        return status, headers["Content-Type"], json.loads(content)

    def test_a_customer_waits_the_factory_produces_the_customer_is_mailed(self):
        status, order = self.order("ann@example.com")
        self.assertEqual((status, order["in_stock"], order["is_notified"]), (201, False, False))

        now = timezone.localtime().strftime("%Y-%m-%d %H:%M:%S")
        status, _, robot = self.add_robot({"model": "R2", "version": "D2", "created": now})
        self.assertEqual((status, robot["serial"]), (201, "R2-D2"))

        with smtp_server() as server:
            call_command("send_notices", "--once")
        self.assertEqual(server.recipients(), ["ann@example.com"])
        self.assertEqual(server.messages[0][1]["Subject"], "Робот R2-D2 в наличии")

        status, order = self.order("ann@example.com")
        self.assertEqual((status, order["in_stock"], order["is_notified"]), (200, True, False))

        status, headers, content = request(f"{self.live_server_url}/download/")
        self.assertEqual(status, 200)
        self.assertRegex(
            headers["Content-Disposition"], r'^attachment; filename="robots_[\d_-]+\.xlsx"'
        )
        self.assertEqual(by_model(content), {"R2": sheet(("R2", "D2", 1))})

    def test_bad_input_over_http_gets_the_problem_shape(self):
        status, content_type, problem = self.add_robot({"model": "R2", "version": "D2"})

        self.assertEqual((status, content_type), (400, "application/problem+json"))
        self.assertEqual(problem["errors"], {"created": ["This field is required."]})
