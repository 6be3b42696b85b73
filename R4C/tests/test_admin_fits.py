"""The admin's lists and reports fit a laptop (1280 px) and a phone (390 px) with real data:
notices sent, refused, retrying and stopped, and a 64-character address. In Chromium."""

import pytest
from django.contrib.auth.models import User
from selenium.webdriver.common.by import By

from R4C.tests.browser import BrowserTestCase
from R4C.tests.world import LONG_ADDRESS, catalog, mail_gone_out, produce

pytestmark = pytest.mark.slow

# How far the page, and the list's own box, would scroll sideways: 0 when it fits.
OVERFLOW = """
const box = document.querySelector(arguments[0]);
return [document.documentElement.scrollWidth - document.documentElement.clientWidth,
        box ? box.scrollWidth - box.clientWidth : 0];
"""
# Each column header narrower than its own longest word, as [header, its width, the word's].
SQUEEZED = """
const out = [];
for (const th of document.querySelectorAll('#result_list thead th')) {
  const text = th.innerText.trim();
  if (!text) continue;
  const probe = document.createElement('span');
  probe.style.cssText = 'position:absolute;visibility:hidden;white-space:nowrap';
  probe.style.font = getComputedStyle(th.querySelector('a, span, div') || th).font;
  probe.style.textTransform = getComputedStyle(th.querySelector('a, span, div') || th).textTransform;
  let longest = 0;
  for (const word of text.split(/\\s+/)) {
    probe.textContent = word;
    document.body.appendChild(probe);
    longest = Math.max(longest, probe.getBoundingClientRect().width);
    probe.remove();
  }
  const inner = th.querySelector('.text') || th;
  if (inner.getBoundingClientRect().width + 1 < longest) out.push([text, inner.getBoundingClientRect().width, longest]);
}
return out;
"""

# The words of the elements `arguments[0]` selects that are laid out over two lines.
BROKEN_WORDS = """
const broken = [];
for (const el of document.querySelectorAll(arguments[0]))
  for (const node of el.childNodes) {
    if (node.nodeType !== Node.TEXT_NODE) continue;
    let at = 0;
    for (const part of node.textContent.split(/(\\s+)/)) {
      if (part.trim()) {
        const range = document.createRange();
        range.setStart(node, at);
        range.setEnd(node, at + part.length);
        const lines = new Set([...range.getClientRects()].map(r => Math.round(r.top)));
        if (lines.size > 1) broken.push(part);
      }
      at += part.length;
    }
  }
return broken;
"""


class AdminFitsTests(BrowserTestCase):
    def setUp(self):
        catalog()
        mail_gone_out()
        produce("R2-A1", 3)
        User.objects.create_superuser("boss", "boss@r4c.test", "a-long-passphrase")
        self.driver.delete_all_cookies()
        self.driver.get(f"{self.live_server_url}/admin/login/")
        self.driver.find_element(By.ID, "id_username").send_keys("boss")
        self.driver.find_element(By.ID, "id_password").send_keys("a-long-passphrase")
        self.driver.find_element(By.CSS_SELECTOR, "#login-form [type=submit]").click()
        self.driver.find_element(By.ID, "user-tools")

    def at(self, width: int, path: str, box: str = "#changelist .results") -> list[int]:
        self.driver.set_window_size(width, 900)
        self.driver.get(f"{self.live_server_url}{path}")
        return self.driver.execute_script(OVERFLOW, box)

    def test_the_orders_list_fits_a_laptop_with_every_column_readable(self):
        page, table = self.at(1280, "/admin/orders/order/")
        self.browser.screenshot("admin-orders")
        self.assertEqual((page, table), (0, 0), "the page or the list scrolls sideways at 1280 px")
        self.assertEqual(self.driver.execute_script(SQUEEZED), [])
        # Shortened in the list, whole in its title.
        cell = self.driver.find_element(By.CSS_SELECTOR, f'[title="{LONG_ADDRESS}"]')
        self.assertLess(len(cell.text), len(LONG_ADDRESS))

    def test_the_orders_list_reads_on_a_phone_scrolling_only_inside_its_box(self):
        page, _ = self.at(390, "/admin/orders/order/")
        self.browser.screenshot("admin-orders-390")
        self.assertEqual(page, 0, "the page scrolls sideways at 390 px")
        self.assertEqual(self.driver.execute_script(SQUEEZED), [])

    def test_on_a_phone_no_serial_or_section_name_is_broken_over_two_lines(self):
        for path, names in [
            ("/admin/orders/order/", "#result_list .field-robot_serial"),
            ("/admin/", "#content-main .module th a"),
            ("/admin/demand/", "#demand td"),
        ]:
            with self.subTest(path=path):
                self.at(390, path)
                self.assertEqual(self.driver.execute_script(BROKEN_WORDS, names), [])

    def test_the_week_s_report_and_the_demand_fit_a_phone(self):
        for path, name in [("/admin/report/", "admin-report"), ("/admin/demand/", "admin-demand")]:
            with self.subTest(path=path):
                page, box = self.at(390, path, "#content-main")
                self.browser.screenshot(f"{name}-390")
                self.assertEqual((page, box), (0, 0), f"{path} is wider than a phone")
