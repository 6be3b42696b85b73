"""The world most tests need: a catalog, robots produced, customers waiting.

Build it with plain model calls, as a request or an admin would; test modules import these
helpers, never each other.
"""

import io
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from urllib.parse import urlsplit

from django.db import connection, transaction
from prometheus_client.parser import text_string_to_metric_families

from orders.mail import outbox
from orders.mail.worker import MailConnection, send_batch, send_once
from orders.models import Order, Tally
from robots.models import Model, Robot, Version

CATALOG = {"R2": ["D2", "A1"], "13": ["XS"]}
# The longest address a page must still show readably: 64 characters.
LONG_ADDRESS = "konstantin.konstantinopolsky.procurement-dept1@robots.example.ru"
BODY = (
    "Добрый день!\n"
    "Недавно вы интересовались нашим роботом модели R2, версии D2.\n"
    "Этот робот теперь в наличии. Если вам подходит этот вариант - пожалуйста, "
    "свяжитесь с нами."
)


def text_of(message) -> str:
    """A received notice's text, with its line ends as written."""
    return message.get_content().replace("\r\n", "\n")


def catalog() -> None:
    """The catalog, before any order: nothing tallied either (between tests, SQLite's flush
    deletes the tables in any order, and an order deleted after the tally adds a -1)."""
    Tally.objects.all().delete()
    for model_name, names in CATALOG.items():
        model = Model.objects.create(name=model_name)
        for name in names:
            Version.objects.create(model=model, name=name)


def version(serial: str) -> Version:
    model, name = serial.split("-")
    return Version.objects.select_related("model").get(model__name=model, name=name)


def produce(serial: str, count: int = 1, created: datetime | None = None) -> list[Robot]:
    """`count` robots of `serial`, each saved as the admin or a shell would save it."""
    v = version(serial)
    return [
        Robot.objects.create(model=v.model, version=v, created=created or datetime.now(UTC))
        for _ in range(count)
    ]


def place(serial: str, *emails: str) -> list[Order]:
    """Each address places an order for `serial`, as POST /create_order/ does."""
    v = version(serial)
    return [outbox.place(email, v).order for email in emails]


def wait_for(condition, seconds: float = 15) -> bool:
    """Poll `condition` until it holds or `seconds` pass; for what another process does."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def environment(**env: str) -> dict[str, str]:
    """For a process a test starts: this environment, but R4C's own settings module (as
    manage.py and the servers load it), not the suite's, and these variables."""
    inherited = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    return inherited | {"LISTEN_DATABASE_URL": listen_url()} | env


# Where `make serve` started by a test says it is: no placeholder, which it refuses; a site
# on this machine, which the deploy check allows.
IDENTITY = {"SITE_URL": "https://localhost", "DEFAULT_FROM_EMAIL": "R4C <robots@r4c.ru>"}


def listen_url() -> str:
    """LISTEN_DATABASE_URL for the test database where the suite runs behind a pooler (make
    check's pooled tier): the direct server, and the test database's name."""
    url = os.environ.get("LISTEN_DATABASE_URL", "")
    return url and urlsplit(url)._replace(path=f"/{connection.settings_dict['NAME']}").geturl()


def database_url() -> str:
    """The test database, for a process of its own."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    password = f":{db['PASSWORD']}" if db["PASSWORD"] else ""
    return f"postgres://{db['USER']}{password}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def drain() -> None:
    """What `send_notices --once` does: work until nothing is due, on one connection."""
    send_once()


@contextmanager
def database_down():
    """The default database does not answer: its file or its port leads nowhere."""
    from orders.tests.smtp import free_port

    saved = dict(connection.settings_dict)
    connection.close()
    if connection.vendor == "sqlite":
        connection.settings_dict["NAME"] = "/nonexistent/r4c/db.sqlite3"
    else:
        connection.settings_dict["PORT"] = free_port()
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict.update(saved)


def deliver_before(before=None, after=None) -> None:
    """Make arrivals due and send one batch, calling `before(order)` as each message starts
    and `after(order)` right after the server has answered it."""
    outbox.make_due()
    mail = MailConnection()
    send = mail.send

    def hooked(order):
        if before:
            before(order)
        attempt = send(order)
        if after:
            after(order)
        return attempt

    mail.send = hooked
    try:
        send_batch(mail)
    finally:
        mail.close()


def json_log(test, name: str) -> io.StringIO:
    """What logger `name` writes during `test`, as LOG_FORMAT=json writes it."""
    from R4C.logs import JsonFormatter

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(name)
    logger.addHandler(handler)
    test.addCleanup(logger.removeHandler, handler)
    return stream


def while_open(write, other):
    """Run `other` on a connection of its own while `write`'s transaction is open, check
    that it waits for that transaction, commit it, and return what `other` returned."""
    opened, commit = threading.Event(), threading.Event()

    def hold():
        try:
            with transaction.atomic():
                write()
                opened.set()
                commit.wait(10)
        finally:
            connection.close()

    def run():
        try:
            return other()
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=2) as pool:
        holding = pool.submit(hold)
        assert opened.wait(10), "the transaction did not open"
        done = pool.submit(run)
        time.sleep(0.5)  # `other` now waits for the open transaction
        assert not done.done(), "it did not wait for the open transaction"
        commit.set()
        holding.result()
        return done.result()


def samples(text: bytes) -> dict[tuple, float]:
    """{(sample name, labels as sorted pairs): value} of a Prometheus text answer."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text.decode())
        for sample in family.samples
    }


def mail_gone_out() -> dict[str, Order]:
    """Orders for the catalog whose notices went every way, as the admin shows them once
    mail has gone out: sent (one to a 64-character address), refused for good (its address
    suppressed), retrying after a temporary refusal, stopped, still waiting; with a bounce
    and an API key. By address."""
    from customers.models import Customer
    from orders.models import Bounce
    from orders.tests.smtp import smtp_server
    from robots.models import ApiKey

    ApiKey.issue("линия 3")
    waiting = ["ann@example.com", LONG_ADDRESS, "gone@example.com", "later@example.com"]
    place("R2-D2", *waiting)
    place("R2-A1", "bob@example.com", LONG_ADDRESS)
    produce("R2-D2")
    with smtp_server() as server:
        server.refuse["gone@example.com"] = "550 5.1.1 The email account does not exist"
        server.refuse["later@example.com"] = "451 4.3.0 Mailbox busy, try again later"
        drain()
    outbox.stop(Customer.objects.get(email="bob@example.com").pk)
    orders = {o.customer.email: o for o in Order.objects.select_related("customer")}
    outbox.bounced(orders["ann@example.com"], Bounce.Kind.SOFT, "4.2.2", "mailbox full")
    return orders
