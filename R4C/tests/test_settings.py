import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(*args, **env):
    """Run `python ARGS` in the project, in a fresh process with these variables."""
    clean = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "DEBUG"}}
    return subprocess.run(
        [sys.executable, *args],
        check=False,
        cwd=ROOT,
        env=clean | {"SECRET_KEY": "k"} | env,
        capture_output=True,
        text=True,
    )


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"DEBUG": "maybe"}, "DEBUG"),
        ({"EMAIL_PORT": "abc"}, "EMAIL_PORT"),
        ({"EMAIL_PORT": "70000"}, "EMAIL_PORT"),
        ({"EMAIL_TIMEOUT": "-1"}, "EMAIL_TIMEOUT"),
        ({"EMAIL_USE_TLS": "true", "EMAIL_USE_SSL": "true"}, "EMAIL_USE_SSL"),
        ({"TIME_ZONE": "Mars/Olympus"}, "TIME_ZONE"),
        ({"DATABASE_URL": "mysql://localhost/r4c"}, "DATABASE_URL"),
        ({"DATABASE_URL": "nonsense"}, "DATABASE_URL"),
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL"),
        ({"NOTICE_LEASE_SECONDS": "5"}, "NOTICE_LEASE_SECONDS"),
    ],
)
def test_a_malformed_variable_stops_start_up_naming_it(env, named):
    result = run("manage.py", "check", **env)
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert "ImproperlyConfigured" in last_line
    assert named in last_line


def test_it_starts_with_production_defaults_and_a_secret_key():
    result = run("manage.py", "check")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("entry_point", ["R4C.wsgi", "R4C.asgi"])
def test_a_server_without_a_secret_key_refuses_to_start_naming_it(entry_point):
    result = run("-c", f"import {entry_point}", SECRET_KEY="")
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr.strip().splitlines()[-1]


def test_commands_that_sign_nothing_run_without_a_secret_key():
    result = run("manage.py", "makemigrations", "--check", "--dry-run", SECRET_KEY="")
    assert result.returncode == 0, result.stderr


def test_debug_needs_no_secret_key():
    result = run("-c", "import R4C.wsgi", DEBUG="true", SECRET_KEY="")
    assert result.returncode == 0, result.stderr
