"""What R4C's admin templates need that Django's do not give: counts in Russian."""

from django import template

register = template.Library()

# One, a few (2–4) and many (5–20, 0): Russian counts its nouns in three forms, and Django's
# admin knows only a singular and a plural verbose name.
FORMS = {
    "auth.group": ("группа", "группы", "групп"),
    "axes.accessattempt": ("попытка входа", "попытки входа", "попыток входа"),
    "axes.accessattemptexpiration": ("срок блокировки", "срока блокировки", "сроков блокировки"),
    "axes.accessfailurelog": ("неудачный вход", "неудачных входа", "неудачных входов"),
    "axes.accesslog": ("вход", "входа", "входов"),
    "auth.user": ("пользователь", "пользователя", "пользователей"),
    "customers.customer": ("покупатель", "покупателя", "покупателей"),
    "orders.arrival": ("поступление", "поступления", "поступлений"),
    "orders.order": ("заказ", "заказа", "заказов"),
    "orders.suppression": (
        "недоставляемый адрес",
        "недоставляемых адреса",
        "недоставляемых адресов",
    ),
    "robots.apikey": ("API-ключ", "API-ключа", "API-ключей"),
    "robots.model": ("модель", "модели", "моделей"),
    "robots.robot": ("робот", "робота", "роботов"),
    "robots.version": ("версия", "версии", "версий"),
}


@register.filter
def counted(count: int, opts) -> str:
    """`7 роботов`, `2 заказа`, `1 модель`: the count with the model's name in its form."""
    one, few, many = FORMS.get(
        opts.label_lower, (opts.verbose_name, opts.verbose_name_plural, opts.verbose_name_plural)
    )
    if count % 10 == 1 and count % 100 != 11:
        return f"{count} {one}"
    if 2 <= count % 10 <= 4 and not 12 <= count % 100 <= 14:
        return f"{count} {few}"
    return f"{count} {many}"
