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


class ForecastCategory(models.TextChoices):
    PIPELINE = "pipeline", "Pipeline"
    BEST_CASE = "best_case", "Best case"
    COMMIT = "commit", "Commit"
    CLOSED = "closed", "Closed"


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
    forecast_category = models.CharField(
        max_length=20, choices=ForecastCategory.choices, default=ForecastCategory.PIPELINE
    )
    next_step = models.CharField(max_length=200, blank=True)
    lost_reason = models.CharField(max_length=200, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "opportunities"
        indexes = [
            models.Index(fields=["expected_close", "id"]),
            models.Index(fields=["stage", "-amount", "id"]),
        ]

    def __str__(self):
        return self.name

    @property
    def weighted_amount(self) -> Decimal:
        return self.amount * self.stage.probability / 100


class StageChange(models.Model):
    """One move of an opportunity from a stage to another (or into its first stage), with when
    and by whom: the stage history that pipeline and forecast reports read."""

    opportunity = models.ForeignKey(
        Opportunity, on_delete=models.CASCADE, related_name="stage_changes"
    )
    from_stage = models.ForeignKey(
        Stage, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    to_stage = models.ForeignKey(Stage, on_delete=models.PROTECT, related_name="+")
    changed_at = models.DateTimeField()
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        indexes = [models.Index(fields=["opportunity", "changed_at"])]

    def __str__(self):
        return f"{self.opportunity_id}: {self.from_stage_id} -> {self.to_stage_id}"
