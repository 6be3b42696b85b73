from django.apps import AppConfig


class OrdersConfig(AppConfig):
    name = "orders"
    verbose_name = "Заказы"

    def ready(self):
        from orders.mail import checks  # noqa: F401 (registers the deploy check)
