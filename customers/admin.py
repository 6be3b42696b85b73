from django.contrib import admin, messages

from customers.models import Customer
from R4C.admin import CountedDeletionMixin


@admin.register(Customer)
class CustomerAdmin(CountedDeletionMixin, admin.ModelAdmin):
    list_display = ["email", "created_at", "mail_stopped_at"]
    search_fields = ["email_key"]
    date_hierarchy = "created_at"
    readonly_fields = ["mail_stopped_at"]
    actions = ["forget"]

    @admin.action(description="Забыть выбранных покупателей (адрес, заказы, письма)")
    def forget(self, request, queryset):
        # Not through the admin's log, which would keep each address in its object_repr.
        count = 0
        for customer in queryset:
            customer.forget()
            count += 1
        self.message_user(request, f"Забыто покупателей: {count}.", messages.SUCCESS)
