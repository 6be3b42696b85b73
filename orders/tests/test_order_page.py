"""`/` and a browser's form post to /create_order/, next to the API on the same URL."""

from django.core import signing
from django.test import Client, TestCase, override_settings

from orders.mail import outbox
from orders.models import Bounce, Order
from R4C.tests.world import catalog, drain, produce

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


class OrderPageTests(TestCase):
    def setUp(self):
        catalog()
        # As a browser: cookies, and the CSRF check that protects them.
        self.browser = Client(enforce_csrf_checks=True, HTTP_ACCEPT=BROWSER)

    def post_form(self, email="ann@example.com", serial="R2-D2"):
        page = self.browser.get("/")
        token = page.context["csrf_token"]
        data = {"email": email, "robot-serial": serial, "csrfmiddlewaretoken": token}
        return self.browser.post("/create_order/", data)

    def test_the_home_page_lists_the_catalog_with_what_is_in_stock(self):
        produce("R2-D2")

        response = self.browser.get("/")

        self.assertEqual(response.status_code, 200)
        self.assertContains(response, '<html lang="ru">')
        self.assertContains(response, 'id="robot-R2-D2"')
        stock = {v.serial: v.in_stock for v in response.context["catalog"]}
        self.assertEqual(stock, {"13-XS": False, "R2-A1": False, "R2-D2": True})
        self.assertContains(response, "В наличии", count=1)
        self.assertContains(response, 'name="robot-serial"')
        # Under the strict Content Security Policy: no inline style or script to allow.
        self.assertIn("style-src 'self'", response["Content-Security-Policy"])
        self.assertNotContains(response, "style=")
        self.assertNotContains(response, "<script")

    def test_a_link_from_the_catalog_chooses_the_robot_in_the_form(self):
        response = self.browser.get("/?serial=r2-a1")

        self.assertContains(response, '<option value="R2-A1" selected>', html=False)

    def test_a_browser_opening_the_form_s_address_is_sent_to_the_form(self):
        response = self.browser.get("/create_order/")

        self.assertRedirects(response, "/#order", fetch_redirect_response=False)
        api = Client().get("/create_order/")
        self.assertEqual((api.status_code, api["Allow"]), (405, "POST"))

    def test_a_browser_s_order_is_answered_with_a_redirect_to_its_own_page(self):
        response = self.post_form()

        # POST/redirect/GET: a reload of the answer reads the page again and posts nothing.
        self.assertEqual(response.status_code, 303)
        self.assertRegex(response["Location"], r"^/order/[^/]+/$")
        order = Order.objects.get()
        for _ in range(2):
            page = self.browser.get(response["Location"])
            self.assertContains(page, "<h1>Мы напишем, когда робот появится</h1>", html=True)
            self.assertContains(page, "сейчас нет в наличии")
            self.assertContains(page, "ann@example.com")
        self.assertEqual(Order.objects.get().placed_at, order.placed_at)
        self.assertEqual(order.robot_serial, "R2-D2")

    def test_the_order_s_page_says_what_became_of_it(self):
        produce("R2-D2")
        page = self.browser.get(self.post_form()["Location"])
        self.assertContains(page, "Робот в наличии — письмо уже в пути")
        drain()
        page = self.browser.get(page.wsgi_request.path)
        self.assertContains(page, "Робот в наличии — письмо отправлено")
        # Asked again within NOTICE_REPEAT_HOURS: the mail sent answers it.
        page = self.browser.get(self.post_form()["Location"])
        self.assertContains(page, "Письмо об этом роботе уже отправлено")
        # An address whose mail comes back is told so first, not that all is well.
        outbox.bounced(Order.objects.get(), Bounce.Kind.HARD, "5.1.1")
        page = self.browser.get(page.wsgi_request.path)
        self.assertContains(page, "<h1>Письма на этот адрес не доходят</h1>", html=True)

    def test_a_forged_or_foreign_order_link_gets_a_clear_page_and_changes_nothing(self):
        location = self.post_form()["Location"]
        secret = location.split("/")[2]
        forged = signing.dumps(Order.objects.get().pk + 1, salt="another.salt")
        for path in [f"/order/{secret[:-1]}x/", f"/order/{forged}/", "/order/1/"]:
            with self.subTest(path=path):
                page = self.browser.get(path)
                self.assertContains(page, "Ссылка не найдена", status_code=404)
        self.assertEqual(Client().post(location).status_code, 405)
        self.assertEqual(Order.objects.count(), 1)

    def test_each_catalog_row_says_what_asking_for_the_robot_does(self):
        produce("R2-D2")
        page = self.browser.get("/").content.decode()
        in_stock = page[page.index('id="robot-R2-D2"') :].split("</li>")[0]
        out = page[page.index('id="robot-R2-A1"') :].split("</li>")[0]
        self.assertIn("Получить письмо, как купить", in_stock)
        self.assertIn("Сообщить о поступлении", out)
        self.assertNotIn("Заказать", page)

    def test_a_wrong_form_comes_back_with_its_errors_and_nothing_is_written(self):
        response = self.post_form(email="not an address", serial="R9-Z9")

        self.assertContains(response, 'id="email-error"', status_code=400)
        self.assertContains(response, "Такого робота нет в каталоге.", status_code=400)
        self.assertContains(response, 'value="not an address"', status_code=400)
        self.assertContains(response, "например, ivan@example.com", status_code=400)
        self.assertFalse(Order.objects.exists())

    def test_a_form_that_cannot_be_read_gets_a_page_that_says_so(self):
        token = self.browser.get("/").context["csrf_token"]
        body = f"csrfmiddlewaretoken={token}&email=%E9@example.com&robot-serial=R2-D2"
        # As the server answers it: Django's test client would raise instead.
        self.browser.raise_request_exception = False
        response = self.browser.post(
            "/create_order/",
            body,
            content_type="application/x-www-form-urlencoded; charset=utf-16",
        )

        self.assertContains(response, "Запрос не удалось прочитать", status_code=400)
        self.assertEqual(response["Content-Type"], "text/html; charset=utf-8")
        self.assertFalse(Order.objects.exists())

    def test_a_browser_gets_a_page_for_an_address_that_leads_nowhere(self):
        response = self.browser.get("/no/such/page/")

        self.assertContains(response, "Страница не найдена", status_code=404)
        api = Client().get("/no/such/page/")
        self.assertEqual(api["Content-Type"], "application/problem+json")

    def test_a_browser_s_post_without_the_csrf_token_is_refused(self):
        response = self.browser.post(
            "/create_order/", {"email": "ann@example.com", "robot-serial": "R2-D2"}
        )

        # In the site's words, with the way back, and no developer advice.
        self.assertContains(response, "Форма устарела", status_code=403)
        self.assertContains(response, 'href="/#order"', status_code=403)
        self.assertNotContains(response, "DEBUG", status_code=403)
        self.assertFalse(Order.objects.exists())

    def test_api_clients_still_get_json_and_need_no_token(self):
        for accept in ["*/*", "application/json", None]:
            with self.subTest(accept=accept):
                headers = {"HTTP_ACCEPT": accept} if accept else {}
                client = Client(enforce_csrf_checks=True, **headers)
                response = client.post("/create_order/", {"robot-serial": "R2-D2"})

                self.assertEqual(response.status_code, 400)
                # English for programs, whatever language the pages speak.
                self.assertEqual(response.json()["errors"], {"email": ["This field is required."]})

    @override_settings(ORDER_LIMIT_PER_CLIENT=1)
    def test_too_many_orders_from_a_browser_get_a_page_that_says_when_to_retry(self):
        self.post_form()
        response = self.post_form(email="bob@example.com")

        self.assertContains(response, "Слишком много заказов", status_code=429)
        self.assertLessEqual(int(response["Retry-After"]), 60)
        self.assertEqual(Order.objects.count(), 1)
