import hashlib
import hmac
import re
import secrets
import time
from contextlib import nullcontext
from datetime import timedelta

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import IntegrityError, connection, models, transaction
from django.db.models import Lookup
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.http import HttpResponse
from django.utils import timezone

# The one rule for names and serials, which the forms, the report, the API's contract and
# the database's check are built from: a catalog name is two letters or digits, stored upper
# case (a person or a line may write it in lower case), so that the serial that joins a
# model's and a version's names, `R2-D2`, always splits one way.
STORED = "0-9A-Z"
NAME = f"[{STORED}a-z]{{2}}"  # as written
SERIAL = re.compile(f"[{STORED}]{{2}}-[{STORED}]{{2}}")  # as stored
validate_name = RegexValidator(
    rf"\A{NAME}\Z", "Must be exactly two characters, letters or digits (e.g. R2)."
)
validate_serial = RegexValidator(
    rf"\A{NAME}-{NAME}\Z",
    "Must be a serial MODEL-VERSION, two letters or digits each (e.g. R2-D2).",
)


def serial_of(model: str, version: str) -> str:
    return f"{model}-{version}"


def split_serial(serial: str) -> tuple[str, str]:
    """(model, version) of a serial that validate_serial or SERIAL passed."""
    model, _, version = serial.partition("-")
    return model, version


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


@NameField.register_lookup
class IsCatalogName(Lookup):
    """`name__is_catalog_name=True`: two of 0-9 and A-Z, checked by the database itself.

    Backs a check constraint, so that no path (a shell, raw SQL, a bulk update) can store a
    name that would break serials or the report. GLOB and `~` are built in, unlike SQLite's
    REGEXP, which exists only on connections that Django opened.
    """

    lookup_name = "is_catalog_name"
    prepare_rhs = False

    def as_sql(self, compiler, connection):
        lhs, params = self.process_lhs(compiler, connection)
        if self.rhs is not True:
            raise ValueError("is_catalog_name takes True only.")
        if connection.vendor == "sqlite":
            return f"{lhs} GLOB '[{STORED}][{STORED}]'", params
        return f"{lhs} ~ '^[{STORED}][{STORED}]$'", params


def catalog_name_constraint(name: str) -> models.CheckConstraint:
    return models.CheckConstraint(condition=models.Q(name__is_catalog_name=True), name=name)


class ExpiringCache:
    """What this process looked up lately, each for `seconds`: a memory that other processes
    need not clear, because it forgets on its own. Kept where make bench shows it pays: a
    version by serial (an order on PostgreSQL, 0.47 → 0.72 of the bare two-row insert) and
    an API key (a robot with its key on PostgreSQL, 0.74 → 0.88 of the bare insert)."""

    def __init__(self, seconds: float):
        self.seconds, self._kept = seconds, {}

    def get(self, key):
        kept = self._kept.get(key)
        return kept[1] if kept and time.monotonic() - kept[0] < self.seconds else None

    def keep(self, key, value) -> None:
        self._kept[key] = (time.monotonic(), value)

    def forget(self, key=None) -> None:
        if key is None:
            self._kept.clear()
        else:
            self._kept.pop(key, None)


class CatalogEntry(models.Model):
    class Meta:
        abstract = True

    def __str__(self) -> str:
        return self.name

    def users(self) -> list[tuple[str, int]]:
        """What goes by this name: (plural verbose name, count) for each kind of record.

        Every relation that protects this entry from deletion counts (robots here; the orders
        app adds its orders), so the catalog needs to know nothing of who refers to it.
        """
        found = []
        for relation in self._meta.related_objects:
            if relation.on_delete is not models.PROTECT:
                continue
            related = relation.related_model
            count = related._base_manager.filter(**{relation.field.name: self}).count()
            if count:
                found.append((str(related._meta.verbose_name_plural), count))
        return found

    def refuse_rename(self) -> None:
        """Raise ValidationError if this unsaved name change would orphan what uses the name.

        Serials of robots already produced, the orders that wait for a serial and the weekly
        report all go by the stored name.
        """
        if self.pk is None:
            return
        fields = self.NAMED_BY
        stored = type(self)._base_manager.filter(pk=self.pk).values_list(*fields).first()
        if stored is None or stored == tuple(getattr(self, f) for f in fields):
            return
        users = self.users()
        if users:
            said = ", ".join(f"{what}: {count}" for what, count in users)
            old = type(self)._base_manager.get(pk=self.pk)
            # Said to a manager in the admin, in the admin's language.
            raise ValidationError(
                {"name": f"{old} нельзя переименовать: это имя носят {said}."}, code="in_use"
            )

    def clean(self) -> None:
        # The database refuses the rename whatever writes it (orders migration 0013); this
        # says why in the admin's form, in the admin's language.
        self.refuse_rename()


class Model(CatalogEntry):
    name = NameField("название", unique=True)
    NAMED_BY = ("name",)

    class Meta:
        verbose_name, verbose_name_plural = "модель", "модели"
        ordering = ["name"]
        constraints = [catalog_name_constraint("model_name_is_two_letters_or_digits")]

    def users(self) -> list[tuple[str, int]]:
        # A model's name is in the serial of each of its versions, and every robot of the
        # model is a robot of one of them: the versions' users are the model's.
        found: dict[str, int] = {}
        for version in self.versions.all():
            for what, count in version.users():
                found[what] = found.get(what, 0) + count
        return list(found.items())


class Version(CatalogEntry):
    model = models.ForeignKey(
        Model, on_delete=models.PROTECT, related_name="versions", verbose_name="модель"
    )
    name = NameField("версия")
    # Moving a version to another model changes its serial just as renaming it does.
    NAMED_BY = ("model_id", "name")

    class Meta:
        verbose_name, verbose_name_plural = "версия", "версии"
        ordering = ["model__name", "name"]
        constraints = [
            models.UniqueConstraint(fields=["model", "name"], name="unique_version_per_model"),
            catalog_name_constraint("version_name_is_two_letters_or_digits"),
        ]

    def __str__(self) -> str:
        return self.serial

    @classmethod
    def catalog(cls) -> models.QuerySet["Version"]:
        """Every version with its model, each with `in_stock`: is a robot of it produced?"""
        produced = Robot.objects.filter(version=models.OuterRef("pk"))
        return cls.objects.select_related("model").annotate(in_stock=models.Exists(produced))

    # The version lock, on PostgreSQL (SQLite serialises every write transaction anyway):
    # locks the version %(version)s against robots of it being written, until the
    # transaction ends: one in flight commits first, and later ones wait for this
    # transaction. Its key, (LOCK_KEY, version id), is in PostgreSQL's lock manager: every
    # robot write takes it shared, in the check trigger of orders migration 0016 (a test
    # reads the installed triggers back for the key).
    LOCK_KEY = 7431
    LOCK = f"SELECT pg_advisory_xact_lock({LOCK_KEY}, %(version)s::integer)"

    # Versions looked up by serial in this process lately. Every order names its robot by
    # serial, and the catalog changes seldom: a change reaches this process at once (the
    # signals below) and others within a second, in which an order for a version renamed or
    # deleted elsewhere is refused (see outbox.place).
    recent = ExpiringCache(seconds=1.0)

    @classmethod
    def by_serial(cls, serial: str) -> "Version | None":
        """The version whose serial is `serial` (MODEL-VERSION, upper case), with its model."""
        version = cls.recent.get(serial)
        if version is None:
            model, name = split_serial(serial)
            version = cls.objects.select_related("model").filter(model__name=model, name=name)
            version = version.first()
            if version is not None:
                cls.recent.keep(serial, version)
        return version

    @property
    def serial(self) -> str:
        return serial_of(self.model.name, self.name)


@receiver([post_save, post_delete], sender=Version, dispatch_uid="robots.version_changed")
@receiver([post_save, post_delete], sender=Model, dispatch_uid="robots.model_changed")
def _catalog_changed(**kwargs) -> None:
    Version.recent.forget()


class RobotManager(models.Manager):
    def produce(self, model: str, version: str, created, then=None) -> "Robot | None":
        """Record a robot of catalog `model`-`version` (upper case); None if there is none.
        `then(robot)`, if given, runs in the robot's transaction (an idempotent robot's
        answer is written with it).

        The production line's hot path: the catalog entry from this process's memory
        (Version.by_serial), then one INSERT, in autocommit. The database's check (orders
        migrations 0013, 0016) holds here as for every robot: the serial is the version's,
        and the version is locked (shared) while the robot is inserted, so a version renamed
        elsewhere a moment ago is refused there, not recorded under its old name; then the
        version is looked up afresh, once.
        """
        serial = serial_of(model, version)
        for looked_again in (False, True):
            found = Version.by_serial(serial)
            if found is None:
                return None
            robot = Robot(model_id=found.model_id, version=found, created=created)
            try:  # with its answer in one transaction; a savepoint within a caller's
                with transaction.atomic() if then or connection.in_atomic_block else nullcontext():
                    robot.save()
                    if then:
                        then(robot)
                return robot
            except IntegrityError:  # renamed, or deleted and made anew, since looked up
                Version.recent.forget(serial)
                if looked_again:
                    return None


class Robot(models.Model):
    # PROTECT: a catalog entry that robots were produced under cannot be deleted, so the
    # production history never loses rows or names silently.
    model = models.ForeignKey(
        Model, on_delete=models.PROTECT, related_name="robots", verbose_name="модель"
    )
    version = models.ForeignKey(
        Version, on_delete=models.PROTECT, related_name="robots", verbose_name="версия"
    )
    serial = models.CharField("серия", max_length=5, editable=False)
    created = models.DateTimeField("произведён")

    objects = RobotManager()

    class Meta:
        verbose_name, verbose_name_plural = "робот", "роботы"
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
        # The database locks the version (shared) for the INSERT: see Version.LOCK.
        super().save(*args, **kwargs)


class ApiKey(models.Model):
    """A machine's key to the API (a production line, a reporting job); stored as a hash.

    The key is `r4c_<id>_<secret>`: the id finds the row, and the secret's SHA-256 is compared
    in constant time. A random 256-bit secret needs no slow hash: nothing can be guessed.
    """

    name = models.CharField(
        "название", max_length=100, help_text="Чей это ключ, например «линия 3»."
    )
    digest = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField("создан", auto_now_add=True)
    last_used_at = models.DateTimeField("использован", null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField("отозван", null=True, blank=True)

    class Meta:
        verbose_name, verbose_name_plural = "API-ключ", "API-ключи"

    def __str__(self) -> str:
        return self.name

    @staticmethod
    def _digest(secret: str) -> str:
        return hashlib.sha256(secret.encode()).hexdigest()

    def new_secret(self) -> str:
        """Give this unsaved key a secret; after save(), `text(secret)` is the key to hand out."""
        secret = secrets.token_urlsafe(32)
        self.digest = self._digest(secret)
        return secret

    def text(self, secret: str) -> str:
        return f"r4c_{self.pk}_{secret}"

    @classmethod
    def issue(cls, name: str) -> tuple["ApiKey", str]:
        """A new key: (its row, the key itself, which is shown once and never stored)."""
        key = cls(name=name)
        secret = key.new_secret()
        key.save()
        return key, key.text(secret)

    # Keys checked in this process lately, by id. A production line posting
    # all day costs the database no round trip for its key; a key revoked elsewhere stops
    # working here within a second (in this process: at once, see revoke).
    checked = ExpiringCache(seconds=1.0)

    @classmethod
    def authenticate(cls, presented: str) -> "ApiKey | None":
        """The live key that `presented` is, or None (malformed, wrong, revoked)."""
        prefix, _, rest = presented.partition("_")
        pk, _, secret = rest.partition("_")
        if prefix != "r4c" or not (pk.isascii() and pk.isdigit()) or not secret or len(pk) > 18:
            return None
        pk, digest = int(pk), cls._digest(secret)
        key = cls.checked.get(pk)
        if key is None or not hmac.compare_digest(key.digest, digest):
            key = cls._check(pk)  # new here, or remembered from before its id was reused
        return key if key is not None and hmac.compare_digest(key.digest, digest) else None

    @classmethod
    def _check(cls, pk: int) -> "ApiKey | None":
        """The live key from the database, remembered for a second. Its last use is written
        at most once a minute: a line posting every second costs no write each."""
        now = timezone.now()
        key = cls.objects.filter(pk=pk, revoked_at__isnull=True).first()
        if key is None:
            cls.checked.forget(pk)
            return None
        if key.last_used_at is None or key.last_used_at < now - timedelta(minutes=1):
            cls.objects.filter(pk=pk).update(last_used_at=now)
        cls.checked.keep(pk, key)
        return key

    @classmethod
    def revoke(cls, keys: models.QuerySet["ApiKey"]) -> int:
        """Revoke live `keys`: this process refuses them at once, others within a second."""
        pks = list(keys.filter(revoked_at__isnull=True).values_list("pk", flat=True))
        for pk in pks:
            cls.checked.forget(pk)
        return cls.objects.filter(pk__in=pks).update(revoked_at=timezone.now())


class IdempotentAnswer(models.Model):
    """The answer to a POST /add_robot/ that came with an Idempotency-Key, kept for a day.

    A production line that timed out and sends the same robot again with the same key gets
    this answer again instead of a second robot.
    """

    KEPT = timedelta(days=1)

    # The API key's id, or "" where keys are not required: one line's keys are its own.
    scope = models.CharField(max_length=20)
    key = models.CharField(max_length=255)
    digest = models.CharField(max_length=64)  # SHA-256 of the request's body
    status = models.PositiveSmallIntegerField()
    body = models.TextField()  # the answer's JSON, character for character as first sent
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name, verbose_name_plural = "сохранённый ответ", "сохранённые ответы"
        constraints = [models.UniqueConstraint(fields=["scope", "key"], name="one_answer_per_key")]

    class Taken(Exception):
        """The key has an answer already (perhaps an expired one)."""

    @classmethod
    def earlier(cls, scope: str, key: str) -> "IdempotentAnswer | None":
        since = timezone.now() - cls.KEPT
        return cls.objects.filter(scope=scope, key=key, created_at__gte=since).first()

    @classmethod
    def keep(cls, scope: str, key: str, digest: str, answer: HttpResponse) -> None:
        """In the robot's transaction; Taken if the key has an answer (another request took
        it first, or an expired answer holds it: `forget_expired`)."""
        try:
            cls.objects.create(
                scope=scope,
                key=key,
                digest=digest,
                status=answer.status_code,
                body=answer.content.decode(),
            )
        except IntegrityError:
            raise cls.Taken(key) from None

    @classmethod
    def forget_expired(cls, scope: str, key: str) -> None:
        cls.objects.filter(scope=scope, key=key, created_at__lt=timezone.now() - cls.KEPT).delete()

    @classmethod
    def purge(cls) -> int:
        """Forget answers older than a day (the notice worker calls this now and then)."""
        return cls.objects.filter(created_at__lt=timezone.now() - cls.KEPT).delete()[0]
