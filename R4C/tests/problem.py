"""The API's one error shape, as its tests check it."""


class ProblemAssertions:
    """For API test cases; each says in assert_nothing_written what a rejection must not write."""

    def assert_nothing_written(self) -> None:
        raise NotImplementedError

    def assert_problem(self, response, status: int, *fields: str) -> dict:
        """The response is an RFC 9457 problem with `status`, naming these fields; returns it."""
        self.assertEqual(response.status_code, status)
        self.assertEqual(response["Content-Type"], "application/problem+json")
        problem = response.json()
        self.assertEqual(set(problem), {"type", "title", "status", "detail", "errors"})
        self.assertEqual(problem["status"], status)
        self.assertTrue(problem["detail"])
        for field in fields:
            self.assertIn(field, problem["errors"])
            self.assertTrue(all(isinstance(m, str) and m for m in problem["errors"][field]))
        self.assert_nothing_written()
        return problem
