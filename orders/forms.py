from django import forms

from customers.models import normalize_address
from robots.models import Version, validate_serial


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
        super().__init__(max_length=5, validators=[validate_serial], **kwargs)

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
