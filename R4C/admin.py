"""What every R4C admin page shares."""

from collections import Counter

from axes.models import AccessAttempt
from django.contrib.admin.utils import NestedObjects
from django.contrib.auth.signals import user_logged_in
from django.db import router
from django.dispatch import receiver

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
