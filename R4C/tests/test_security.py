"""What an attacker on the network meets: locked logins, strict headers everywhere."""

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

    @override_settings(TRUSTED_PROXIES=1)
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
                policy = response["Content-Security-Policy"]
                self.assertIn("default-src 'none'", policy)
                self.assertIn("script-src 'self'", policy)
                self.assertIn("frame-ancestors 'none'", policy)
                self.assertNotIn("unsafe", policy)
                self.assertEqual(response["X-Content-Type-Options"], "nosniff")
                self.assertEqual(response["X-Frame-Options"], "DENY")
                self.assertEqual(response["Referrer-Policy"], "same-origin")
