import json
from datetime import UTC, datetime, timedelta

from django.db import transaction
from django.test import TestCase, override_settings
from django.utils import timezone

from R4C.tests.problem import ProblemAssertions
from robots.models import Model, Robot, Version


class AddRobotTests(ProblemAssertions, TestCase):
    def setUp(self):
        r2 = Model.objects.create(name="R2")
        Version.objects.create(model=r2, name="D2")
        Version.objects.create(model=r2, name="A1")
        Version.objects.create(model=Model.objects.create(name="13"), name="XS")

    def post(self, body, content_type="application/json"):
        if not isinstance(body, (str, bytes)):
            body = json.dumps(body)
        return self.client.post("/add_robot/", body, content_type=content_type)

    def assert_nothing_written(self):
        self.assertEqual(Robot.objects.count(), 0)

    def test_it_records_a_robot_and_answers_201_with_its_serial(self):
        response = self.post({"model": "R2", "version": "D2", "created": "2023-10-03 23:59:12"})

        self.assertEqual(response.status_code, 201)
        robot = Robot.objects.get()
        self.assertEqual(
            response.json(),
            {
                "id": robot.id,
                "serial": "R2-D2",
                "model": "R2",
                "version": "D2",
                "created": "2023-10-03 23:59:12",
            },
        )
        self.assertEqual(robot.serial, "R2-D2")
        self.assertEqual(robot.created, datetime(2023, 10, 3, 23, 59, 12, tzinfo=UTC))

    @override_settings(TIME_ZONE="Europe/Moscow")
    def test_it_reads_and_answers_times_in_the_factory_time_zone(self):
        response = self.post({"model": "13", "version": "XS", "created": "2023-10-03 10:00:00"})

        self.assertEqual(response.status_code, 201)
        self.assertEqual(response.json()["created"], "2023-10-03 10:00:00")
        self.assertEqual(Robot.objects.get().created, datetime(2023, 10, 3, 7, tzinfo=UTC))

    def test_it_takes_lower_case_names_as_the_catalog_names(self):
        response = self.post({"model": "r2", "version": "a1", "created": "2023-10-03 10:00:00"})

        self.assertEqual(response.status_code, 201)
        self.assertEqual(response.json()["serial"], "R2-A1")

    def test_it_accepts_a_robot_produced_just_now(self):
        now = timezone.localtime().strftime("%Y-%m-%d %H:%M:%S")
        response = self.post({"model": "R2", "version": "D2", "created": now})
        self.assertEqual(response.status_code, 201)

    def test_it_rejects_malformed_json(self):
        for body in ['{"model": "R2",', "nope", b"\xff\xfe{", "[" * 3000]:
            with self.subTest(body=body[:20]):
                self.assert_problem(self.post(body), 400)

    def test_it_rejects_a_body_that_is_not_an_object(self):
        for body in [[], ["R2", "D2"], "R2-D2", 42, None]:
            with self.subTest(body=body):
                self.assert_problem(self.post(body), 400)

    def test_it_rejects_missing_and_unknown_fields(self):
        problem = self.assert_problem(
            self.post({"model": "R2", "created": "2023-10-03 23:59:12", "color": "red"}),
            400,
            "version",
            "color",
        )
        self.assertEqual(problem["errors"]["version"], ["This field is required."])

    def test_it_rejects_unknown_fields_whose_names_cannot_be_encoded(self):
        body = '{"\\ud800": "x", "model": "R2", "version": "D2", "created": "2023-10-03 23:59:12"}'
        self.assert_problem(self.post(body), 400, "\ud800")

    def test_it_rejects_values_that_are_not_strings(self):
        for value in [22, 2.5, None, True, ["R2"], {"name": "R2"}]:
            with self.subTest(value=value):
                body = {"model": value, "version": "D2", "created": "2023-10-03 23:59:12"}
                self.assert_problem(self.post(body), 400, "model")

    def test_it_rejects_names_that_are_not_two_letters_or_digits(self):
        for model in ["", "R", "R2D", "R-", " R2", "Р2"]:
            with self.subTest(model=model):
                body = {"model": model, "version": "D2", "created": "2023-10-03 23:59:12"}
                self.assert_problem(self.post(body), 400, "model")

    def test_it_rejects_times_not_written_as_the_factory_writes_them(self):
        for created in [
            "2023-10-03T23:59:12",
            "2023-10-03 23:59",
            "2023-10-03",
            "03.10.2023 23:59:12",
            "2023-10-03 23:59:12 ",
            "2023-10-03 23:59:12+03:00",
            "",
        ]:
            with self.subTest(created=created):
                body = {"model": "R2", "version": "D2", "created": created}
                self.assert_problem(self.post(body), 400, "created")

    def test_it_rejects_moments_that_do_not_exist(self):
        for created in ["2023-13-01 00:00:00", "2023-02-30 12:00:00", "2023-10-03 24:00:00"]:
            with self.subTest(created=created):
                body = {"model": "R2", "version": "D2", "created": created}
                self.assert_problem(self.post(body), 400, "created")

    @override_settings(TIME_ZONE="America/New_York")
    def test_it_rejects_a_time_the_clocks_skipped_in_spring(self):
        body = {"model": "R2", "version": "D2", "created": "2023-03-12 02:30:00"}
        problem = self.assert_problem(self.post(body), 400, "created")
        self.assertEqual(
            problem["errors"]["created"],
            [
                (
                    "2023-03-12 02:30:00 does not exist in America/New_York: "
                    "the clocks skipped that hour."
                )
            ],
        )

    @override_settings(TIME_ZONE="America/New_York")
    def test_it_takes_the_first_of_an_autumn_hour_that_repeats(self):
        body = {"model": "R2", "version": "D2", "created": "2023-11-05 01:30:00"}
        response = self.post(body)

        self.assertEqual(response.status_code, 201)
        self.assertEqual(response.json()["created"], "2023-11-05 01:30:00")
        # 01:30 EDT, the first time the clocks showed it, not 01:30 EST an hour later.
        self.assertEqual(Robot.objects.get().created, datetime(2023, 11, 5, 5, 30, tzinfo=UTC))

    def test_it_rejects_extreme_years_without_crashing(self):
        for created in ["0001-01-01 00:00:00", "1999-12-31 23:59:59", "9999-12-31 23:59:59"]:
            with self.subTest(created=created):
                body = {"model": "R2", "version": "D2", "created": created}
                self.assert_problem(self.post(body), 400, "created")

    def test_it_rejects_a_robot_from_the_future(self):
        tomorrow = (timezone.localtime() + timedelta(days=1)).strftime("%Y-%m-%d %H:%M:%S")
        body = {"model": "R2", "version": "D2", "created": tomorrow}
        problem = self.assert_problem(self.post(body), 400, "created")
        self.assertIn("future", problem["errors"]["created"][0])

    def test_it_rejects_a_model_and_version_the_catalog_does_not_pair(self):
        for model, version in [("X9", "D2"), ("R2", "ZZ"), ("13", "D2")]:
            with self.subTest(serial=f"{model}-{version}"):
                body = {"model": model, "version": version, "created": "2023-10-03 23:59:12"}
                problem = self.assert_problem(self.post(body), 400, "version")
                self.assertIn(f"{version} of model {model}", problem["errors"]["version"][0])

    def test_it_allows_only_post(self):
        for method in ["get", "put", "patch", "delete"]:
            with self.subTest(method=method):
                response = getattr(self.client, method)("/add_robot/")
                self.assert_problem(response, 405)
                self.assertEqual(response["Allow"], "POST")

    def test_it_tells_a_client_that_did_not_declare_json_what_to_send(self):
        body = {"model": "R2", "version": "D2", "created": "2023-10-03 23:59:12"}
        for content_type in ["application/x-www-form-urlencoded", "text/plain"]:
            with self.subTest(content_type=content_type):
                problem = self.assert_problem(self.post(body, content_type), 415)
                self.assertIn("Content-Type: application/json", problem["detail"])
        response = self.client.post("/add_robot/", body)  # multipart form, as curl -F sends
        self.assert_problem(response, 415)

    def test_it_refuses_a_body_over_four_kibibytes(self):
        body = {"model": "R2", "version": "D2", "created": "2023-10-03 23:59:12"}
        body["padding"] = "x" * 5000
        self.assert_problem(self.post(body), 413)


class StaleCatalogMemoryTests(TestCase):
    def test_a_version_made_anew_elsewhere_a_moment_ago_takes_robots_at_once(self):
        # Another process deletes R2-D2 and makes it anew: this one still remembers the old
        # row for up to a second (no signal reaches it), also inside a transaction.
        r2 = Model.objects.create(name="R2")
        old = Version.objects.create(model=r2, name="D2")
        self.assertEqual(Version.by_serial("R2-D2"), old)
        Version.objects.filter(pk=old.pk)._raw_delete(Version.objects.db)  # no signals
        [new] = Version.objects.bulk_create([Version(model=r2, name="D2")])
        with transaction.atomic():  # as an idempotent robot's answer is kept with it
            robot = Robot.objects.produce("R2", "D2", timezone.now())
            self.assertEqual(Robot.objects.count(), 1)
        self.assertEqual((robot.version_id, robot.serial), (new.pk, "R2-D2"))
