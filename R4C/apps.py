from axes.apps import AppConfig as AxesAppConfig
from django.contrib.admin.apps import AdminConfig


class R4CAdminConfig(AdminConfig):
    """Django's admin, on R4C's own site (R4C.admin.R4CAdminSite), users and groups in
    Russian."""

    default_site = "R4C.admin.R4CAdminSite"

    def ready(self) -> None:
        super().ready()  # every app's admin.py, auth's included
        from django.contrib import admin

        from R4C.people import speak_russian_of_people

        speak_russian_of_people(admin.site)


class AxesConfig(AxesAppConfig):
    """django-axes, the admin's login lockout, named in Russian in the admin (superusers):
    its section, and each record's title, which it writes in English in code."""

    verbose_name = "Вход в админку"

    def ready(self) -> None:
        super().ready()
        from axes.models import AccessAttempt, AccessFailureLog, AccessLog
        from django.utils.timezone import localtime

        def said(kind: str):
            return lambda row: (
                f"{kind}: {row.username}, {localtime(row.attempt_time):%d.%m.%Y %H:%M:%S}"
            )

        AccessLog.__str__ = said("вход")
        AccessAttempt.__str__ = said("неудачные входы")
        AccessFailureLog.__str__ = said("неудачный вход")
