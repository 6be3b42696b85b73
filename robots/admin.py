from django.contrib import admin, messages
from django.db.models import Count, Prefetch

from R4C.admin import CountedDeletionMixin
from robots.models import ApiKey, Model, Robot, Version


class VersionInline(admin.TabularInline):
    model = Version
    extra = 1
    fields = ["name", "robot_count"]
    readonly_fields = ["robot_count"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(robot_count=Count("robots"))

    @admin.display(description="произведено роботов")
    def robot_count(self, version: Version) -> int | str:
        return getattr(version, "robot_count", "")  # nothing in the empty row for a new one


@admin.register(Model)
class ModelAdmin(CountedDeletionMixin, admin.ModelAdmin):
    list_display = ["name", "versions_and_robots"]
    search_fields = ["name"]
    inlines = [VersionInline]

    def get_queryset(self, request):
        versions = Version.objects.annotate(robot_count=Count("robots")).order_by("name")
        return super().get_queryset(request).prefetch_related(Prefetch("versions", versions))

    @admin.display(description="версии (произведено роботов)")
    def versions_and_robots(self, obj: Model) -> str:
        return ", ".join(f"{v.name} ({v.robot_count})" for v in obj.versions.all())


@admin.register(Robot)
class RobotAdmin(CountedDeletionMixin, admin.ModelAdmin):
    """Produced robots are the factory's records: only a superuser may add, change or
    delete one by hand; other staff see them."""

    list_display = ["serial", "created"]
    list_filter = ["model"]
    date_hierarchy = "created"
    search_fields = ["serial"]
    ordering = ["-created"]
    list_select_related = ["model", "version"]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "version":  # labelled R2-A1: the model's name is in each label
            kwargs["queryset"] = Version.objects.select_related("model")
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def has_add_permission(self, request) -> bool:
        return request.user.is_superuser

    def has_change_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser


class RevokedFilter(admin.SimpleListFilter):
    title, parameter_name = "отозван", "revoked"

    def lookups(self, request, model_admin):
        return [("yes", "Да"), ("no", "Нет")]

    def queryset(self, request, queryset):
        if self.value() in ("yes", "no"):
            return queryset.filter(revoked_at__isnull=self.value() == "no")
        return queryset


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Keys for machines: shown once when created, then only their name and use."""

    list_display = ["name", "created_at", "last_used_at", "revoked_at"]
    list_filter = [RevokedFilter]
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
                f"Ключ для «{obj.name}»: {obj.text(secret)} — скопируйте его сейчас, больше "
                "он не будет показан. Его посылают в заголовке Authorization: Bearer <ключ>.",
                messages.WARNING,
            )

    @admin.action(description="Отозвать выбранные ключи")
    def revoke(self, request, queryset):
        count = ApiKey.revoke(queryset)
        self.message_user(
            request,
            f"Отозвано ключей: {count}. Запросы с ними отклоняются не позже чем через секунду.",
            messages.SUCCESS,
        )
