"""What the notice benchmarks build and wait for; import after Django is set up."""

import asyncio
import time

from django.db import transaction

from customers.models import Customer, inbox, normalize_address
from orders.models import Arrival, Order
from robots.models import Model, Robot, Version


class Clock:
    """aiosmtpd handler that notes when each recipient's message was accepted."""

    def __init__(self):
        self.accepted = {}
        self.per_message = 0.0

    async def handle_DATA(self, server, session, envelope):
        await asyncio.sleep(self.per_message)
        for address in envelope.rcpt_tos:
            self.accepted[address] = time.perf_counter()
        return "250 OK"


def reset() -> None:
    Order.objects.all().delete()
    Arrival.objects.all().delete()
    Customer.objects.all().delete()
    Robot.objects.all().delete()
    Version.objects.all().delete()
    Model.objects.all().delete()


def wait_orders(version: Version, emails: list[str]) -> None:
    """These addresses wait for `version` (bulk, as if each had placed an order)."""
    with transaction.atomic():
        customers = Customer.objects.bulk_create(
            Customer(email=email, email_key=normalize_address(email)[1], inbox=inbox(email))
            for email in emails
        )
        Order.objects.bulk_create(
            Order(customer=c, version=version, robot_serial=version.serial) for c in customers
        )


def wait_until(condition, seconds: float, step: float = 0.005) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit("the worker did not deliver in time")
        time.sleep(step)
