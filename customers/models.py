import unicodedata

import idna
from django.contrib.admin.models import LogEntry
from django.core.exceptions import ValidationError
from django.db import connection, models, transaction
from django.db.models import Q
from django.dispatch import Signal
from email_validator import EmailNotValidError, validate_email


def normalize_address(raw: str) -> tuple[str, str]:
    """(address to store and mail, key that names its mailbox), or ValidationError.

    NFKC first, so that full-width letters or a Kelvin sign are the letters they look like;
    then email-validator checks deliverable syntax, refuses control, format (zero-width,
    bidi) and unassigned characters, lower-cases the domain and encodes it by IDNA 2008
    (`ß` stays `ß`). The part before @ must be ASCII: Django's SMTP backend cannot send
    anything else, and an address that can never be mailed must not be accepted.
    The key is the ASCII form in lower case: one rule, computed here, compared exactly by
    both databases.
    """
    try:
        valid = validate_email(
            unicodedata.normalize("NFKC", raw.strip()),
            check_deliverability=False,  # no DNS look-ups in a request
            allow_smtputf8=False,
        )
    except EmailNotValidError as error:
        raise ValidationError(str(error), code="invalid") from None
    return valid.normalized, valid.ascii_email.lower()


def ascii_address(email: str) -> str:
    """A stored address as mail servers must see it: its domain in IDNA 2008's ASCII form.

    Django's SMTP backend encodes a Unicode domain by Python's `idna` codec (IDNA 2003,
    which turns `straße.de` into `strasse.de`, another domain); an ASCII one it leaves as is.
    """
    local, _, domain = email.rpartition("@")
    return f"{local}@{idna.encode(domain).decode()}" if not domain.isascii() else email


def inbox(email: str) -> str:
    """The inbox an address delivers to, as limits count it (never as mail is sent):
    `ann+shop@x` is `ann@x`, and at gmail.com (googlemail.com alike) dots do not count."""
    local, _, domain = ascii_address(email).lower().rpartition("@")
    local = local.split("+", 1)[0]
    if domain in ("gmail.com", "googlemail.com"):
        local, domain = local.replace(".", ""), "gmail.com"
    return f"{local}@{domain}"


# "This customer is being forgotten", with the Customer as `customer`: sent inside the
# transaction that deletes it, so that apps holding records of it (orders) erase them first.
# customers knows nothing of who listens.
customer_forgotten = Signal()


class Customer(models.Model):
    # As first given, normalised: `Ann@Example.com` is stored as `Ann@example.com`.
    email = models.EmailField("адрес", max_length=254)
    # The mailbox: `ann@example.com` whatever case or Unicode form it was written in.
    email_key = models.CharField(max_length=254, unique=True, editable=False)
    # The inbox it delivers to, for the daily cap: see inbox().
    inbox = models.CharField(max_length=254, db_index=True, editable=False, default="")
    created_at = models.DateTimeField("впервые заказал", auto_now_add=True)
    # Stopped all mail from a notice's one-click link; placing an order again clears it.
    mail_stopped_at = models.DateTimeField("письма остановлены", null=True, blank=True)

    class Meta:
        verbose_name, verbose_name_plural = "покупатель", "покупатели"

    def __str__(self) -> str:
        return self.email

    def clean(self) -> None:
        try:
            _, key = normalize_address(self.email)
        except ValidationError as error:
            raise ValidationError({"email": error.messages}) from None
        if Customer.objects.filter(email_key=key).exclude(pk=self.pk).exists():
            raise ValidationError({"email": "A customer with this mailbox exists already."})

    def save(self, *args, **kwargs) -> None:
        # Every path that writes a customer (admin, shell, a request) stores the same forms.
        self.email, self.email_key = normalize_address(self.email)
        self.inbox = inbox(self.email)
        super().save(*args, **kwargs)

    def forget(self) -> int:
        """Erase this customer and every record of it, the admin's log included (how many
        of its entries)."""
        with transaction.atomic():
            customer_forgotten.send(sender=Customer, customer=self)
            self.delete()
            entries = _forget_mentions(self.email, self.email_key)
        if connection.vendor == "sqlite" and not connection.in_atomic_block:
            # The erased rows are overwritten (secure_delete); their old pages leave the WAL.
            with connection.cursor() as cursor:
                cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return entries

    @classmethod
    def forget_address(cls, address: str) -> tuple[bool, int]:
        """Forget the customer whose mailbox `address` names, and the admin's log entries
        that name it, also when no customer has it any more (deleted in the admin first):
        (was there a customer, how many log entries went)."""
        email, key = normalize_address(address)
        customer = cls.objects.filter(email_key=key).first()
        if customer is None:
            return False, _forget_mentions(email, key)
        return True, customer.forget()


def _forget_mentions(email: str, key: str) -> int:
    """The admin's log names objects by their __str__ (an order's holds the address) and may
    quote changed values: what mentions the mailbox goes with it."""
    mentions = Q(object_repr__icontains=key) | Q(change_message__icontains=key)
    if email.lower() != key:
        mentions |= Q(object_repr__icontains=email)
    return LogEntry.objects.filter(mentions).delete()[0]
