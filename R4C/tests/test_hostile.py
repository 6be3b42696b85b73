"""Whatever an API client sends, the answer is 2xx or a 4xx problem, never a 5xx or HTML."""

import json
import os
import socket
import tempfile
import time

from django.test import LiveServerTestCase, TestCase, override_settings
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.django import TestCase as HypothesisTestCase

from customers.models import Customer
from orders.models import Order
from R4C.tests.world import catalog
from robots.models import Robot

PATHS = ["/add_robot/", "/create_order/", "/download/", "/add_robot", "/create_order"]
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
CONTENT_TYPES = [
    "application/json",
    "application/json; charset=utf-16",
    "application/x-www-form-urlencoded",
    "application/x-www-form-urlencoded; charset=latin-1",
    "application/x-www-form-urlencoded; charset=utf-16",
    "multipart/form-data; boundary=b",
    "multipart/form-data; boundary=b; charset=base64",
    "multipart/form-data; boundary=b; charset=hex",
    "multipart/form-data; boundary=b; charset=idna",
    "multipart/form-data",
    "text/plain",
    "",
]
VALID_ROBOT = b'{"model": "R2", "version": "D2", "created": "2023-10-03 23:59:12"}'
VALID_ORDER = b"email=ann%40example.com&robot-serial=R2-D2"


def multipart(fields: dict[str, bytes], charset_param: str = "") -> tuple[bytes, str]:
    body = b"".join(
        b"--b\r\nContent-Disposition: form-data; name=\"" + name.encode() + b"\"\r\n\r\n"
        + value + b"\r\n"
        for name, value in fields.items()
    ) + b"--b--\r\n"  # fmt: skip
    return body, f"multipart/form-data; boundary=b{charset_param}"


bodies = st.one_of(
    st.binary(max_size=300),
    st.just(VALID_ROBOT),
    st.just(VALID_ORDER),
    st.builds(lambda text: text.encode("utf-8", "surrogatepass"), st.text(max_size=200)),
    st.builds(
        lambda obj: json.dumps(obj).encode(),
        st.recursive(
            st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=20),
            lambda inner: (
                st.lists(inner, max_size=4)
                | st.dictionaries(st.sampled_from(["model", "version", "created", "x"]), inner)
            ),
            max_leaves=10,
        ),
    ),
)


class AnyRequestTests(HypothesisTestCase):
    def setUp(self):
        catalog()

    def counts(self):
        return Robot.objects.count(), Order.objects.count(), Customer.objects.count()

    @given(
        path=st.sampled_from(PATHS),
        method=st.sampled_from(METHODS),
        content_type=st.sampled_from(CONTENT_TYPES) | st.text(max_size=40),
        body=bodies,
        key=st.none() | st.text(max_size=300),
    )
    def test_the_answer_is_2xx_or_a_4xx_problem(self, path, method, content_type, body, key):
        before = self.counts()
        headers = {"Accept": "application/json"}
        if key is not None:
            headers["Idempotency-Key"] = key
        try:
            response = self.client.generic(
                method, path, body, content_type=content_type, headers=headers
            )
        except ValueError as error:  # the test client itself refuses some header values
            if "header" in str(error).lower() or "newline" in str(error).lower():
                return
            raise

        self.assertLess(response.status_code, 500)
        if response.status_code >= 400:
            self.assertEqual(response["Content-Type"], "application/problem+json")
            self.assertEqual(self.counts(), before)


class NamedHostileInputTests(TestCase):
    def setUp(self):
        catalog()

    def post(self, path, body, content_type, **headers):
        # generic(): post() would re-encode the bytes in the charset named.
        return self.client.generic("POST", path, body, content_type=content_type, headers=headers)

    def assert_refused(self, response, status=400):
        self.assertEqual(response.status_code, status, response.content[:300])
        self.assertEqual(response["Content-Type"], "application/problem+json")
        self.assertEqual((Robot.objects.count(), Order.objects.count()), (0, 0))

    def test_json_that_is_not_quite_json(self):
        for body in [
            b'{"model": "R2", "model": "X9", "version": "D2", "created": "2023-10-03 23:59:12"}',
            b'{"model": "R2", "version": "D2", "created": NaN}',
            b'{"model": "R2", "version": "D2", "created": Infinity}',
            b'{"model": "R\\u00002", "version": "D2", "created": "2023-10-03 23:59:12"}',
            b"\xff\xfe" + VALID_ROBOT,
            VALID_ROBOT.replace(b"R2", b"\xc3\x28"),
            b"[" * 4000,
        ]:
            with self.subTest(body=body[:40]):
                self.assert_refused(self.post("/add_robot/", body, "application/json"))

    def test_a_byte_order_mark_is_refused_clearly(self):
        response = self.post("/add_robot/", b"\xef\xbb\xbf" + VALID_ROBOT, "application/json")
        self.assert_refused(response)
        self.assertIn("byte order mark", response.json()["detail"])

    def test_bodies_too_large(self):
        self.assert_refused(
            self.post("/add_robot/", b" " * 2_000_000 + VALID_ROBOT, "application/json"), 413
        )
        body = VALID_ORDER + b"&pad=" + b"x" * 3_000_000
        self.assert_refused(
            self.post("/create_order/", body, "application/x-www-form-urlencoded"), 413
        )

    def test_a_chunked_body_without_a_length_is_411_not_an_empty_body(self):
        response = self.client.post(
            "/add_robot/",
            VALID_ROBOT,
            content_type="application/json",
            HTTP_TRANSFER_ENCODING="chunked",
            CONTENT_LENGTH="",
        )
        self.assert_refused(response, 411)

    def test_forms_in_strange_charsets(self):
        for content_type in [
            "application/x-www-form-urlencoded; charset=latin-1",
            "application/x-www-form-urlencoded; charset=utf-16",
            "application/x-www-form-urlencoded; charset=no-such-codec",
        ]:
            with self.subTest(content_type=content_type):
                response = self.post(
                    "/create_order/", b"email=%FF&robot-serial=R2-D2", content_type
                )
                self.assert_refused(response)
        for charset in ["base64", "hex", "idna", "utf-16", "no-such-codec"]:
            with self.subTest(charset=charset):
                body, content_type = multipart(
                    {"email": b"ann@example.com", "robot-serial": b"R2-\xff2"},
                    f"; charset={charset}",
                )
                self.assert_refused(self.post("/create_order/", body, content_type))

    def test_names_that_look_like_formulas_or_sql(self):
        for model, version in [("=1", "D2"), ("+1", "D2"), ("R2", "@2"), ("R2", "'-")]:
            with self.subTest(model=model, version=version):
                body = json.dumps(
                    {"model": model, "version": version, "created": "2023-10-03 23:59:12"}
                )
                self.assert_refused(self.post("/add_robot/", body, "application/json"))
        for serial in ["R2'--", "R2-D2'; DROP TABLE robots_robot; --", "=cmd|'/c calc'!A1"]:
            with self.subTest(serial=serial):
                body = f"email=ann%40example.com&robot-serial={serial}"
                response = self.post("/create_order/", body, "application/x-www-form-urlencoded")
                self.assert_refused(response)
        self.assertEqual(Robot.objects.count(), 0)


class BodyBoundsOverHttpTests(LiveServerTestCase):
    """A body over its endpoint's limit is refused from its Content-Length, unread."""

    def send_head(self, path: str, length: int, content_type: str) -> bytes:
        host, port = self.live_server_url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(
                f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {length}\r\n\r\n".encode()
                + b'--b\r\nContent-Disposition: form-data; name="f"; filename="big.bin"\r\n\r\n'
                + b"\0" * 65536
            )
            return sock.recv(200)

    def test_a_500_megabyte_part_is_refused_at_once_and_nothing_is_spooled(self):
        catalog()
        with tempfile.TemporaryDirectory() as spool, override_settings(FILE_UPLOAD_TEMP_DIR=spool):
            started = time.monotonic()
            answer = self.send_head(
                "/create_order/", 500 * 2**20, "multipart/form-data; boundary=b"
            )
            self.assertLess(time.monotonic() - started, 1)
            self.assertTrue(answer.startswith(b"HTTP/1.1 413"), answer)
            self.assertEqual(os.listdir(spool), [])
        # The admin takes Django's own limit, 2.5 MB, and refuses the same way.
        answer = self.send_head("/admin/login/", 3 * 2**20, "multipart/form-data; boundary=b")
        self.assertTrue(answer.startswith(b"HTTP/1.1 413"), answer)
        self.assertFalse(Order.objects.exists())
