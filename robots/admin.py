from django.contrib import admin, messages
from django.utils import timezone

from R4C.admin import CountedDeletionMixin
from robots.models import ApiKey, Model, Robot, Version


class VersionInline(admin.TabularInline):
    model = Version
    extra = 1


@admin.register(Model)
class ModelAdmin(CountedDeletionMixin, admin.ModelAdmin):
    list_display = ["name", "version_names"]
    search_fields = ["name"]
    inlines = [VersionInline]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("versions")

    @admin.display(description="versions")
    def version_names(self, obj: Model) -> str:
        return ", ".join(version.name for version in obj.versions.all())


@admin.register(Robot)
class RobotAdmin(CountedDeletionMixin, admin.ModelAdmin):
    list_display = ["serial", "created"]
    list_filter = ["model"]
    date_hierarchy = "created"
    search_fields = ["serial"]
    ordering = ["-created"]
    list_select_related = ["model", "version"]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Keys for machines: shown once when created, then only their name and use."""

    list_display = ["name", "created_at", "last_used_at", "revoked_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    readonly_fields = ["created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def get_fields(self, request, obj=None):
        return ["name"] if obj is None else ["name", *self.readonly_fields]

    def save_model(self, request, obj, form, change):
        secret = None if change else obj.new_secret()
        super().save_model(request, obj, form, change)
        if secret:
            self.message_user(
                request,
                f"The key for {obj.name}: {obj.text(secret)} — copy it now; it is not shown "
                "again. Send it as Authorization: Bearer <key>.",
                messages.WARNING,
            )

    @admin.action(description="Revoke the selected keys")
    def revoke(self, request, queryset):
        count = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(request, f"{count} key(s) revoked.", messages.SUCCESS)
