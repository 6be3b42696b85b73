import re

from django import forms
from django.contrib import admin, messages
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.text import Truncator

from orders.forms import AddressField, SerialField
from orders.mail import outbox
from orders.models import Arrival, Attempt, Bounce, Order, Suppression
from R4C.admin import CountedDeletionMixin

# An SMTP reply's code and enhanced status, e.g. "550 5.1.1".
REPLY_CODE = re.compile(r"^[245]\d\d(?: [245]\.\d{1,3}\.\d{1,3})?")


class PlaceOrderForm(forms.ModelForm):
    """An order made in the admin goes through the rules of POST /create_order/."""

    email = AddressField(label="Адрес", help_text="Покупатель найдётся по адресу или появится.")
    serial = SerialField(label="Робот", help_text="МОДЕЛЬ-ВЕРСИЯ, например R2-D2.")

    class Meta:
        model = Order
        fields = []


class AttemptInline(admin.TabularInline):
    """Every SMTP exchange of the order's notice, oldest first, as the server answered."""

    model = Attempt
    fields = ["at", "outcome", "code", "reply", "seconds"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class BounceInline(admin.TabularInline):
    """What came back about the order's notice: bounces and complaints, as reported."""

    model = Bounce
    fields = ["at", "kind", "status", "diagnostic"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Order)
class OrderAdmin(CountedDeletionMixin, admin.ModelAdmin):
    # Fits a laptop's screen (1280 px), also with a long address (shortened, whole in its
    # title): when to retry and how often it failed are on the order's page.
    list_display = ["address", "robot_serial", "state", "sent", "short_error"]
    list_filter = ["state"]
    search_fields = ["customer__email_key", "robot_serial"]
    list_select_related = ["customer"]
    actions = ["retry_now"]
    inlines = [AttemptInline, BounceInline]
    add_fieldsets = [(None, {"fields": ["email", "serial"]})]

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None else []

    def get_fieldsets(self, request, obj=None):
        return self.add_fieldsets if obj is None else super().get_fieldsets(request, obj)

    def get_fields(self, request, obj=None):
        fields = super().get_fields(request, obj)
        if obj is not None and obj.state not in outbox.PENDING:  # nothing is to be tried
            fields = [f for f in fields if f not in ("next_attempt_at", "claimed_until")]
        return fields

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = PlaceOrderForm
        return super().get_form(request, obj, **kwargs)

    def has_change_permission(self, request, obj=None) -> bool:
        # Placed orders are records: a change is a new placing.
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        # A notice may be in a worker's hands: an order ends only through outbox's
        # transitions (the stop link, forgetting its customer, the retention purge).
        return False

    def save_form(self, request, form, change):
        placing = outbox.place(form.cleaned_data["email"], form.cleaned_data["serial"])
        if not placing.created:
            self.message_user(request, f"Заказ повторён: {placing.order}.", messages.INFO)
        if placing.order.state in outbox.PENDING:
            self.message_user(request, "Робот в наличии: письмо поставлено в очередь.")
        return placing.order

    def save_model(self, request, obj, form, change):
        pass  # saved by outbox.place in save_form

    def save_related(self, request, form, formsets, change):
        pass

    # Each cell short, the whole of it in its title: the list fits 1280 px with the
    # longest address and a mail server's reply.
    @admin.display(description="покупатель", ordering="customer__email_key")
    def address(self, order: Order) -> str:
        email = order.customer.email
        return format_html('<span title="{}">{}</span>', email, Truncator(email).chars(24))

    @admin.display(description="отправлено", ordering="notified_at")
    def sent(self, order: Order) -> str:
        if order.notified_at is None:
            return "-"
        at = timezone.localtime(order.notified_at)
        return format_html('<span title="{}">{}</span>', date_format(at, "DATETIME_FORMAT"),
                           f"{at:%d.%m.%Y %H:%M}")  # fmt: skip

    @admin.display(description="последняя ошибка")
    def short_error(self, order: Order) -> str:
        # The server's code and status say what happened; its words are on the order's page.
        code = REPLY_CODE.match(order.last_error)
        short = code.group(0) if code else Truncator(order.last_error).chars(12)
        return format_html('<span title="{}">{}</span>', order.last_error, short) if short else "-"

    @admin.action(description="Отправить выбранные неудавшиеся письма снова")
    def retry_now(self, request, queryset):
        count = outbox.retry_failed(queryset)
        self.message_user(request, f"Писем снова в очереди: {count}.", messages.SUCCESS)


@admin.register(Suppression)
class SuppressionAdmin(admin.ModelAdmin):
    """Addresses R4C no longer mails, and why; a manager may lift one (it is logged)."""

    list_display = ["customer", "kind", "status", "short_diagnostic", "created_at", "order"]
    list_filter = ["kind"]
    search_fields = ["customer__email_key"]
    list_select_related = ["customer", "order__customer"]
    readonly_fields = ["customer", "kind", "status", "diagnostic", "order", "created_at"]
    actions = ["lift"]

    def has_add_permission(self, request) -> bool:
        return False  # only what comes back from a mail server suppresses

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # lifting (below) is the one way, and it is logged as such

    @admin.display(description="ответ почтового сервера")
    def short_diagnostic(self, suppression: Suppression) -> str:
        return Truncator(suppression.diagnostic).chars(60)

    @admin.action(description="Снять блокировку: писать на выбранные адреса снова")
    def lift(self, request, queryset):
        self.log_deletions(request, list(queryset))
        count = outbox.lift(queryset)
        self.message_user(request, f"Блокировка снята с адресов: {count}.", messages.SUCCESS)


@admin.register(Arrival)
class ArrivalAdmin(admin.ModelAdmin):
    """The outbox backlog: robots produced whose waiting orders the worker has not yet seen."""

    list_display = ["serial", "created_at"]

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser  # the worker's internals, not a manager's work

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
