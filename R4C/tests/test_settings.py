"""Settings: each rule tested in-process by reading `R4C/settings.py` afresh in an
environment of the test's making; a process only where only one shows it (entry points)."""

import io
import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from R4C.settings import env_bool, env_choice, env_number

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = ROOT / "R4C" / "settings.py"
# Every variable R4C reads, set empty unless a test says otherwise: a developer's `.env`
# fills only variables the environment lacks, so it cannot change what these tests see.
VARIABLES = (ROOT / ".env.example").read_text().splitlines()
NAMES = {line.split("=", 1)[0] for line in VARIABLES if "=" in line and line[0].isupper()}


def isolated(**env) -> dict[str, str]:
    # Not the suite's own settings module: R4C's, as manage.py and the servers load it.
    kept = {k: v for k, v in os.environ.items() if k not in {*NAMES, "DJANGO_SETTINGS_MODULE"}}
    return kept | dict.fromkeys(NAMES, "") | {"SECRET_KEY": "k"} | env


def read_settings(monkeypatch, **env) -> dict:
    """R4C's settings as a process started with these variables would read them."""
    monkeypatch.setattr(os, "environ", isolated(**env))
    values = runpy.run_path(str(SETTINGS))
    return {name: value for name, value in values.items() if name.isupper()}


def run(*args, **env):
    """Run `python ARGS` in the project, in a fresh process with these variables only."""
    return subprocess.run(
        [sys.executable, *args], check=False, cwd=ROOT, env=isolated(**env),
        capture_output=True, text=True,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("read", "raw"),
    [
        (lambda: env_bool("R4C_TEST", False), "maybe"),
        (lambda: env_number("R4C_TEST", 25, minimum=1, maximum=65535), "abc"),
        (lambda: env_number("R4C_TEST", 25, minimum=1, maximum=65535), "70000"),
        (lambda: env_number("R4C_TEST", 10, kind=float, minimum=0.1), "-1"),
        (lambda: env_choice("R4C_TEST", "INFO", {"INFO", "ERROR"}), "loud"),
    ],
)
def test_a_malformed_value_is_refused_naming_its_variable(monkeypatch, read, raw):
    monkeypatch.setenv("R4C_TEST", raw)
    with pytest.raises(ImproperlyConfigured, match="R4C_TEST"):
        read()


def test_the_helpers_read_good_values_and_defaults(monkeypatch):
    monkeypatch.setenv("R4C_TEST", " yes ")
    assert env_bool("R4C_TEST", False) is True
    monkeypatch.setenv("R4C_TEST", "2.5")
    assert env_number("R4C_TEST", 1, kind=float) == 2.5
    monkeypatch.setenv("R4C_TEST", "")
    assert env_number("R4C_TEST", 7) == 7


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"DEBUG": "maybe"}, ["DEBUG"]),
        ({"EMAIL_USE_TLS": "true", "EMAIL_USE_SSL": "true"}, ["EMAIL_USE_SSL"]),
        ({"TIME_ZONE": "Mars/Olympus"}, ["TIME_ZONE"]),
        ({"DATABASE_URL": "mysql://localhost/r4c"}, ["DATABASE_URL"]),
        ({"DATABASE_URL": "postgres://r4c@db1:5432,db2:5433/r4c"}, ["DATABASE_URL", "one"]),
        ({"DATABASE_URL": "postgres://r4c@db/r4c?keepalive=1"}, ["DATABASE_URL", "keepalive"]),
        (
            {
                "DATABASE_URL": "postgres://r4c@db/r4c",
                "LISTEN_DATABASE_URL": "postgres://r4c@db/other",
            },
            ["LISTEN_DATABASE_URL", "other"],
        ),
        ({"LISTEN_DATABASE_URL": "sqlite:///db.sqlite3x"}, ["LISTEN_DATABASE_URL"]),
        ({"DATABASE_POOLED": "transaction"}, ["DATABASE_POOLED"]),
        ({"NOTICE_LEASE_SECONDS": "0.5"}, ["NOTICE_LEASE_SECONDS"]),
        ({"NOTICE_REPEAT_HOURS": "-1"}, ["NOTICE_REPEAT_HOURS"]),
        ({"EMAIL_TIMEOUT": "0"}, ["EMAIL_TIMEOUT"]),
        ({"NOTICE_CONNECTIONS": "0"}, ["NOTICE_CONNECTIONS"]),
        ({"NOTICE_MAX_RATE": "0"}, ["NOTICE_MAX_RATE"]),
        ({"NOTICE_MAX_RATE": "fast"}, ["NOTICE_MAX_RATE"]),
        ({"NOTICE_DAILY_CAP": "0"}, ["NOTICE_DAILY_CAP"]),
        ({"API_KEYS_REQUIRED": "sometimes"}, ["API_KEYS_REQUIRED"]),
        ({"ORDER_LIMIT_PER_CLIENT": "-1"}, ["ORDER_LIMIT_PER_CLIENT"]),
        ({"ORDER_LIMIT_PER_EMAIL": "five"}, ["ORDER_LIMIT_PER_EMAIL"]),
        ({"TRUSTED_PROXIES": "1"}, ["TRUSTED_PROXIES"]),  # a count of hops, as it once was
        ({"TRUSTED_PROXIES": "127.0.0.1, 10.0.0.0/33"}, ["TRUSTED_PROXIES"]),
        ({"HSTS_SECONDS": "a year"}, ["HSTS_SECONDS"]),
        ({"HTTPS": "maybe"}, ["HTTPS"]),
        ({"PROXY_SSL_HEADER": "2"}, ["PROXY_SSL_HEADER"]),
        ({"SITE_URL": "http://r4c.example.com"}, ["SITE_URL"]),
        ({"NOTICE_RETENTION_DAYS": "0"}, ["NOTICE_RETENTION_DAYS"]),
        ({"LOG_FORMAT": "xml"}, ["LOG_FORMAT"]),
        ({"BOUNCE_ADDRESS": "bounces"}, ["BOUNCE_ADDRESS"]),
        ({"BOUNCE_ADDRESS": "bounces+x@r4c.example.com"}, ["BOUNCE_ADDRESS"]),
        ({"BOUNCE_ADDRESS": "R4C <bounces@r4c.example.com>"}, ["BOUNCE_ADDRESS"]),
        ({"WEB_WORKERS": "0"}, ["WEB_WORKERS"]),
        ({"WEB_THREADS": "many"}, ["WEB_THREADS"]),
    ],
)
def test_a_bad_setting_stops_start_up_naming_it(monkeypatch, env, named):
    with pytest.raises(ImproperlyConfigured) as refused:
        read_settings(monkeypatch, **env)
    for name in named:
        assert name in str(refused.value)


def test_make_serve_runs_one_web_process_on_sqlite_and_two_on_postgresql(monkeypatch):
    sqlite = read_settings(monkeypatch)
    postgresql = read_settings(monkeypatch, DATABASE_URL="postgres://r4c@db.example.com/r4c")
    assert (sqlite["WEB_WORKERS"], postgresql["WEB_WORKERS"]) == (1, 2)
    assert read_settings(monkeypatch, WEB_WORKERS="3")["WEB_WORKERS"] == 3


def test_in_development_bounces_come_back_to_the_sender_s_domain(monkeypatch):
    assert read_settings(monkeypatch, DEBUG="true")["BOUNCE_ADDRESS"] == "bounces@localhost"
    assert read_settings(monkeypatch)["BOUNCE_ADDRESS"] == ""  # production: set it, or none
    development = read_settings(monkeypatch, DEBUG="true", DEFAULT_FROM_EMAIL="R4C <r@x.test>")
    assert development["BOUNCE_ADDRESS"] == "bounces@x.test"


def test_postgresql_connections_give_up_on_a_vanished_server_within_10_s(monkeypatch):
    url = "postgres://r4c@db1,db2:5432/r4c?target_session_attrs=read-write&connect_timeout=2"
    options = read_settings(monkeypatch, DATABASE_URL=url)["DATABASES"]["default"]["OPTIONS"]
    assert options["target_session_attrs"] == "read-write"
    assert options["connect_timeout"] == 2  # the URL's own value wins
    # Probed after 3 s idle, three times 1 s apart; unacknowledged data dropped after 6 s.
    idle, interval, count = (options[f"keepalives{k}"] for k in ("_idle", "_interval", "_count"))
    assert options["keepalives"] == 1 and idle + interval * count <= 10
    assert options["tcp_user_timeout"] <= 10_000


def deploy_check(values: dict) -> None:
    with override_settings(**values):
        call_command("check", "--deploy", "--fail-level", "WARNING", stdout=io.StringIO())


@pytest.mark.parametrize("entry_point", ["R4C.wsgi", "R4C.asgi"])
def test_a_server_without_a_secret_key_refuses_to_start_naming_it(entry_point):
    result = run("-c", f"import {entry_point}", SECRET_KEY="")
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr.strip().splitlines()[-1]


def test_debug_needs_no_secret_key():
    result = run("-c", "import R4C.wsgi", DEBUG="true", SECRET_KEY="")
    assert result.returncode == 0, result.stderr


@pytest.mark.django_db
def test_commands_that_sign_nothing_run_without_a_secret_key(monkeypatch):
    values = read_settings(monkeypatch, SECRET_KEY="")
    assert values["SECRET_KEY"] == ""
    with override_settings(SECRET_KEY=""):
        call_command("makemigrations", "--check", "--dry-run", stdout=io.StringIO())


def production_values(monkeypatch, **env) -> dict:
    """What `.env.example` says production runs with, plus the values it leaves to fill in."""
    values = {}
    for line in VARIABLES:
        if "=" in line and line[0].isupper():
            name, value = line.split("=", 1)
            values[name] = value
    values |= OWN | {"SECRET_KEY": "a-long-random-production-key-" + "x7Qp2" * 10}
    read = read_settings(monkeypatch, **values | env)
    # The test database stays: the check is about the settings, not which file they name.
    return {k: v for k, v in read.items() if k not in {"DATABASES", "LOGGING", "BASE_DIR"}}


# What the operator fills in for `.env.example`'s placeholders: the factory's own names.
OWN = {
    "ALLOWED_HOSTS": "r4c.factory.ru",
    "CSRF_TRUSTED_ORIGINS": "https://r4c.factory.ru",
    "SITE_URL": "https://r4c.factory.ru",
    "DEFAULT_FROM_EMAIL": "R4C <robots@factory.ru>",
    "BOUNCE_ADDRESS": "bounces@factory.ru",
    "FACTORY_CONTACT": "+7 495 000-00-00",
}


@pytest.mark.django_db
def test_the_documented_production_values_pass_the_deploy_check(monkeypatch):
    deploy_check(production_values(monkeypatch))


@pytest.mark.django_db
def test_the_placeholders_left_in_are_refused_naming_each(monkeypatch):
    example = {k: v for k, v in production_values(monkeypatch, FACTORY_CONTACT="").items()}
    for line in VARIABLES:  # .env.example's own values for the identity, untouched
        name, _, value = line.partition("=")
        if name in {"SITE_URL", "DEFAULT_FROM_EMAIL", "BOUNCE_ADDRESS"}:
            example[name] = value
    with pytest.raises(SystemCheckError) as refused:
        deploy_check(example)
    said = str(refused.value)
    for line in ("SITE_URL='https://r4c.example.com'", "BOUNCE_ADDRESS='bounces@r4c.example.com'"):
        assert line in said
    assert "DEFAULT_FROM_EMAIL='R4C <robots@r4c.example.com>'" in said
    assert said.count("orders.E001") == 3
    assert "orders.W005" in said and "FACTORY_CONTACT" in said


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SITE_URL", "https://shop.example.org"),
        ("SITE_URL", "https://r4c.example"),
        ("SITE_URL", "https://r4c.test"),
        ("DEFAULT_FROM_EMAIL", "R4C <robots@example.net>"),
        ("DEFAULT_FROM_EMAIL", "robots@r4c.invalid"),
        ("DEFAULT_FROM_EMAIL", "R4C <robots@localhost>"),
        ("BOUNCE_ADDRESS", "bounces@r4c.localhost"),
    ],
)
def test_a_reserved_domain_is_an_error(monkeypatch, name, value):
    values = production_values(monkeypatch, **{name: value})
    if name == "DEFAULT_FROM_EMAIL":  # the bounce mailbox goes along, at the sender's domain
        values["BOUNCE_ADDRESS"] = "bounces@" + value.rpartition("@")[2].rstrip(">")
    with pytest.raises(SystemCheckError, match=rf"orders.E001.*{name}="):
        deploy_check(values)


@pytest.mark.django_db
@pytest.mark.parametrize("site", ["http://127.0.0.1:8000", "http://localhost:8000"])
def test_a_site_on_this_machine_is_allowed_to_try_it_before_the_proxy(monkeypatch, site):
    values = production_values(monkeypatch, SITE_URL=site, HTTPS="false")
    assert values["SITE_URL"] == site
    with override_settings(**values):
        call_command("check_serving", stdout=io.StringIO())
    with pytest.raises(ImproperlyConfigured, match="SITE_URL"):  # not once HTTPS is on
        production_values(monkeypatch, SITE_URL=site)


def test_make_serve_refuses_the_placeholders_before_any_migration(tmp_path):
    result = run(
        "manage.py", "check_serving", DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        SECRET_KEY="k" * 50, SITE_URL="https://r4c.example.com",
        DEFAULT_FROM_EMAIL="R4C <robots@r4c.example.com>",
    )  # fmt: skip
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert "SITE_URL='https://r4c.example.com'" in line
    assert "DEFAULT_FROM_EMAIL='R4C <robots@r4c.example.com>'" in line
    assert not (tmp_path / "db.sqlite3").exists()


def test_each_log_line_is_printed_once_also_in_development():
    code = "import logging; logging.getLogger('django.request').warning('one line')"
    result = run("manage.py", "shell", "-c", code, DEBUG="true")
    assert result.stderr.count("one line") == 1, result.stderr


def test_keys_and_limits_hold_in_production_and_are_off_in_development(monkeypatch):
    names = ["API_KEYS_REQUIRED", "ORDER_LIMIT_PER_CLIENT", "ORDER_LIMIT_PER_EMAIL"]
    production = read_settings(monkeypatch)
    assert [production[name] for name in names] == [True, 30, 5]
    development = read_settings(monkeypatch, DEBUG="true")
    assert [development[name] for name in names] == [False, 0, 0]


@pytest.mark.django_db
def test_the_mail_worker_will_not_start_without_site_url():
    with override_settings(SITE_URL=""), pytest.raises(CommandError, match="SITE_URL is not set"):
        call_command("send_notices", "--once")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "sender",
    [
        "robots@factory",
        "robots@[192.0.2.1]",
        "robots@192.0.2.1",
        "robots@r4c.local",
    ],
)
def test_the_deploy_check_warns_of_a_sender_no_mailbox_provider_would_trust(monkeypatch, sender):
    values = production_values(monkeypatch, DEFAULT_FROM_EMAIL=sender)
    with pytest.raises(SystemCheckError, match="orders.W001"):
        deploy_check(values)


def test_checks_pass_on_a_database_not_yet_migrated(tmp_path):
    # A fresh clone runs makemigrations --check and check before any migrate: loading the
    # URLs (and what /metrics registers) must not query the database.
    result = run("manage.py", "check", DATABASE_URL=f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    assert result.returncode == 0, result.stderr


def test_in_development_the_stop_links_point_at_the_server_that_runs(monkeypatch):
    assert read_settings(monkeypatch, DEBUG="true")["SITE_URL"] == "http://127.0.0.1:8000"
    running = read_settings(monkeypatch, DEBUG="true", PORT="18501")
    assert running["SITE_URL"] == "http://127.0.0.1:18501"
    chosen = read_settings(monkeypatch, DEBUG="true", PORT="18501", SITE_URL="http://r4c.test/")
    assert chosen["SITE_URL"] == "http://r4c.test"
