"""Every admin page a manager or the site's administrator can open reads as Russian, in
Debian's Chromium, with mail gone out every way (sent, refused, retrying, stopped)."""

import re
from collections import Counter
from urllib.parse import urlsplit

import pytest
from django.contrib.auth.models import Permission, User
from selenium.webdriver.common.by import By
from selenium.webdriver.support.expected_conditions import staleness_of
from selenium.webdriver.support.ui import Select

from R4C.tests.browser import BrowserTestCase
from R4C.tests.world import catalog, mail_gone_out
from robots.models import ApiKey, Model

pytestmark = pytest.mark.slow

# Latin words a page may show: names of things, and keys on a keyboard, that Russian writes
# in Latin letters too.
ALLOWED = {"API", "Excel", "R4C", "xlsx", "IP", "UTC", "LDAP", "SSO", "Control", "Command", "Mac"}
# Where Django's and django-axes' stock Russian slipped on R4C's pages before (a model's name
# in the wrong case or gender, a counted noun in the wrong form, a made-up word).
SLIPS = re.compile(
    r"был(?:о|а)? (?:успешно )?(?:изменен|изменён|добавлен|удален|удалён)\w* успешно"
    r"|был(?:о|а)? успешно|успешно удалены"
    r"|Добавить (?:покупатель|робот|версия|пользователь)\b|Удалить выбранные \w+"
    r"|Паджинация|\bПусто\b|Не пусто|\b0 Попытки|\d+ (?:Попытки|Логи) доступа"
    r"|(?:выбранных|доступных) права|отфитровать|\bи и\b|Искать \w+"
    r"|(?:Удаление|удалить) (?:покупатели|роботы|версии|модели|пользователи|API-ключи)\b",
    re.IGNORECASE,
)
# Written by people or machines, not by R4C: addresses, links, serials, keys and hashes, a
# mail server's reply, a browser's name, a name shortened with "…", the users' own names.
NOT_WORDS = re.compile(
    r"\b[245]\d\d [245]\.\d+\.\d+ [^\t\n]*|Mozilla/[^\t\n]*|(?i:\b(?:manager|boss)\b)"
    r"|\S+@\S+|https?://\S+|/\S*|\b[\w.-]*\d[\w.-]*\b|\S*\*\S*|\S+…"
    r"|\b[0-9A-Z]{2}\b"  # a catalog name
)
LATIN = re.compile(r"[A-Za-z]+(?:['-][A-Za-z]+)*")
# Everything a page says, to the eye and to a screen reader.
SAID = """
const said = [document.title, document.body.innerText];
for (const e of document.querySelectorAll('[aria-label], [title], [placeholder], [alt]'))
  for (const a of ['aria-label', 'title', 'placeholder', 'alt'])
    if (e.hasAttribute(a)) said.push(e.getAttribute(a));
for (const e of document.querySelectorAll('input[type=submit], input[type=button]'))
  said.push(e.value);
for (const e of document.querySelectorAll('.visually-hidden, option')) said.push(e.textContent);
return said.join('\\n');
"""
LINKS = "return [...document.querySelectorAll('a[href]')].map(a => a.getAttribute('href'))"


def kind_of(path: str) -> str:
    """Pages of one kind: the same route, ids aside, and the same query names."""
    parts = urlsplit(path)
    names = sorted({pair.split("=")[0] for pair in parts.query.split("&") if pair})
    return re.sub(r"/\d+/", "/N/", parts.path) + "?" + "&".join(names)


class AdminWalkTests(BrowserTestCase):
    def setUp(self):
        catalog()
        mail_gone_out()
        manager = User.objects.create_user("manager", password="a-long-passphrase", is_staff=True)
        manager.user_permissions.set(Permission.objects.all())
        User.objects.create_superuser("boss", "boss@r4c.test", "a-long-passphrase")
        # One failed sign-in, so that the lockout's lists have a row.
        self.sign_in("boss", "wrong")

    def sign_in(self, name: str, password: str = "a-long-passphrase") -> None:
        self.driver.delete_all_cookies()
        self.driver.get(f"{self.live_server_url}/admin/login/")
        self.driver.find_element(By.ID, "id_username").send_keys(name)
        self.driver.find_element(By.ID, "id_password").send_keys(password)
        self.driver.find_element(By.CSS_SELECTOR, "#login-form [type=submit]").click()
        self.driver.find_element(By.CSS_SELECTOR, "#user-tools, .errornote")  # answered

    def open(self, path: str) -> str:
        self.driver.get(f"{self.live_server_url}{path}")
        return self.driver.execute_script(SAID)

    def slips_in(self, said: str) -> list[str]:
        words = set(LATIN.findall(NOT_WORDS.sub(" ", said))) - ALLOWED
        return SLIPS.findall(said) + sorted(words)

    def walk(self) -> dict[str, list[str]]:
        """Open every admin page that links lead to (up to three of each kind): what each
        says wrong."""
        queue, seen, kinds, wrong = ["/admin/"], set(), Counter(), {}
        while queue:
            path = queue.pop(0)
            if path in seen or kinds[kind_of(path)] >= 3:
                continue
            seen.add(path)
            kinds[kind_of(path)] += 1
            if found := self.slips_in(self.open(path)):
                wrong[path] = found
            for href in self.driver.execute_script(LINKS):
                href = href.split("#")[0]
                if href.startswith("?"):
                    href = urlsplit(path).path + href
                # Sorted, faceted or come back to, a list says the same words.
                skip = r"logout|/r/\d|[?&](?:o|_facets|_changelist_filters|_popup)="
                if href.startswith("/admin/") and not re.search(skip, href):
                    queue.append(href)
        self.pages = len(seen)
        return wrong

    def test_every_page_a_manager_opens_reads_as_russian(self):
        self.sign_in("manager")
        self.assertEqual(self.walk(), {})
        self.assertGreaterEqual(self.pages, 80)

    def test_every_page_the_site_s_administrator_opens_reads_as_russian(self):
        self.sign_in("boss")
        self.assertEqual(self.walk(), {})
        self.assertGreaterEqual(self.pages, 120)

    def said_after(self, *clicks: str) -> str:
        """Click each of `clicks` (CSS selectors) in turn: what the page then says."""
        for selector in clicks:
            page = self.driver.find_element(By.TAG_NAME, "html")
            self.driver.find_element(By.CSS_SELECTOR, selector).click()
            self.browser.wait(lambda page=page: staleness_of(page)(self.driver))  # the next page
        return self.driver.execute_script(SAID)

    def act(self, path: str, action: str, *confirm: str) -> str:
        """Run the list's `action` on its first row, confirming if asked: what it then says."""
        self.open(path)
        self.driver.find_element(By.CSS_SELECTOR, "input.action-select").click()
        Select(self.driver.find_element(By.NAME, "action")).select_by_value(action)
        return self.said_after("button[name=index]", *confirm)

    def test_what_the_admin_says_after_saving_deleting_and_acting_reads_as_russian(self):
        self.sign_in("boss")
        said = {}
        self.open("/admin/robots/model/add/")
        self.driver.find_element(By.ID, "id_name").send_keys("Q1")
        said["added, to edit again"] = self.said_after("[name=_continue]")
        said["changed, to edit again"] = self.said_after("[name=_continue]")
        said["changed, to add another"] = self.said_after("[name=_addanother]")
        self.open(f"/admin/robots/model/{Model.objects.get(name='Q1').pk}/change/")
        said["changed"] = self.said_after("[name=_save]")
        self.open(f"/admin/robots/model/{Model.objects.get(name='Q1').pk}/delete/")
        said["asked to delete"] = self.driver.execute_script(SAID)
        said["deleted"] = self.said_after("#content form [type=submit]")
        said["a model in use, asked"] = self.open("/admin/robots/model/1/delete/")
        said["asked to delete keys"] = self.act("/admin/robots/apikey/", "delete_selected")
        said["keys deleted"] = self.said_after("#content form [type=submit]")
        said["customers in use, asked"] = self.act("/admin/customers/customer/", "delete_selected")
        ApiKey.issue("линия 4")
        said["key revoked"] = self.act("/admin/robots/apikey/", "revoke")
        said["failed retried"] = self.act("/admin/orders/order/?state__exact=failed", "retry_now")
        said["suppression lifted"] = self.act("/admin/orders/suppression/", "lift")
        said["customers forgotten"] = self.act("/admin/customers/customer/", "forget")
        self.open("/admin/auth/user/add/")
        self.driver.find_element(By.ID, "id_username").send_keys("director")
        said["user added"] = self.said_after("[name=_save]")
        wrong = {step: found for step, text in said.items() if (found := self.slips_in(text))}
        self.assertEqual(wrong, {})
        self.assertIn("Модель «Q1»: добавлено", said["added, to edit again"])
        self.assertIn("Модель «Q1»: удалено", said["deleted"])
        self.assertIn("Удалено: 1", said["keys deleted"])
