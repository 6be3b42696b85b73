"""A customer orders from `/` in Debian's Chromium, against the live server."""

import json
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from customers.models import Customer
from orders.models import Order, StopLink
from R4C.tests.browser import BrowserTestCase
from R4C.tests.world import catalog, place

pytestmark = pytest.mark.slow


class OrderPageInBrowserTests(BrowserTestCase):
    window = (412, 900)  # a phone's: the page must read without sideways scrolling

    def setUp(self):
        catalog()

    def order(self, email: str, serial: str) -> None:
        self.driver.get(f"{self.live_server_url}/")
        self.driver.find_element(By.ID, "email").send_keys(email)
        Select(self.driver.find_element(By.ID, "robot-serial")).select_by_value(serial)
        self.driver.find_element(By.CSS_SELECTOR, "#order button[type=submit]").click()

    def stock_of(self, serial: str) -> str:
        return self.driver.find_element(By.CSS_SELECTOR, f"#robot-{serial} .stock").text

    def test_a_customer_orders_a_robot_out_of_stock_and_sees_the_confirmation(self):
        self.driver.get(f"{self.live_server_url}/")
        self.assertEqual(self.stock_of("R2-D2"), "Нет в наличии")
        fits = "return document.documentElement.scrollWidth <= window.innerWidth"
        self.assertTrue(self.driver.execute_script(fits), "the page scrolls sideways on a phone")
        self.look_at("catalog")

        self.order("ann@example.com", "R2-D2")

        confirmation = self.driver.find_element(By.ID, "confirmation").text
        self.assertIn("Мы напишем, когда робот появится", confirmation)
        self.assertIn("сейчас нет в наличии", confirmation)
        self.assertRegex(self.driver.current_url, r"/order/[^/]+/(#order)?$")  # reload: no post
        self.assertIn("ann@example.com", confirmation)
        self.look_at("order-placed")
        order = Order.objects.get()
        self.assertEqual((order.robot_serial, order.state), ("R2-D2", "waiting"))

    def test_a_wrong_email_shows_the_error_beside_the_field(self):
        self.order("ann@", "R2-D2")

        error = self.driver.find_element(By.ID, "email-error")
        self.assertIn("нельзя отправить письмо", error.text)
        field = self.driver.find_element(By.ID, "email")
        self.assertEqual(field.get_attribute("aria-describedby"), "email-error")
        self.assertEqual(field.get_attribute("value"), "ann@")  # kept to correct it
        # Beside the field: in the email field's own block, right under it.
        block = error.find_element(By.XPATH, "..")
        self.assertEqual(block.find_element(By.TAG_NAME, "input").get_attribute("id"), "email")
        self.look_at("order-error")
        self.assertFalse(Order.objects.exists())

    def test_a_robot_posted_to_the_api_then_shows_in_stock(self):
        body = json.dumps({"model": "R2", "version": "D2", "created": "2023-10-03 23:59:12"})
        request = urllib.request.Request(
            f"{self.live_server_url}/add_robot/",
            body.encode(),
            {"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request) as response:
            self.assertEqual(response.status, 201)

        self.driver.get(f"{self.live_server_url}/")
        self.assertEqual(self.stock_of("R2-D2"), "В наличии")
        self.assertEqual(self.stock_of("R2-A1"), "Нет в наличии")

        self.order("ann@example.com", "R2-D2")
        confirmation = self.driver.find_element(By.ID, "confirmation").text
        self.assertIn("Робот в наличии — письмо уже в пути", confirmation)
        self.assertIn("есть в наличии", confirmation)
        self.assertEqual(Order.objects.get().state, "due")

    def test_a_form_posted_from_another_site_is_refused(self):
        target = f"{self.live_server_url}/create_order/"
        page = (
            f'<form method="post" action="{target}">'
            '<input name="email" value="victim@example.com">'
            '<input name="robot-serial" value="R2-D2">'
            '<button id="go">Win a robot</button></form>'
        ).encode()

        class Elsewhere(BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, *args):
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Elsewhere)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.addCleanup(server.shutdown)

        # Another origin (another host name and port) whose page posts the form.
        self.driver.get(f"http://localhost:{server.server_port}/")
        self.driver.find_element(By.ID, "go").click()

        # The site's own page, in Russian, with the way back to the form.
        self.assertEqual(self.driver.find_element(By.TAG_NAME, "h1").text, "Форма устарела")
        self.assertIn(
            "#order",
            self.driver.find_element(By.LINK_TEXT, "Откройте форму заново").get_attribute("href"),
        )
        self.look_at("cross-site-post-refused")
        self.assertFalse(Order.objects.exists())

    def test_the_link_in_a_notice_asks_first_then_stops_mail(self):
        place("R2-D2", "ann@example.com")
        place("R2-A1", "ann@example.com")
        [token] = StopLink.issue([Customer.objects.get()])  # as a notice's claim does

        self.driver.get(f"{self.live_server_url}/stop/{token}/")
        self.assertIn("Отписаться от писем?", self.driver.find_element(By.TAG_NAME, "h1").text)
        self.look_at("stop-confirm")
        self.assertEqual(set(Order.objects.values_list("state", flat=True)), {"waiting"})

        self.driver.find_element(By.ID, "stop-button").click()

        self.assertIn("больше не будет", self.driver.find_element(By.ID, "stopped").text)
        self.look_at("stop-done")
        self.assertEqual(set(Order.objects.values_list("state", flat=True)), {"stopped"})

    def test_the_accessibility_check_finds_a_barrier_where_there_is_one(self):
        # A page with an unlabelled field and an image without text: the check must see them.
        self.driver.get("data:text/html,<html lang=ru><title>x</title><img src=a.png><input>")
        barriers = self.browser.serious_barriers()
        self.assertTrue(any("image-alt" in barrier for barrier in barriers), barriers)
        self.assertTrue(any("label" in barrier for barrier in barriers), barriers)
