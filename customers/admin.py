from django.contrib import admin

from customers.models import Customer
from R4C.admin import CountedDeletionMixin


@admin.register(Customer)
class CustomerAdmin(CountedDeletionMixin, admin.ModelAdmin):
    list_display = ["email", "created_at"]
    search_fields = ["email_key"]
    date_hierarchy = "created_at"
