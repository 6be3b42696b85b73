from django import forms
from django.core.validators import RegexValidator

from customers.models import normalize_address
from robots.models import Version


class AddressField(forms.CharField):
    """One deliverable mailbox; cleans to its normalised form (see normalize_address)."""

    def __init__(self, **kwargs):
        super().__init__(max_length=254, **kwargs)

    def clean(self, value) -> str:
        address, _ = normalize_address(super().clean(value))
        return address


class SerialField(forms.CharField):
    """MODEL-VERSION of a robot in the catalog, in any case; cleans to the Version."""

    def __init__(self, **kwargs):
        super().__init__(
            max_length=5,
            validators=[
                RegexValidator(
                    r"\A[A-Za-z0-9]{2}-[A-Za-z0-9]{2}\Z",
                    "Must be a serial MODEL-VERSION, two letters or digits each (e.g. R2-D2).",
                )
            ],
            **kwargs,
        )

    def clean(self, value) -> Version:
        serial = super().clean(value).upper()
        version = Version.by_serial(serial)
        if version is None:
            raise forms.ValidationError(f"The catalog has no robot {serial}.")
        return version


class OrderForm(forms.Form):
    """A customer's order: `email` and `robot-serial`.

    cleaned_data["email"] is the normalised address, cleaned_data["robot-serial"] the Version.
    """

    email = AddressField()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The field's public name has a hyphen, which a class attribute cannot have.
        self.fields["robot-serial"] = SerialField()
