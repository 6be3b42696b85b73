from django.db import models
from django.utils import timezone

from customers.models import Customer


class Order(models.Model):
    """A customer waits for a robot of `robot_serial` and wants one e-mail when it is in stock."""

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="orders")
    robot_serial = models.CharField(max_length=5)
    # True once the notice was accepted by the mail server; placing the order again resets it.
    is_notified = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "robot_serial"], name="one_order_per_customer_and_serial"
            )
        ]
        indexes = [
            # A robot is produced: which orders wait for its serial?
            models.Index(
                fields=["robot_serial"],
                condition=models.Q(is_notified=False),
                name="order_waiting_idx",
            )
        ]

    def __str__(self) -> str:
        return f"{self.customer} waits for {self.robot_serial}"


class Arrival(models.Model):
    """Outbox entry: robots of `serial` were produced while orders waited for it.

    Written in the robot's transaction (one small row, whatever the number of orders); the
    worker turns it into one Notice per waiting order.
    """

    serial = models.CharField(max_length=5)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.serial} produced"


class Notice(models.Model):
    """One e-mail to tell a customer that the robot of their order is in stock."""

    class State(models.TextChoices):
        PENDING = "pending", "pending"
        SENDING = "sending", "sending"
        SENT = "sent", "sent"
        FAILED = "failed", "failed"

    OPEN = (State.PENDING, State.SENDING)

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="notices")
    state = models.CharField(max_length=7, choices=State, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    # The worker holding a SENDING notice, and until when; past that, another may take it.
    claim = models.UUIDField(null=True, blank=True, editable=False)
    claimed_until = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            # A customer is never mailed twice for one placing of an order.
            models.UniqueConstraint(
                fields=["order"],
                condition=models.Q(state__in=["pending", "sending"]),
                name="one_open_notice_per_order",
            )
        ]
        indexes = [models.Index(fields=["state", "next_attempt_at"], name="notice_due_idx")]

    def __str__(self) -> str:
        return f"notice {self.pk} ({self.state})"
