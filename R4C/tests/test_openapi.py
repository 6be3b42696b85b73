"""The API's published contract (GET /openapi.json) and the examples in docs/api.md hold."""

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from django.test import LiveServerTestCase, TestCase, override_settings
from django.urls import URLResolver, get_resolver

from R4C.tests.service import schemathesis
from R4C.tests.world import catalog, environment
from robots.models import ApiKey, Robot

ROOT = Path(__file__).resolve().parents[2]
# Routes for people, not programs: the catalog, an order's page, the stop link, the icon (and
# the admin).
PAGES = {"", "order/<str:secret>/", "stop/<str:secret>/", "favicon.ico"}


def routes(patterns=None, prefix: str = "") -> set[str]:
    """Every URL route of the API, as `/path`; `/add_robot` counts as `/add_robot/`."""
    found = set()
    for entry in get_resolver().url_patterns if patterns is None else patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            found |= routes(entry.url_patterns, route)
        elif not (route in PAGES or route.startswith("admin/")):
            found.add("/" + route)
    return {path for path in found if path + "/" not in found}


class ContractTests(TestCase):
    def contract(self) -> dict:
        response = self.client.get("/openapi.json")
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response["Content-Type"], "application/json")
        return response.json()

    def test_it_names_every_route_of_the_api_and_no_other(self):
        self.assertEqual(set(self.contract()["paths"]), routes())

    def test_it_is_openapi_3_1_with_the_problem_shape_and_the_statuses_of_each_operation(self):
        document = self.contract()
        self.assertEqual(document["openapi"], "3.1.0")
        add_robot = document["paths"]["/add_robot/"]["post"]
        self.assertEqual(
            set(add_robot["responses"]),
            {"201", "400", "401", "405", "411", "413", "415", "422", "503"},
        )
        problem = add_robot["responses"]["400"]["content"]["application/problem+json"]
        self.assertEqual(problem["schema"], {"$ref": "#/components/schemas/Problem"})
        order = document["paths"]["/create_order/"]["post"]
        self.assertIn("RateLimit", order["responses"]["429"]["headers"])
        self.assertEqual(add_robot["parameters"][0]["name"], "Idempotency-Key")

    def test_it_asks_for_a_key_where_the_server_does(self):
        operations = [("/add_robot/", "post"), ("/download/", "get"), ("/metrics", "get")]
        for required, security in ((False, []), (True, [{"bearer": []}])):
            with self.subTest(required=required), override_settings(API_KEYS_REQUIRED=required):
                paths = self.contract()["paths"]
                for path, method in operations:
                    self.assertEqual(paths[path][method]["security"], security)
                self.assertEqual(paths["/create_order/"]["post"]["security"], [])


@pytest.mark.slow
class SchemathesisTests(LiveServerTestCase):
    """In development: no keys, no limits. The production form is run in test_service.py."""

    def test_the_server_answers_as_its_contract_says(self):
        catalog()
        run = schemathesis(self.live_server_url, "--exclude-checks", "ignored_auth")
        summary = run.stdout[run.stdout.find("SUMMARY") :]
        self.assertEqual(run.returncode, 0, run.stdout[-6000:] + run.stderr)
        self.assertRegex(summary, r"\d+ generated, \d+ passed")


def blocks(language: str) -> list[tuple[str, str]]:
    """docs/api.md's ```language blocks, each with the ``` block right after it ("" if none)."""
    text = (ROOT / "docs" / "api.md").read_text()
    found = re.finditer(r"```(\w*)\n(.*?)```\s*(?:```\w*\n(.*?)```)?", text, re.DOTALL)
    return [
        (code, after or "")
        for lang, code, after in (m.groups() for m in found)
        if lang == language
    ]


class ExampleTests(LiveServerTestCase):
    """Every curl line and Python example of docs/api.md, run against a live server."""

    def setUp(self):
        catalog()
        self.folder = tempfile.TemporaryDirectory()
        self.addCleanup(self.folder.cleanup)

    def run_example(self, program: list[str], code: str, **env: str) -> str:
        """Run `code` in a folder of its own, as someone who copied it would."""
        code = code.replace("http://127.0.0.1:8000", self.live_server_url)
        code = code.replace("https://r4c.example.com", self.live_server_url)
        run = subprocess.run(
            [*program, code],
            check=False,
            cwd=tempfile.mkdtemp(dir=self.folder.name),
            env=environment(**env),
            capture_output=True,
            text=True,
            timeout=60,
        )
        self.assertEqual(run.returncode, 0, f"{code}\n{run.stdout}\n{run.stderr}")
        return run.stdout

    def test_every_curl_line_works_and_answers_as_documented(self):
        # Each curl fails on an answer >= 400: an example shows what works.
        curl = 'curl() { command curl --silent --show-error --fail-with-body "$@"; }\n'
        examples = [(code, after) for code, after in blocks("sh") if "curl " in code]
        self.assertGreaterEqual(len(examples), 6)
        _, key = ApiKey.issue("docs")
        for code, documented in examples:
            with self.subTest(code=code.strip()):
                keyed = "$KEY" in code
                with override_settings(API_KEYS_REQUIRED=keyed):
                    output = self.run_example(["bash", "-ec"], curl + code, KEY=key)
                if documented.startswith("HTTP/"):  # the answer shown: its status and keys
                    status_line, body = documented.split("\n", 1)
                    self.assertEqual(output.split(" ")[1], status_line.split(" ")[1])
                    got = json.loads(output.split("\n\n", 1)[1])
                    self.assertEqual(set(got), set(json.loads(body)))
        self.assertTrue(Robot.objects.exists())
        self.assertTrue(list(Path(self.folder.name).glob("*/*.xlsx")))

    def test_every_python_example_runs(self):
        examples = blocks("python")
        self.assertTrue(examples)
        for code, _ in examples:
            with self.subTest(code=code.splitlines()[0]):
                output = self.run_example([sys.executable, "-c"], code, PATH=os.environ["PATH"])
                self.assertIn("R2-D2", output)
        self.assertEqual(Robot.objects.count(), len(examples))
