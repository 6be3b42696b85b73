"""A production line that sends a robot again after a timeout does not make a second one."""

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from django.db import connection
from django.test import Client, TestCase, TransactionTestCase, override_settings
from django.utils import timezone

from R4C.tests.problem import ProblemAssertions
from R4C.tests.world import catalog
from robots.models import ApiKey, IdempotentAnswer, Robot

ROBOT = {"model": "R2", "version": "D2", "created": "2023-10-03 23:59:12"}


def post(client, body=ROBOT, key="line-3-robot-0001", **headers):
    if key is not None:
        headers["Idempotency-Key"] = key
    return client.post(
        "/add_robot/", json.dumps(body), content_type="application/json", headers=headers
    )


class IdempotencyTests(ProblemAssertions, TestCase):
    def setUp(self):
        catalog()

    def assert_nothing_written(self):
        self.assertEqual(Robot.objects.count(), self.robots)

    def test_the_same_key_and_body_get_the_first_answer_again_and_no_new_robot(self):
        first = post(self.client)
        again = post(self.client)

        self.assertEqual((first.status_code, again.status_code), (201, 201))
        self.assertEqual(again.json(), first.json())
        self.assertEqual(again["Idempotent-Replayed"], "true")
        self.assertEqual(Robot.objects.count(), 1)

    def test_the_same_key_with_another_body_is_a_422(self):
        post(self.client)
        self.robots = 1
        other = ROBOT | {"created": "2023-10-03 23:59:13"}
        self.assert_problem(post(self.client, other), 422)

    def test_other_keys_or_no_key_make_new_robots(self):
        post(self.client, key="a")
        post(self.client, key="b")
        post(self.client, key=None)
        post(self.client, key=None)
        self.assertEqual(Robot.objects.count(), 4)

    def test_a_key_is_kept_for_a_day(self):
        post(self.client)
        IdempotentAnswer.objects.update(created_at=timezone.now() - timedelta(days=1, seconds=1))
        self.assertEqual(post(self.client).status_code, 201)
        self.assertEqual(Robot.objects.count(), 2)
        self.assertEqual(IdempotentAnswer.objects.count(), 1)

    def test_it_rejects_a_malformed_key(self):
        self.robots = 0
        for key in ["x" * 256, "ключ", "a\tb"]:
            with self.subTest(key=key[:10]):
                self.assert_problem(post(self.client, key=key), 400)
        # An empty header is no key at all for some clients; here it is a malformed one.
        self.assert_problem(post(self.client, key=""), 400)

    def test_an_unknown_pair_is_not_remembered(self):
        self.robots = 0
        self.assert_problem(post(self.client, ROBOT | {"version": "ZZ"}), 400, "version")
        self.assertFalse(IdempotentAnswer.objects.exists())

    @override_settings(API_KEYS_REQUIRED=True)
    def test_each_api_key_has_its_own_idempotency_keys(self):
        _, line3 = ApiKey.issue("line 3")
        _, line4 = ApiKey.issue("line 4")
        post(self.client, Authorization=f"Bearer {line3}")
        post(self.client, Authorization=f"Bearer {line4}")
        self.assertEqual(Robot.objects.count(), 2)


class ConcurrentRetryTests(TransactionTestCase):
    def test_eight_copies_of_one_request_at_once_make_one_robot(self):
        catalog()

        def send(_):
            try:
                return post(Client())
            finally:
                connection.close()

        with ThreadPoolExecutor(max_workers=8) as pool:
            responses = list(pool.map(send, range(8)))

        self.assertEqual([r.status_code for r in responses], [201] * 8)
        self.assertEqual(len({r.json()["id"] for r in responses}), 1)
        self.assertEqual(Robot.objects.count(), 1)
