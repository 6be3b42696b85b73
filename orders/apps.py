from django.apps import AppConfig


class OrdersConfig(AppConfig):
    name = "orders"
    verbose_name = "Orders"

    def ready(self) -> None:
        # Connects the receiver of robots' "a robot was produced".
        from orders import notifications  # noqa: F401
