from django.contrib import admin, messages

from orders.models import Notice, Order
from orders.notifications import retry_failed_now


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ["customer", "robot_serial", "is_notified", "created_at", "updated_at"]
    list_filter = ["is_notified"]
    search_fields = ["customer__email", "robot_serial"]
    list_select_related = ["customer"]
    raw_id_fields = ["customer"]


@admin.register(Notice)
class NoticeAdmin(admin.ModelAdmin):
    list_display = ["order", "state", "attempts", "next_attempt_at", "sent_at", "last_error"]
    list_filter = ["state"]
    search_fields = ["order__customer__email", "order__robot_serial"]
    list_select_related = ["order__customer"]
    readonly_fields = [
        "order",
        "state",
        "attempts",
        "next_attempt_at",
        "claimed_until",
        "last_error",
        "sent_at",
        "created_at",
    ]
    actions = ["retry_now"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Retry the selected failed notices now")
    def retry_now(self, request, queryset):
        count = retry_failed_now(queryset)
        self.message_user(request, f"{count} notice(s) queued again.", messages.SUCCESS)
