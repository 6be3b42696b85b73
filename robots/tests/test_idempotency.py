"""A production line that sends a robot again after a timeout does not make a second one."""

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from django.db import connection
from django.test import Client, TestCase, TransactionTestCase, override_settings
from django.utils import timezone

from R4C.tests.problem import ProblemAssertions
from R4C.tests.world import catalog, database_down
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
        # The first answer's very bytes: a client may compare or sign bodies.
        self.assertEqual(again.content, first.content)
        self.assertEqual(again["Content-Type"], first["Content-Type"])
        self.assertEqual(again["Idempotent-Replayed"], "true")
        self.assertNotIn("Idempotent-Replayed", first)
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
    def test_fifty_copies_of_one_request_25_at_a_time_get_one_robot_and_one_answer(self):
        catalog()

        def send(_):
            try:
                return post(Client())
            finally:
                connection.close()

        with ThreadPoolExecutor(max_workers=25) as pool:
            responses = list(pool.map(send, range(50)))

        self.assertEqual([r.status_code for r in responses], [201] * 50)
        self.assertEqual({r.content for r in responses}, {responses[0].content})
        self.assertEqual(sum(r.has_header("Idempotent-Replayed") for r in responses), 49)
        self.assertEqual(Robot.objects.count(), 1)

    def test_an_answer_to_a_fault_is_not_kept_so_the_retry_makes_the_robot(self):
        catalog()
        with database_down():
            self.assertEqual(post(Client()).status_code, 503)

        retry = post(Client())
        self.assertEqual(retry.status_code, 201)
        self.assertFalse(retry.has_header("Idempotent-Replayed"))
        self.assertEqual(Robot.objects.count(), 1)
