from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models, transaction

from robots.signals import robot_produced

# Two letters or digits, so that the serial `R2-D2` always splits one way.
validate_name = RegexValidator(
    r"\A[A-Za-z0-9]{2}\Z", "Must be exactly two characters, letters or digits (e.g. R2)."
)


class UpperCaseFormField(forms.CharField):
    def to_python(self, value):
        return super().to_python(value).upper()


class NameField(models.CharField):
    """A catalog name, stored upper case: `r2` and `R2` name the same robot model."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("max_length", 2)
        kwargs.setdefault("validators", [validate_name])
        super().__init__(*args, **kwargs)

    def to_python(self, value):
        value = super().to_python(value)
        return value.upper() if value else value

    def get_prep_value(self, value):
        return self.to_python(super().get_prep_value(value))

    def formfield(self, **kwargs):
        # Upper case already in the form, so that the admin's uniqueness checks compare
        # what will be stored (`d2` and `D2` in one formset are the same version).
        return super().formfield(**{"form_class": UpperCaseFormField, **kwargs})


class CatalogEntry(models.Model):
    class Meta:
        abstract = True

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        # A name already stamped on robots stays: their serials, the stock that
        # customers wait for and the weekly report all go by it.
        stored = type(self).objects.filter(pk=self.pk).values_list("name", flat=True).first()
        if stored not in (None, self.name) and self.robots.exists():
            raise ValidationError(
                {"name": f"{stored} is on robots already produced and cannot be renamed."}
            )


class Model(CatalogEntry):
    name = NameField(unique=True)

    class Meta:
        ordering = ["name"]


class Version(CatalogEntry):
    model = models.ForeignKey(Model, on_delete=models.PROTECT, related_name="versions")
    name = NameField()

    class Meta:
        ordering = ["model__name", "name"]
        constraints = [
            models.UniqueConstraint(fields=["model", "name"], name="unique_version_per_model")
        ]

    @property
    def serial(self) -> str:
        return f"{self.model.name}-{self.name}"


class Robot(models.Model):
    # PROTECT: a catalog entry that robots were produced under cannot be deleted, so the
    # production history never loses rows or names silently.
    model = models.ForeignKey(Model, on_delete=models.PROTECT, related_name="robots")
    version = models.ForeignKey(Version, on_delete=models.PROTECT, related_name="robots")
    serial = models.CharField(max_length=5, editable=False)
    created = models.DateTimeField()

    class Meta:
        indexes = [
            # The weekly report: robots produced since a moment, counted by serial from
            # the index alone.
            models.Index(fields=["created", "serial"], name="robot_created_serial_idx"),
            # Stock: is there a robot of this serial?
            models.Index(fields=["serial"], name="robot_serial_idx"),
        ]

    def __str__(self) -> str:
        return self.serial

    def clean(self) -> None:
        if self.version_id and self.model_id and self.version.model_id != self.model_id:
            raise ValidationError({"version": f"{self.version} is not a version of {self.model}."})

    def save(self, *args, **kwargs) -> None:
        if self.version.model_id != self.model_id:
            raise ValueError(f"{self.version} is not a version of {self.model}.")
        self.serial = self.version.serial
        adding = self._state.adding
        # One transaction for the robot and whatever the listeners of `robot_produced`
        # record, so that a robot never exists without the work its production causes.
        with transaction.atomic(using=kwargs.get("using")):
            super().save(*args, **kwargs)
            if adding:
                robot_produced.send(sender=Robot, robot=self)
