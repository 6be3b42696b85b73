from datetime import UTC, datetime, timedelta

from django import forms
from django.core.validators import RegexValidator
from django.utils import timezone

from robots.models import validate_name

CREATED_FORMAT = "%Y-%m-%d %H:%M:%S"
# A production line's clock may run a little ahead of ours; a robot from tomorrow is a bug.
CLOCK_SKEW = timedelta(minutes=5)
# Nothing was produced before the factory existed; also keeps year 0001 away from
# time-zone arithmetic that would overflow.
EARLIEST = datetime(2000, 1, 1)


class RobotForm(forms.Form):
    """A robot as the production line reports it, names in catalog (upper) case.

    Whether the catalog has the pair is for Robot.objects.produce to say, in its INSERT.
    """

    model = forms.CharField(strip=False, validators=[validate_name])
    version = forms.CharField(strip=False, validators=[validate_name])
    created = forms.CharField(
        strip=False,
        validators=[
            RegexValidator(
                r"\A\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\Z",
                "Must be a time written exactly as YYYY-MM-DD hh:mm:ss.",
            )
        ],
    )

    def clean_created(self) -> datetime:
        raw = self.cleaned_data["created"]
        try:
            naive = datetime.strptime(raw, CREATED_FORMAT)
        except ValueError:
            raise forms.ValidationError(f"{raw} is not a real moment in the calendar.")
        if naive < EARLIEST:
            raise forms.ValidationError(f"Must not be before {EARLIEST:%Y-%m-%d}.")
        # In the repeated hour of an autumn change the first occurrence is taken (fold=0):
        # the line's clock says no more, and a robot must not be refused for it.
        created = timezone.make_aware(naive)
        # Through UTC and back: a time the clocks skipped comes back as another time.
        back = created.astimezone(UTC).astimezone(created.tzinfo).replace(tzinfo=None)
        if back != naive:
            raise forms.ValidationError(
                f"{raw} does not exist in {timezone.get_current_timezone_name()}: "
                "the clocks skipped that hour."
            )
        if created > timezone.now() + CLOCK_SKEW:
            raise forms.ValidationError(f"{raw} is in the future.")
        return created

    def clean_model(self) -> str:
        return self.cleaned_data["model"].upper()

    def clean_version(self) -> str:
        return self.cleaned_data["version"].upper()
