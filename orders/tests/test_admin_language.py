"""Every page a manager sees in the admin speaks Russian."""

import re

from django.contrib.auth.models import Permission, User
from django.test import TestCase
from django.utils import timezone

from orders.mail import outbox
from orders.models import Bounce, Order
from orders.tests.smtp import smtp_server
from R4C.templatetags import counted
from R4C.tests.world import catalog, drain, place, produce
from robots.models import ApiKey

ENGLISH = [
    "Email",
    "Serial",
    "Version",
    "Placed at",
    "Attempts",
    "Last error",
    "Created at",
    "Last used at",
    "Revoked at",
    "Name",
    "State",
    "Select an option",
    "Filter by",
]
# Where a page names things: labels, column and section headers, titles, choices, help.
NAMING = re.compile(
    r"<(label|th|h1|h2|h3|caption|option|summary|legend)\b[^>]*>(.*?)</\1>"
    r'|<div class="help"[^>]*>(.*?)</div>|id="date-hierarchy-label">(.*?)<',
    re.DOTALL,
)


class AdminLanguageTests(TestCase):
    def setUp(self):
        catalog()
        ApiKey.issue("линия 3")
        [_, ann] = place("R2-D2", "gone@example.com", "ann@example.com")
        produce("R2-D2")
        with smtp_server() as server:
            server.refuse["gone@example.com"] = "550 5.1.1 No such user"
            drain()
        outbox.bounced(ann, Bounce.Kind.SOFT, "4.2.2", "mailbox full")
        self.client.force_login(User.objects.create_superuser("boss", "b@r4c.test", "pw"))

    def pages(self) -> list[str]:
        home = self.client.get("/admin/").content.decode()
        lists = sorted(set(re.findall(r'href="(/admin/[a-z]+/[a-z]+/)"', home)))
        found = [*lists, *sorted(set(re.findall(r'href="(/admin/[a-z]+/[a-z]+/add/)"', home)))]
        for path in lists:
            page = self.client.get(path).content.decode()
            change = re.search(rf'href="({re.escape(path)}[^"/]+/change/)', page)
            if change:
                found.append(change.group(1))
        return found

    def test_no_label_or_header_of_any_admin_page_is_english(self):
        pages = self.pages()
        self.assertGreaterEqual(len(pages), 15)
        for path in pages:
            with self.subTest(path=path):
                response = self.client.get(path)
                self.assertEqual(response.status_code, 200)
                names = " | ".join(
                    re.sub(r"<[^>]+>", " ", "".join(parts))
                    for parts in NAMING.findall(response.content.decode())
                )
                for word in ENGLISH:
                    self.assertNotRegex(names, rf"\b{word}\b")

    def test_an_order_s_title_says_its_real_state(self):
        response = self.client.get("/admin/orders/order/")
        self.assertContains(response, "gone@example.com — R2-D2 (не доставлено)")
        self.assertContains(response, "ann@example.com — R2-D2 (отправлено)")


class ManagerAdminTests(TestCase):
    def test_a_manager_sees_the_reports_and_the_catalog_first_and_no_internals(self):
        manager = User.objects.create_user("manager", "m@r4c.test", "pw", is_staff=True)
        manager.user_permissions.set(Permission.objects.all())  # every model's, even so
        self.client.force_login(manager)

        home = self.client.get("/admin/").content.decode()
        sections = re.findall(r"<caption>\s*(?:<a[^>]*>)?([^<]+?)\s*<", home)
        self.assertEqual(sections[:2], ["Отчёты", "Роботы"])
        reports = home[home.index('class="app-reports') : home.index('class="app-robots')]
        self.assertNotIn("changelink", reports)  # pages and a file: no change or view link
        self.assertNotIn("viewlink", reports)
        self.assertNotIn("Axes", home)
        self.assertNotIn("Вход в админку", home)  # the lockout's logs
        self.assertNotIn("Поступления", home)  # the worker's outbox
        self.assertEqual(self.client.get("/admin/orders/arrival/").status_code, 403)
        # The reports in the sidebar of every page, not only on the home page.
        sidebar = self.client.get("/admin/orders/order/").content.decode()
        for path in ["/admin/report/", "/admin/demand/", "/download/"]:
            self.assertIn(f'href="{path}"', sidebar)

    def test_the_site_s_administrators_still_see_everything(self):
        self.client.force_login(User.objects.create_superuser("boss", "b@r4c.test", "pw"))
        home = self.client.get("/admin/").content.decode()
        self.assertIn("Поступления", home)
        self.assertIn("/admin/axes/", home)


class RussianCountsTests(TestCase):
    def test_counts_take_the_noun_s_russian_form(self):
        opts = Order._meta
        said = {n: counted(n, opts) for n in (0, 1, 2, 4, 5, 11, 12, 21, 22, 25, 101, 111)}
        self.assertEqual(
            said,
            {
                0: "0 заказов",
                1: "1 заказ",
                2: "2 заказа",
                4: "4 заказа",
                5: "5 заказов",
                11: "11 заказов",
                12: "12 заказов",
                21: "21 заказ",
                22: "22 заказа",
                25: "25 заказов",
                101: "101 заказ",
                111: "111 заказов",
            },
        )

    def test_the_admin_s_lists_and_dates_speak_russian_grammar(self):
        catalog()
        place("R2-D2", "ann@example.com", "bob@example.com")
        self.client.force_login(User.objects.create_superuser("boss", "b@r4c.test", "pw"))
        self.assertContains(self.client.get("/admin/orders/order/"), "2 заказа")
        self.assertContains(self.client.get("/admin/robots/model/"), "2 модели")
        # The date drill-down names the day in the genitive, as Russian does.
        today = timezone.localdate()
        page = self.client.get(
            "/admin/customers/customer/",
            {"created_at__year": today.year, "created_at__month": today.month},
        )
        self.assertContains(page, f"{today.day} {MONTHS[today.month]}")


MONTHS = dict(enumerate(
    ["", "января", "февраля", "марта", "апреля", "мая", "июня", "июля", "августа", "сентября",
     "октября", "ноября", "декабря"]
))  # fmt: skip
