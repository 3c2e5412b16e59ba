from decimal import Decimal

from django.conf import settings
from django.db import models


class Campaign(models.Model):
    """A marketing effort (e-mail, event, advertising ...) with its budget and dates."""

    class Kind(models.TextChoices):
        EMAIL = "email", "E-mail"
        WEB = "web", "Web"
        EVENT = "event", "Event / trade show"
        DIRECT_MAIL = "direct_mail", "Direct mail"
        ADVERTISING = "advertising", "Advertising"
        PR = "pr", "Public relations"

    class Status(models.TextChoices):
        PLANNED = "planned", "Planned"
        ACTIVE = "active", "Active"
        COMPLETED = "completed", "Completed"

    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PLANNED)
    budget = models.DecimalField(max_digits=12, decimal_places=2, default=Decimal("0"))
    starts_on = models.DateField(null=True, blank=True)
    ends_on = models.DateField(null=True, blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="campaigns",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return self.name
