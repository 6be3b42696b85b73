from django.db import models
from django.db.models.functions import Lower


class Customer(models.Model):
    # Stored as first given (trimmed); `Ann@Example.com` and `ann@example.com` are one customer.
    email = models.EmailField(max_length=254)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(Lower("email"), name="unique_customer_email")]

    def __str__(self) -> str:
        return self.email
