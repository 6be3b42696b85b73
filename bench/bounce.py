"""How long `manage.py bounce` takes per message, one process each, as an MTA runs it.

    .venv/bin/python bench/bounce.py                 # SQLite file bench/bounce.sqlite3
    .venv/bin/python bench/bounce.py --count 100
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/r4c_bench .venv/bin/python bench/bounce.py

Makes --count sent notices, then feeds a Postfix DSN for each (tagged as BOUNCE_ADDRESS tags
it) to `manage.py bounce`, a process per message, --jobs at a time; then the same messages
handled in this one process, to show what the process start costs. Prints both per message.
"""

import argparse
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from string import Template

from common import ROOT, setup_django

os.environ["BOUNCE_ADDRESS"] = "bounces@r4c.example.com"  # the notices' tagged senders
setup_django("bounce.sqlite3")

from django.core.management import call_command
from django.utils import timezone
from world import reset

from customers.models import Customer
from orders.mail import bounces
from orders.models import Order, State, Suppression
from robots.models import Model, Version

FIXTURE = ROOT / "orders" / "tests" / "bounces" / "postfix.eml"


def notices(count: int) -> list[bytes]:
    """`count` sent notices, and the DSN that comes back about each."""
    reset()
    version = Version.objects.create(model=Model.objects.create(name="R2"), name="D2")
    customers = Customer.objects.bulk_create(
        Customer(email=f"gone{n}@example.com", email_key=f"gone{n}@example.com")
        for n in range(count)
    )
    now = timezone.now()
    orders = Order.objects.bulk_create(
        Order(customer=c, version=version, robot_serial="R2-D2", state=State.SENT, notified_at=now)
        for c in customers
    )
    template = Template(FIXTURE.read_text())
    return [
        template.substitute(
            TO=bounces.envelope_sender(order.pk),
            ADDRESS=order.customer.email,
            MESSAGE_ID=f"<notice.{order.pk}.0@r4c.example.com>",
        ).encode()
        for order in orders
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=2, help="processes at a time")
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}

    def one(raw: bytes) -> None:
        subprocess.run(
            [sys.executable, "manage.py", "bounce"],
            input=raw, cwd=ROOT, env=env, check=True, capture_output=True,
        )  # fmt: skip

    messages = notices(args.count)
    started = time.perf_counter()
    with ThreadPoolExecutor(args.jobs) as pool:
        list(pool.map(one, messages))
    processes = time.perf_counter() - started
    assert Suppression.objects.count() == args.count, Suppression.objects.count()

    messages = notices(args.count)
    started = time.perf_counter()
    for raw in messages:
        bounces.handle(raw, [])
    in_process = time.perf_counter() - started
    assert Suppression.objects.count() == args.count

    print(
        f"manage.py bounce, {args.count} Postfix DSNs on {os.environ['DATABASE_URL'][:10]}…, "
        f"{time.strftime('%Y-%m-%d %H:%M')}\n\n"
        "| how | per message | messages/s |\n| --- | --- | --- |\n"
        f"| a process each, {args.jobs} at a time (as an MTA runs it) "
        f"| {processes / args.count * 1000:.0f} ms | {args.count / processes:,.1f} |\n"
        f"| one process, handled in turn | {in_process / args.count * 1000:.1f} ms "
        f"| {args.count / in_process:,.0f} |"
    )


if __name__ == "__main__":
    main()
