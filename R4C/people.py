"""The admin's pages of users and groups, in Russian: Django's, with R4C's counted deletions,
permissions named in Russian and no English left in their lists. Registered in place of
Django's once every app's admin.py has run (R4C.apps)."""

from django.contrib import admin
from django.contrib.auth import admin as auth_admin
from django.contrib.auth.models import Group, Permission, User
from django.utils.text import capfirst

from R4C.admin import CountedDeletionMixin

# What a permission allows, by its codename's first word: Django names permissions in English
# when it makes them ("Can add робот").
ACTIONS = {"add": "добавление", "change": "изменение", "delete": "удаление", "view": "просмотр"}


def permission_label(permission: Permission) -> str:
    model = permission.content_type.model_class()
    action = ACTIONS.get(permission.codename.partition("_")[0])
    if model is None or action is None:
        return permission.name
    return f"{capfirst(model._meta.verbose_name_plural)}: {action}"


class RussianPermissionsMixin:
    """Permissions listed in Russian, on the user's and the group's pages."""

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        field = super().formfield_for_manytomany(db_field, request, **kwargs)
        if db_field.name in ("permissions", "user_permissions"):
            field.label_from_instance = permission_label
        return field


class UserAdmin(CountedDeletionMixin, RussianPermissionsMixin, auth_admin.UserAdmin):
    list_display = ["username", "email", "first_name", "last_name", "staff"]

    @admin.display(description="статус персонала", ordering="is_staff")
    def staff(self, user: User) -> str:
        # In words: Django's yes/no icon says "True" to a screen reader.
        return "да" if user.is_staff else "нет"


class GroupAdmin(CountedDeletionMixin, RussianPermissionsMixin, auth_admin.GroupAdmin):
    pass


def speak_russian_of_people(site: admin.AdminSite) -> None:
    """Put R4C's admins of users and groups in the place of Django's (after autodiscovery)."""
    for model, model_admin in ((User, UserAdmin), (Group, GroupAdmin)):
        site.unregister(model)
        site.register(model, model_admin)
