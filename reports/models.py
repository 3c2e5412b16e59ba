from decimal import Decimal

from django.conf import settings
from django.db import models


class Quota(models.Model):
    """What a salesperson should close in a period (managers set them): the forecast's
    attainment divides closed-won by this."""

    class PeriodKind(models.TextChoices):
        MONTH = "month", "Month"
        QUARTER = "quarter", "Quarter"
        YEAR = "year", "Year"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    period_kind = models.CharField(max_length=10, choices=PeriodKind.choices)
    # The first day of the period (reports.filters.period_of gives its end).
    period_start = models.DateField()
    amount = models.DecimalField(max_digits=14, decimal_places=2)
    currency = models.CharField(max_length=3, default="USD")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "period_kind", "period_start"], name="quota_once_per_period"
            )
        ]

    def __str__(self):
        return f"{self.user_id} {self.period_kind} {self.period_start}: {self.amount}"


class ForecastSnapshot(models.Model):
    """The forecast for one period and one owner as it stood when taken (Celery beat, weekly):
    how the forecast moved, and how accurate it was against what closed."""

    taken_at = models.DateTimeField()
    period_kind = models.CharField(max_length=10, choices=Quota.PeriodKind.choices)
    period_start = models.DateField()
    # None: opportunities without an owner.
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    pipeline = models.DecimalField(max_digits=16, decimal_places=2, default=Decimal("0"))
    best_case = models.DecimalField(max_digits=16, decimal_places=2, default=Decimal("0"))
    commit = models.DecimalField(max_digits=16, decimal_places=2, default=Decimal("0"))
    closed_won = models.DecimalField(max_digits=16, decimal_places=2, default=Decimal("0"))
    weighted = models.DecimalField(max_digits=16, decimal_places=2, default=Decimal("0"))

    class Meta:
        indexes = [
            models.Index(fields=["period_kind", "period_start", "taken_at"], name="snapshot_period")
        ]

    def __str__(self):
        return f"{self.period_kind} {self.period_start} at {self.taken_at:%Y-%m-%d}"


class CostEntry(models.Model):
    """Marketing spend: a campaign's cost over a period, tagged where known, so acquisition cost
    can be sliced by marketing tool (the campaign's type), territory, customer type and product
    type."""

    campaign = models.ForeignKey(
        "campaigns.Campaign", on_delete=models.CASCADE, related_name="cost_entries"
    )
    period_start = models.DateField()
    period_end = models.DateField()
    amount = models.DecimalField(max_digits=14, decimal_places=2)
    territory = models.CharField(max_length=100, blank=True)
    customer_type = models.CharField(max_length=20, blank=True)
    product_type = models.CharField(max_length=100, blank=True)
    note = models.CharField(max_length=200, blank=True)

    class Meta:
        indexes = [models.Index(fields=["period_start", "period_end"], name="cost_period")]

    def __str__(self):
        return f"{self.campaign_id} {self.period_start}-{self.period_end}: {self.amount}"
