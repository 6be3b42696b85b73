"""What an attacker on the network meets: locked logins, strict headers everywhere."""

from ipaddress import ip_network

from axes.models import AccessAttempt
from django.contrib.auth.models import User
from django.test import Client, TestCase, override_settings

from R4C.tests.world import catalog


class AdminLoginTests(TestCase):
    def setUp(self):
        User.objects.create_superuser("director", "d@r4c.test", "the-right-password")

    def log_in(self, password, client=None):
        return (client or self.client).post(
            "/admin/login/?next=/admin/", {"username": "director", "password": password}
        )

    def test_repeated_wrong_passwords_lock_the_address_out(self):
        for _ in range(4):
            self.assertEqual(self.log_in("guess").status_code, 200)  # the form again
        self.assertEqual(self.log_in("guess").status_code, 429)  # the fifth locks it

        locked = self.log_in("the-right-password")  # even the right one, for a while

        self.assertEqual(locked.status_code, 429)
        self.assertNotIn("_auth_user_id", self.client.session)
        # Another address still gets in.
        other = Client(REMOTE_ADDR="10.1.2.3")
        self.assertEqual(self.log_in("the-right-password", other).status_code, 302)

    def test_a_good_login_of_another_name_does_not_reset_the_count_of_a_guessed_one(self):
        User.objects.create_user("manager", "m@r4c.test", "manager-password", is_staff=True)
        statuses = []
        for n in range(100):
            statuses.append(self.log_in("guess").status_code)
            if n % 4 == 0:
                manager = {"username": "manager", "password": "manager-password"}
                self.client.post("/admin/login/?next=/admin/", manager)
                self.client.logout()
        self.assertEqual(statuses[:4], [200] * 4)
        self.assertEqual(set(statuses[4:]), {429})

    def test_a_good_login_forgets_its_own_failures(self):
        for _ in range(3):
            self.log_in("guess")
        self.assertEqual(self.log_in("the-right-password").status_code, 302)
        self.client.logout()
        for _ in range(4):  # counted from zero again: the fifth would lock
            self.assertEqual(self.log_in("guess").status_code, 200)

    def test_addresses_of_one_ipv6_64_are_one_client(self):
        for n in range(4):
            self.assertEqual(
                self.log_in("guess", Client(REMOTE_ADDR=f"2001:db8:1:2::{n + 1}")).status_code, 200
            )
        self.assertEqual(
            self.log_in("guess", Client(REMOTE_ADDR="2001:db8:1:2:ffff:1:2:3")).status_code, 429
        )
        other = Client(REMOTE_ADDR="2001:db8:1:3::1")  # the next /64: another client
        self.assertEqual(self.log_in("the-right-password", other).status_code, 302)

    @override_settings(TRUSTED_PROXIES=[ip_network("127.0.0.1/32")])
    def test_a_malformed_or_oversized_forwarded_header_is_ignored_not_a_500(self):
        for header in ["not-an-ip", "1.2.3.4" + ", 5.6.7.8" * 60, "1.2.3.4, ²"]:
            with self.subTest(header=header[:20]):
                response = self.client.post(
                    "/admin/login/",
                    {"username": "director", "password": "guess"},
                    headers={"X-Forwarded-For": header},
                )
                self.assertEqual(response.status_code, 200)

    def test_over_nginx_s_socket_the_client_is_the_address_nginx_saw_whatever_it_wrote(self):
        # make serve: the connection is nginx's local socket (no address); nginx sets
        # X-Real-IP to the address it saw and appends it to whatever X-Forwarded-For held.
        for n, written in enumerate(["unknown", "203.0.113.5:51234", "[2001:db8::1]:443"]):
            with self.subTest(written=written):
                seen = f"198.51.100.{n + 1}"
                nginx = Client(
                    REMOTE_ADDR="", HTTP_X_REAL_IP=seen, HTTP_X_FORWARDED_FOR=f"{written}, {seen}"
                )
                statuses = [self.log_in("guess", nginx).status_code for _ in range(5)]
                self.assertEqual(statuses, [200] * 4 + [429])
                self.assertEqual(self.log_in("the-right-password", nginx).status_code, 429)
                self.assertEqual(AccessAttempt.objects.filter(ip_address=seen).count(), 1)
        self.assertFalse(AccessAttempt.objects.filter(ip_address__isnull=True).exists())
        self.assertFalse(AccessAttempt.objects.filter(ip_address="").exists())

    @override_settings(TRUSTED_PROXIES=[ip_network("127.0.0.1/32")])
    def test_behind_the_proxy_each_client_counts_for_itself(self):
        for n in range(5):
            self.client.post(
                "/admin/login/",
                {"username": "director", "password": "guess"},
                headers={"X-Forwarded-For": "203.0.113.7"},
            )
        response = self.client.post(
            "/admin/login/?next=/admin/",
            {"username": "director", "password": "the-right-password"},
            headers={"X-Forwarded-For": "198.51.100.9"},
        )
        self.assertEqual(response.status_code, 302)


class HeaderTests(TestCase):
    def test_every_response_carries_a_strict_policy_and_the_security_headers(self):
        catalog()
        User.objects.create_superuser("director", "d@r4c.test", "pw")
        admin = Client()
        admin.force_login(User.objects.get())
        for client, path in [
            (self.client, "/healthz"),
            (self.client, "/download/"),
            (self.client, "/no_such_thing/"),
            (self.client, "/admin/login/"),
            (admin, "/admin/robots/model/add/"),
        ]:
            with self.subTest(path=path):
                response = client.get(path)
                self.assert_strict(response)
                self.assertEqual(response["X-Frame-Options"], "DENY")
                self.assertEqual(response["Referrer-Policy"], "same-origin")

    def test_refusals_before_any_view_carry_the_policy_too(self):
        with override_settings(SECURE_SSL_REDIRECT=True):
            redirect = Client().get("/download/")  # plain HTTP: to https://
        self.assertEqual(redirect.status_code, 301)
        wrong_host = Client(HTTP_HOST="evil.example").get("/healthz")
        self.assertEqual(wrong_host.status_code, 400)
        for response in (redirect, wrong_host):
            self.assert_strict(response)

    def assert_strict(self, response) -> None:
        policy = response["Content-Security-Policy"]
        self.assertIn("default-src 'none'", policy)
        self.assertIn("script-src 'self'", policy)
        self.assertIn("frame-ancestors 'none'", policy)
        self.assertNotIn("unsafe", policy)
        self.assertEqual(response["X-Content-Type-Options"], "nosniff")
