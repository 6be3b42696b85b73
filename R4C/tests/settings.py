"""The test suite's settings: R4C's own, read from an environment fixed here, in code.

So `pytest path/to/test_x.py` runs alone, with no variable exported first, and a
developer's `.env` cannot change what a test sees (as healthchecks' test runner sets its
own). Processes a test starts inherit this environment.
"""

import os
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / ".env.example"
# Every variable R4C reads is empty unless the real environment sets it, so that `.env`
# fills none of them; DATABASE_URL from the environment picks PostgreSQL (make check).
for line in EXAMPLE.read_text().splitlines():
    if "=" in line and line[0].isupper():
        os.environ.setdefault(line.split("=", 1)[0], "")
# The test client speaks plain HTTP, which production settings redirect; keys and limits
# are on only in the tests of keys and limits (override_settings).
os.environ.update(
    SECRET_KEY="test-only-not-secret",
    HTTPS="false",
    API_KEYS_REQUIRED="false",
    ORDER_LIMIT_PER_CLIENT="0",
    ORDER_LIMIT_PER_EMAIL="0",
    SITE_URL="https://r4c.example.com",
)

from R4C.settings import *

# PBKDF2 costs the admin tests half a second each and proves nothing here.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# In-process tests render the admin without collectstatic; the end-to-end test runs the
# service as `make serve` does, hashed static files included.
STORAGES = STORAGES | {
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
}
