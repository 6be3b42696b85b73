"""R4C settings: every knob comes from the environment (or `.env`), see `.env.example`.

Defaults are safe for production; `make run` sets the development values explicitly.
"""

import os
import zoneinfo
from datetime import timedelta
from ipaddress import ip_network
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP
from dotenv import dotenv_values, load_dotenv

BASE_DIR = Path(__file__).resolve().parent.parent

# Variables already in the environment win over `.env`, so a command line can override it.
# make run says which of what it uses came from `.env` (manage.py check_serving).
FROM_DOTENV = set(dotenv_values(BASE_DIR / ".env")) - set(os.environ)
load_dotenv(BASE_DIR / ".env")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def env_str(name: str, default: str = "") -> str:
    # Empty is unset: `.env.example` lists every variable, most of them blank.
    return os.environ.get(name, "").strip() or default


def env_bool(name: str, default: bool) -> bool:
    raw = env_str(name).lower()
    if not raw:
        return default
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ImproperlyConfigured(
        f"{name}={os.environ[name]!r} is not a boolean: use one of "
        f"{', '.join(sorted(_TRUE | _FALSE))}."
    )


def env_number(
    name: str, default: float, *, kind=int, minimum: float = 0, maximum: float = 10**9
) -> float:
    raw = env_str(name)
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        value = None
    if value is None or not minimum <= value <= maximum:
        raise ImproperlyConfigured(
            f"{name}={raw!r} is not valid: expected "
            f"{'a whole number' if kind is int else 'a number'} from {minimum} to {maximum}."
        )
    return value


def env_choice(name: str, default: str, choices: set[str]) -> str:
    value = env_str(name, default).upper()
    if value not in choices:
        raise ImproperlyConfigured(
            f"{name}={value!r} is not valid: use one of {', '.join(sorted(choices))}."
        )
    return value


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG", False)

# Machines must send an API key to POST /add_robot/ and GET /download/ (managers signed in to
# the admin may download too). Off in development, so that the curl lines in docs/api.md work.
API_KEYS_REQUIRED = env_bool("API_KEYS_REQUIRED", not DEBUG)

# /create_order/ is public: orders a client address may place per minute, and orders per
# e-mail address per 10 minutes; 0 turns a limit off. Off in development unless set.
ORDER_LIMIT_PER_CLIENT = env_number("ORDER_LIMIT_PER_CLIENT", 0 if DEBUG else 30)
ORDER_LIMIT_PER_EMAIL = env_number("ORDER_LIMIT_PER_EMAIL", 0 if DEBUG else 5)
# The reverse proxies in front (addresses or networks, e.g. 127.0.0.1, 10.0.0.0/8): only a
# connection from one of them may say, in X-Forwarded-For, whom it speaks for.
try:
    TRUSTED_PROXIES = [ip_network(n, strict=False) for n in env_list("TRUSTED_PROXIES", "")]
except ValueError as error:
    raise ImproperlyConfigured(
        f"TRUSTED_PROXIES={env_str('TRUSTED_PROXIES')!r} is not valid ({error}): expected "
        "proxy addresses or networks, comma-separated, e.g. 127.0.0.1, 10.0.0.0/8."
    ) from None

# Required to serve: R4C/wsgi.py and R4C/asgi.py (runserver and gunicorn included) refuse to
# start without it. Commands that sign nothing (migrate, createsuperuser, the worker) run
# without it, as Django allows.
SECRET_KEY = env_str("SECRET_KEY") or ("django-insecure-development-only-key" if DEBUG else "")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "R4C.apps.R4CAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "R4C.apps.AxesConfig",
    "robots",
    "customers",
    "orders",
]

MIDDLEWARE = [
    # First, so that it times (and counts) every answer, redirects and refusals included.
    "R4C.metrics.RequestMetricsMiddleware",
    # Before the security middleware, so that its HTTPS redirect carries the policy too.
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # The admin's static files, from the process itself: no separate file server to set up.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Late, so that it sees what the views raise: a database that is down is a 503 problem.
    "R4C.http.ProblemMiddleware",
    # django-axes' own place, last: it answers a locked-out login.
    "axes.middleware.AxesMiddleware",
]

# The admin's login: after AXES_FAILURE_LIMIT wrong passwords for one user name from one
# client, or from one client whatever the names, that client is locked out of it (or of
# everything) for AXES_COOLOFF_TIME and answered 429. A client is an IPv4 address or an IPv6
# /64 (R4C.http.client_address); a good login forgets only its own name's failures
# (R4C/admin.py), never the client's.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

AXES_FAILURE_LIMIT = 5
AXES_COOLOFF_TIME = timedelta(minutes=15)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"], "ip_address"]
AXES_CLIENT_IP_CALLABLE = "R4C.http.client_address"
AXES_HTTP_RESPONSE_CODE = 429
AXES_VERBOSE = False  # its start-up banner, once per process, says nothing an operator needs

ROOT_URLCONF = "R4C.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # Before the apps' own: R4C's changes to the admin's templates (admin/pagination.html).
        "DIRS": [BASE_DIR / "R4C" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            # The admin's counts in Russian plurals, for every app ({% load r4c_admin %}).
            "libraries": {"r4c_admin": "R4C.templatetags"},
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "R4C.wsgi.application"
# The project's own Russian (locale/ru), compiled by the Makefile, before Django's; and its
# own date formats where Django's are wrong for Russian (R4C/formats/ru).
LOCALE_PATHS = [BASE_DIR / "locale"]
FORMAT_MODULE_PATH = ["R4C.formats"]
CSRF_FAILURE_VIEW = "R4C.views.csrf_failure"


# A database host that dies or is cut off sends no reset: without these a connection waiting
# on it hangs until TCP gives up (hours), and connecting waits for psycopg's 130 s. An idle
# connection is probed after 3 s, three times 1 s apart; one whose data goes unacknowledged
# is dropped after 6 s (a live server's kernel acknowledges at once, however busy the server
# is): a vanished server is noticed within 10 s. A URL's own values win.
PG_TIMEOUTS = {
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 3,
    "keepalives_interval": 1,
    "keepalives_count": 3,
    "tcp_user_timeout": 6000,
}
# What else a postgres:// URL's query may set: Django's own options (libpq's are asked below).
DJANGO_PG_OPTIONS = {"isolation_level", "server_side_binding", "assume_role", "pool"}


def _database(url: str, name: str = "DATABASE_URL") -> dict:
    # Persistent connections, checked before each request reuses them: a connection costs
    # more than a request (on SQLite, the WAL set-up). A connection the database dropped is
    # replaced at the next request instead of failing it.
    try:
        config = dj_database_url.parse(url, conn_max_age=600, conn_health_checks=True)
    except ValueError:
        if "," in url.partition("@")[2].partition("/")[0]:
            error = "its hosts have ports of their own; give them one, as in "
            error += "postgres://user@host1,host2:5432/name"
        raise ImproperlyConfigured(f"{name} is not a usable URL: {error}") from None
    if config["ENGINE"] == "django.db.backends.sqlite3":
        # The web process and the worker write at once: WAL lets readers go on while one
        # writes, IMMEDIATE takes the write lock at BEGIN (no deadlock-prone lock upgrade),
        # and the timeout makes a writer wait for the lock instead of failing. R4C's own
        # backend queues the writers of a process for it in turn (R4C/sqlite3).
        config["ENGINE"] = "R4C.sqlite3"
        config["OPTIONS"] = {
            # secure_delete: what is erased (a forgotten customer) is overwritten, not left
            # in free pages.
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; "
            "PRAGMA secure_delete=ON",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        }
        # A file, not memory, so that tests with several threads share one database.
        config["TEST"] = {"NAME": str(BASE_DIR / "test_db.sqlite3")}
    elif config["ENGINE"] == "django.db.backends.postgresql":
        from psycopg import pq

        libpq = {option.keyword.decode() for option in pq.Conninfo.get_defaults()}
        options = config.get("OPTIONS", {})
        if unknown := sorted(set(options) - libpq - DJANGO_PG_OPTIONS):
            raise ImproperlyConfigured(
                f"{name} sets {', '.join(unknown)}, which is not a libpq option "
                "(https://www.postgresql.org/docs/current/libpq-connect.html)."
            )
        config["OPTIONS"] = PG_TIMEOUTS | options
        # Behind PgBouncer in transaction mode a connection is a server's for one transaction
        # only: no cursor may outlive it (docs/production.md, "Behind PgBouncer").
        config["DISABLE_SERVER_SIDE_CURSORS"] = DATABASE_POOLED
    else:
        raise ImproperlyConfigured(
            f"{name} must be a sqlite:// or postgres:// URL, "
            f"not {config['ENGINE'].rsplit('.', 1)[-1]}."
        )
    return config


# DATABASE_URL leads to a pooler in transaction mode (PgBouncer), not to PostgreSQL itself.
DATABASE_POOLED = env_bool("DATABASE_POOLED", False)
DATABASES = {
    "default": _database(env_str("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}")
}
# The worker's LISTEN for due notices needs a session of its own, which a pooler in
# transaction mode does not keep: this URL leads to the same database directly. Without it,
# behind a pooler the worker polls every second.
if LISTEN_DATABASE_URL := env_str("LISTEN_DATABASE_URL"):
    listen = _database(LISTEN_DATABASE_URL, "LISTEN_DATABASE_URL")
    default = DATABASES["default"]
    if not listen["ENGINE"] == default["ENGINE"] == "django.db.backends.postgresql" or (
        listen["NAME"] != default["NAME"]
    ):
        raise ImproperlyConfigured(
            f"LISTEN_DATABASE_URL leads to {listen['NAME']!r}: it must lead to DATABASE_URL's "
            f"PostgreSQL database ({default['NAME']!r}), directly."
        )
    DATABASES["listen"] = listen | {"TEST": {"MIRROR": "default"}}

# make serve's gunicorn (R4C/gunicorn_conf.py): processes, and threads in each. On SQLite one
# process: its threads take turns for the database's one write lock (R4C/sqlite3), where the
# threads of two processes would meet in SQLite's own sleep-and-retry loop and a request
# could wait a second for it.
WEB_WORKERS = env_number(
    "WEB_WORKERS",
    1 if DATABASES["default"]["ENGINE"] == "R4C.sqlite3" else 2,
    minimum=1,
    maximum=64,
)
WEB_THREADS = env_number("WEB_THREADS", 8, minimum=1, maximum=256)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# The pages people read (the order page, the admin) are in Russian, with 24-hour times; the
# API speaks English (R4C.http.in_english).
LANGUAGE_CODE = "ru"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
if TIME_ZONE not in zoneinfo.available_timezones():
    raise ImproperlyConfigured(
        f"TIME_ZONE={TIME_ZONE!r} is not a known time zone: use an IANA name such as "
        "UTC or Europe/Moscow."
    )
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# The site's own files (R4C/static: the admin's stylesheet); the apps' come from their folders.
STATICFILES_DIRS = [BASE_DIR / "R4C" / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Hashed, compressed names from collectstatic, cached for ever by browsers.
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
if DEBUG:
    # `make run` serves static files without collectstatic.
    STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"

# Behind a reverse proxy that terminates TLS (docs/production.md). HTTPS: plain HTTP is
# redirected, cookies are sent over HTTPS only, and browsers are told to come back over
# HTTPS only (HSTS). PROXY_SSL_HEADER trusts the proxy's X-Forwarded-Proto: only where a
# proxy sets it, or any client could claim HTTPS.
HTTPS = env_bool("HTTPS", not DEBUG)
SECURE_SSL_REDIRECT = HTTPS
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # load balancers ask over plain HTTP
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = env_number("HSTS_SECONDS", 31_536_000 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_PRELOAD = SECURE_HSTS_SECONDS > 0
if env_bool("PROXY_SSL_HEADER", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Every response, the admin's included, may load scripts, styles, images and fonts from R4C
# itself and nothing else, runs no inline code, and cannot be framed.
SECURE_CSP = {
    "default-src": [CSP.NONE],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:"],
    "font-src": [CSP.SELF],
    "connect-src": [CSP.SELF],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
    "base-uri": [CSP.NONE],
}

# Where GET /download/ keeps the last weekly report it built.
PRODUCTION_LIST_DIR = BASE_DIR / "production_list"

# Mail: the factory's variable names, mapped onto Django's MAILERS. Without EMAIL_HOST the
# console backend prints every message, so a development machine needs no mail server.
_use_tls = env_bool("EMAIL_USE_TLS", False)
_use_ssl = env_bool("EMAIL_USE_SSL", False)
if _use_tls and _use_ssl:
    raise ImproperlyConfigured(
        "EMAIL_USE_TLS and EMAIL_USE_SSL are both on: set at most one of them."
    )
# Read even without EMAIL_HOST, so that a typo fails at start-up, not at the first mail.
_smtp_options = {
    "host": env_str("EMAIL_HOST"),
    "port": env_number(
        "EMAIL_PORT", 465 if _use_ssl else 587 if _use_tls else 25, minimum=1, maximum=65535
    ),
    "username": env_str("HOST_USER"),
    "password": env_str("HOST_PASSWORD"),
    "use_tls": _use_tls,
    "use_ssl": _use_ssl,
    "timeout": env_number("EMAIL_TIMEOUT", 10, kind=float, minimum=0.1, maximum=600),
}
if _smtp_options["host"]:
    MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": _smtp_options,
        }
    }
else:
    MAILERS = {"default": {"BACKEND": "orders.mail.console.EmailBackend"}}
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "R4C <robots@localhost>")
# The mailbox that bounces and complaints come back to, piped into `manage.py bounce`: each
# notice's envelope sender is it with a signed tag (bounces+<tag>@...). Empty: the envelope
# sender is DEFAULT_FROM_EMAIL's address, and only a refusal at RCPT or DATA is seen.
# In development (make run) bounces@ the sender's domain, so that bounces can be tried.
BOUNCE_ADDRESS = env_str("BOUNCE_ADDRESS") or (
    f"bounces@{DEFAULT_FROM_EMAIL.rpartition('@')[2].rstrip('>')}" if DEBUG else ""
)
if BOUNCE_ADDRESS and (
    "@" not in BOUNCE_ADDRESS or "+" in BOUNCE_ADDRESS or any(c in BOUNCE_ADDRESS for c in "<> ")
):
    raise ImproperlyConfigured(
        f"BOUNCE_ADDRESS={BOUNCE_ADDRESS!r} is not valid: give one bare mailbox without a "
        "+tag, e.g. bounces@r4c.example.com."
    )

# How long notices claimed by a worker stay its own without word from it: a live worker
# renews its claims every third of it (its beat), so a claim is taken over after three
# missed beats, within seconds of a worker's death. Longer only where a worker's database
# may be out of reach longer than that while another's is not.
NOTICE_LEASE_SECONDS = env_number("NOTICE_LEASE_SECONDS", 15, kind=float, minimum=1)
# A placing for a robot in stock mails at once, unless the address was mailed for that
# serial less than this many hours ago: then it waits for the next robot.
NOTICE_REPEAT_HOURS = env_number("NOTICE_REPEAT_HOURS", 24, kind=float, minimum=0, maximum=8760)
# Notices one address may receive for one serial in a day (the factory's date), whoever
# places the order how often: past it, placing again is answered but mails nothing.
NOTICE_DAILY_CAP = env_number("NOTICE_DAILY_CAP", 3, minimum=1, maximum=1000)
# SMTP connections one worker sends on at once: a 1 s-per-message server takes 1,000
# notices in 1,000 / NOTICE_CONNECTIONS seconds.
NOTICE_CONNECTIONS = env_number("NOTICE_CONNECTIONS", 16, minimum=1, maximum=100)
# Messages a second one worker sends at most, evenly spaced (a relay's agreed rate);
# empty: as fast as the server takes them. Either way, a server that answers "too many"
# (421, 4.7.x) gets fewer connections.
NOTICE_MAX_RATE = env_number("NOTICE_MAX_RATE", None, kind=float, minimum=0.01, maximum=10**6)
# Days a notice that is done with (sent, stopped, failed) is kept before the worker forgets
# it, with the links in it and a customer left with no order.
NOTICE_RETENTION_DAYS = env_number("NOTICE_RETENTION_DAYS", 90, minimum=1, maximum=3650)

# Where customers reach R4C: the links in the mail (one-click stop) are made from it. With
# DEBUG off it must be https://, and the mail worker will not start without it (commands
# that send no mail need none).
SITE_URL = env_str("SITE_URL").rstrip("/") or (
    f"http://127.0.0.1:{env_number('PORT', 8000, minimum=1, maximum=65535)}" if DEBUG else ""
)
# How a customer reaches the factory (a phone number, an address), below each notice's text.
FACTORY_CONTACT = env_str("FACTORY_CONTACT")
# Plain http:// only to try the production form on this machine, before its TLS proxy.
_this_machine = urlsplit(SITE_URL).hostname in {"127.0.0.1", "localhost", "::1"} and not HTTPS
if SITE_URL and not DEBUG and not SITE_URL.startswith("https://") and not _this_machine:
    raise ImproperlyConfigured(
        f"SITE_URL={SITE_URL!r} is not valid: with DEBUG off, use the https:// address "
        "customers reach R4C at (e.g. https://r4c.example.com); the links in the mail use it. "
        "(http://127.0.0.1:PORT only with HTTPS=false, to try it on this machine.)"
    )

_log_level = env_choice("LOG_LEVEL", "INFO", {"DEBUG", "INFO", "WARNING", "ERROR"})
# TEXT: readable lines; JSON: one object a line (time, level, logger, event and ids).
_log_format = env_choice("LOG_FORMAT", "TEXT", {"TEXT", "JSON"})
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"line": {"()": f"R4C.logs.{_log_format.title()}Formatter"}},
    "filters": {"redact": {"()": "R4C.logs.Redact"}, "one_line": {"()": "R4C.logs.OneLine"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "line", "filters": ["redact"]}
    },
    "root": {"handlers": ["console"], "level": _log_level},
    "loggers": {
        # Django's own console handler (with DEBUG on) would print each line a second time.
        "django": {"handlers": [], "level": _log_level, "propagate": True},
        # gunicorn's (make serve, R4C/gunicorn_conf.py): the same handler, each line once.
        "gunicorn.error": {"handlers": ["console"], "level": _log_level, "propagate": False},
        "gunicorn.access": {"handlers": ["console"], "level": "INFO", "propagate": False},
        # Its detectors name themselves at INFO for every bounce read, and print their own
        # tracebacks on a message they cannot read (an 8-bit From).
        "flufl.bounce": {"level": "WARNING", "filters": ["one_line"]},
    },
}
