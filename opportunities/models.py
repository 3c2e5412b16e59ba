from decimal import Decimal

from django.conf import settings
from django.db import models


class Pipeline(models.Model):
    """A sales process: the ordered stages an opportunity moves through."""

    name = models.CharField(max_length=100, unique=True)

    def __str__(self):
        return self.name


class Stage(models.Model):
    """One step of a pipeline, with the default probability of winning from there."""

    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="stages")
    name = models.CharField(max_length=100)
    position = models.PositiveSmallIntegerField()
    probability = models.PositiveSmallIntegerField(help_text="Percent, 0-100")
    is_won = models.BooleanField(default=False)
    is_lost = models.BooleanField(default=False)

    class Meta:
        ordering = ["pipeline", "position"]
        constraints = [
            models.UniqueConstraint(fields=["pipeline", "position"], name="stage_position_unique"),
            models.CheckConstraint(
                condition=models.Q(probability__lte=100), name="stage_probability_percent"
            ),
        ]

    def __str__(self):
        return self.name


class Opportunity(models.Model):
    """A possible sale to an account, moving through the stages of a pipeline."""

    name = models.CharField(max_length=200)
    account = models.ForeignKey(
        "contacts.Account", on_delete=models.CASCADE, related_name="opportunities"
    )
    primary_contact = models.ForeignKey(
        "contacts.Contact",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="opportunities",
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="opportunities",
    )
    stage = models.ForeignKey(Stage, on_delete=models.PROTECT, related_name="opportunities")
    amount = models.DecimalField(max_digits=14, decimal_places=2, default=Decimal("0"))
    currency = models.CharField(max_length=3, default="USD")
    expected_close = models.DateField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "opportunities"
        indexes = [models.Index(fields=["expected_close", "id"])]

    def __str__(self):
        return self.name
