"""A robot as the production line reports it: the rules of its fields."""

from datetime import UTC, datetime, timedelta

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.utils import timezone

from robots.models import validate_name

CREATED_FORMAT = "%Y-%m-%d %H:%M:%S"
# A production line's clock may run a little ahead of ours; a robot from tomorrow is a bug.
CLOCK_SKEW = timedelta(minutes=5)
# Nothing was produced before the factory existed; also keeps year 0001 away from
# time-zone arithmetic that would overflow.
EARLIEST = datetime(2000, 1, 1)

validate_created = RegexValidator(
    r"\A\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\Z",
    "Must be a time written exactly as YYYY-MM-DD hh:mm:ss.",
)


def clean_robot(data: dict[str, str]) -> dict:
    """The robot's `model` and `version`, in catalog (upper) case, and `created`, an aware
    datetime, from its fields (strings); else ValidationError with each wrong field's
    messages. Whether the catalog has the pair is for Robot.objects.produce to say."""
    robot, errors = {}, {}
    for field, clean in [("model", _name), ("version", _name), ("created", _created)]:
        try:
            robot[field] = clean(data[field])
        except ValidationError as error:
            errors[field] = error.messages
    if errors:
        raise ValidationError(errors)
    return robot


def _name(raw: str) -> str:
    validate_name(raw)
    return raw.upper()


def _created(raw: str) -> datetime:
    validate_created(raw)
    try:
        naive = datetime.strptime(raw, CREATED_FORMAT)
    except ValueError:
        raise ValidationError(f"{raw} is not a real moment in the calendar.") from None
    if naive < EARLIEST:
        raise ValidationError(f"Must not be before {EARLIEST:%Y-%m-%d}.")
    # In the repeated hour of an autumn change the first occurrence is taken (fold=0):
    # the line's clock says no more, and a robot must not be refused for it.
    created = timezone.make_aware(naive)
    # Through UTC and back: a time the clocks skipped comes back as another time.
    back = created.astimezone(UTC).astimezone(created.tzinfo).replace(tzinfo=None)
    if back != naive:
        raise ValidationError(
            f"{raw} does not exist in {timezone.get_current_timezone_name()}: "
            "the clocks skipped that hour."
        )
    if created > timezone.now() + CLOCK_SKEW:
        raise ValidationError(f"{raw} is in the future.")
    return created
