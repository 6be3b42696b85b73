from django import forms
from django.core.validators import RegexValidator

from robots.models import Version


class OrderForm(forms.Form):
    """A customer's order: `email` and `robot-serial` (MODEL-VERSION, in the catalog).

    cleaned_data["robot_serial"] is the serial in catalog (upper) case.
    """

    email = forms.EmailField(max_length=254)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The field's public name has a hyphen, which a class attribute cannot have.
        self.fields["robot-serial"] = forms.CharField(
            max_length=5,
            validators=[
                RegexValidator(
                    r"\A[A-Za-z0-9]{2}-[A-Za-z0-9]{2}\Z",
                    "Must be a serial MODEL-VERSION, two letters or digits each (e.g. R2-D2).",
                )
            ],
        )

    def clean(self) -> dict:
        data = super().clean()
        serial = data.get("robot-serial")
        if serial:
            serial = serial.upper()
            model, version = serial.split("-")
            if not Version.objects.filter(model__name=model, name=version).exists():
                self.add_error("robot-serial", f"The catalog has no robot {serial}.")
            data["robot_serial"] = serial
        return data
