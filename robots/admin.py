from django.contrib import admin

from R4C.admin import CountedDeletionMixin
from robots.models import Model, Robot, Version


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
