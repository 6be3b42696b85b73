"""What every R4C admin page shares."""

from collections import Counter

from axes.models import AccessAttempt
from django.contrib import admin
from django.contrib.admin.utils import NestedObjects
from django.contrib.auth.signals import user_logged_in
from django.db import router
from django.dispatch import receiver
from django.urls import reverse

from R4C.http import client_address


class CountedDeletionMixin:
    """Delete pages that count what goes or holds ("роботы: 12340") instead of listing it.

    Django's page lists every related row, which for a model with years of production is
    a page of thousands of links that nobody reads.
    """

    def get_deleted_objects(self, objs, request):
        collector = NestedObjects(using=router.db_for_write(self.model))
        collector.collect(objs)
        registry = self.admin_site._registry
        perms_needed = {
            model._meta.verbose_name
            for model in collector.model_objs
            if model in registry and not registry[model].has_delete_permission(request)
        }
        model_count = {
            model._meta.verbose_name_plural: len(objects)
            for model, objects in collector.model_objs.items()
            if not model._meta.auto_created  # a many-to-many's own rows: nobody's records
        }
        deleted = [f"{name}: {count}" for name, count in model_count.items()]
        held = Counter(str(type(obj)._meta.verbose_name_plural) for obj in collector.protected)
        protected = [f"{name}: {count}" for name, count in sorted(held.items())]
        return deleted, model_count, perms_needed, protected


@receiver(user_logged_in, dispatch_uid="R4C.admin.forget_own_failures")
def forget_own_failures(sender, request, user, **kwargs) -> None:
    """A good login forgets the failures of its own user name from its client, and no
    others: a manager signing in must not clear a guesser's count for the director."""
    if request is not None:
        AccessAttempt.objects.filter(
            username=user.get_username(), ip_address=client_address(request)
        ).delete()


# The order of the sections a manager works in; what is not named comes after.
SECTIONS = ["robots", "orders", "customers", "auth"]
# For the site's administrators only: the login lockout's logs and the worker's outbox.
INTERNALS = {"axes", "orders.Arrival"}


class R4CAdminSite(admin.AdminSite):
    """The admin as managers use it: the catalog first, the reports in every page's
    sidebar, and what only the site's administrators need kept out of a manager's way."""

    site_header = site_title = "R4C"

    def get_app_list(self, request, app_label=None):
        apps = super().get_app_list(request, app_label)
        if not request.user.is_superuser:
            apps = [app for app in apps if app["app_label"] not in INTERNALS]
            for app in apps:
                app["models"] = [
                    model
                    for model in app["models"]
                    if f"{app['app_label']}.{model['object_name']}" not in INTERNALS
                ]
        apps.sort(
            key=lambda app: (
                SECTIONS.index(app["app_label"]) if app["app_label"] in SECTIONS else len(SECTIONS)
            )
        )
        if app_label is None:
            apps.insert(0, self.reports())
        return apps

    @staticmethod
    def reports() -> dict:
        """The reports, as one more section of the admin's list: on the home page and in the
        sidebar of every page."""
        entries = [
            ("report", "Еженедельный отчёт о производстве", reverse("report")),
            ("download", "Отчёт файлом Excel (.xlsx)", "/download/"),
            ("demand", "Спрос: чего ждут покупатели", reverse("demand")),
        ]
        return {
            "name": "Отчёты",
            "app_label": "reports",
            "app_url": reverse("report"),
            "has_module_perms": True,
            "models": [
                {"name": name, "object_name": key, "admin_url": url, "view_only": True}
                for key, name, url in entries
            ],
        }
