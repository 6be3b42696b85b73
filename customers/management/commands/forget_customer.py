from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from customers.models import Customer


class Command(BaseCommand):
    help = (
        "Forget a customer by e-mail address: their orders, notices, links and the address "
        "itself are erased, and the admin's log entries that mention it."
    )

    def add_arguments(self, parser):
        parser.add_argument("address", help="the customer's e-mail address, in any spelling")

    def handle(self, *args, address: str, **options):
        try:
            forgotten, entries = Customer.forget_address(address)
        except ValidationError as error:
            raise CommandError(f"Not an e-mail address: {' '.join(error.messages)}") from None
        # The address is not repeated: this output may end up in logs.
        if forgotten:
            erased = f", and {entries} admin log entries that named them" if entries else ""
            self.stdout.write(self.style.SUCCESS(f"The customer is forgotten{erased}."))
        elif entries:
            self.stdout.write(
                self.style.SUCCESS(
                    f"No customer has that address; {entries} admin log entries that named it "
                    "are erased."
                )
            )
        else:
            raise CommandError("No customer has that address, and nothing names it.")
