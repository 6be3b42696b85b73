"""Machines need a key; the report also opens to signed-in managers."""

import io
import json
import time

from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import TestCase, override_settings
from django.utils import timezone

from R4C.tests.problem import ProblemAssertions
from R4C.tests.world import catalog
from robots.models import ApiKey, Robot

ROBOT = json.dumps({"model": "R2", "version": "D2", "created": "2023-10-03 23:59:12"})


@override_settings(API_KEYS_REQUIRED=True)
class ApiKeyTests(ProblemAssertions, TestCase):
    def setUp(self):
        catalog()
        self.key, self.secret = ApiKey.issue("line 3")

    def assert_nothing_written(self):
        self.assertEqual(Robot.objects.count(), 0)

    def post(self, authorization=None):
        headers = {"Authorization": authorization} if authorization else {}
        return self.client.post(
            "/add_robot/", ROBOT, content_type="application/json", headers=headers
        )

    def test_a_valid_key_lets_a_robot_in_and_is_marked_used(self):
        response = self.post(f"Bearer {self.secret}")
        self.assertEqual(response.status_code, 201)
        self.key.refresh_from_db()
        self.assertIsNotNone(self.key.last_used_at)

    def test_missing_or_wrong_keys_get_401_with_the_bearer_challenge(self):
        revoked, revoked_secret = ApiKey.issue("old line")
        ApiKey.objects.filter(pk=revoked.pk).update(revoked_at=revoked.created_at)
        wrong = self.secret[:-3] + ("aaa" if not self.secret.endswith("aaa") else "bbb")
        for authorization in [
            None,
            "Bearer",
            "Bearer ",
            f"Basic {self.secret}",
            f"Bearer {wrong}",
            f"Bearer r4c_{self.key.pk}_",
            f"Bearer r4c_x_{self.secret}",
            "Bearer r4c_99999999999999999999999_abc",
            "Bearer r4c_\u00b2_x",  # a digit, but not 0-9 (latin-1's superscript two)
            "Bearer r4c_\u0663_x",  # Arabic-Indic three
            f"Bearer {revoked_secret}",
        ]:
            with self.subTest(authorization=authorization):
                response = self.post(authorization)
                self.assert_problem(response, 401)
                self.assertEqual(response["WWW-Authenticate"], 'Bearer realm="R4C"')

    def test_the_key_is_stored_only_as_a_hash(self):
        secret_part = self.secret.split("_", 2)[2]
        stored = json.dumps(list(ApiKey.objects.values()), default=str)
        self.assertNotIn(secret_part, stored)

    def test_the_report_takes_a_key_or_a_signed_in_manager(self):
        response = self.client.get(
            "/download/", headers={"Authorization": f"Bearer {self.secret}"}
        )
        self.assertEqual(response.status_code, 200)

        response = self.client.get("/download/", headers={"Accept": "application/json"})
        self.assert_problem(response, 401)

        # A signed-out browser goes to the admin's login, and back.
        response = self.client.get("/download/", headers={"Accept": "text/html,*/*;q=0.8"})
        self.assertRedirects(
            response, "/admin/login/?next=%2Fdownload%2F", fetch_redirect_response=False
        )

        self.client.force_login(User.objects.create_user("ann", is_staff=False))
        self.assertEqual(self.client.get("/download/").status_code, 401)
        self.client.force_login(User.objects.create_user("boss", is_staff=True))
        self.assertEqual(self.client.get("/download/").status_code, 200)

    def test_create_api_key_prints_the_key_once_alone_on_a_line(self):
        out, err = io.StringIO(), io.StringIO()
        call_command("create_api_key", "line 4", stdout=out, stderr=err)

        [key] = out.getvalue().splitlines()
        self.assertEqual(ApiKey.authenticate(key).name, "line 4")
        self.assertNotIn(key, err.getvalue())

    def test_the_admin_shows_a_new_key_once_and_revokes_keys(self):
        self.client.force_login(User.objects.create_superuser("boss", "b@r4c.test", "pw"))
        response = self.client.post("/admin/robots/apikey/add/", {"name": "line 5"}, follow=True)
        [message] = [
            str(m) for m in response.context["messages"] if "скопируйте его сейчас" in str(m)
        ]
        key = message.split(": ", 1)[1].split(" ", 1)[0]
        self.assertEqual(self.post(f"Bearer {key}").status_code, 201)

        line5 = ApiKey.objects.get(name="line 5")
        self.client.post(
            "/admin/robots/apikey/", {"action": "revoke", "_selected_action": [line5.pk]}
        )
        self.assertEqual(self.post(f"Bearer {key}").status_code, 401)
        self.assertNotContains(self.client.get(f"/admin/robots/apikey/{line5.pk}/change/"), key)

    def test_a_checked_key_costs_no_query_and_a_revoked_one_stops_within_two_seconds(self):
        self.assertIsNotNone(ApiKey.authenticate(self.secret))
        with self.assertNumQueries(0):
            self.assertEqual(ApiKey.authenticate(self.secret).name, "line 3")
        # Revoked as another process would do it (the admin of another server): this
        # process learns it from the database.
        ApiKey.objects.filter(pk=self.key.pk).update(revoked_at=timezone.now())
        revoked = time.monotonic()
        while ApiKey.authenticate(self.secret) is not None:
            self.assertLess(time.monotonic() - revoked, 2)
            time.sleep(0.05)
        self.assert_problem(self.post(f"Bearer {self.secret}"), 401)
        # A wrong secret for a key checked a moment ago is still refused.
        _, other = ApiKey.issue("line 6")
        self.assertIsNotNone(ApiKey.authenticate(other))
        self.assertIsNone(ApiKey.authenticate(other[:-1] + ("a" if other[-1] != "a" else "b")))


class DevelopmentTests(TestCase):
    def test_in_development_the_api_is_open(self):
        catalog()
        response = self.client.post("/add_robot/", ROBOT, content_type="application/json")
        self.assertEqual(response.status_code, 201)
