from decimal import Decimal

from django.conf import settings
from django.contrib.postgres.indexes import GinIndex, OpClass
from django.db import models
from django.db.models.functions import Upper


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
    # Why it was won or lost, asked for when it moves into a won or lost stage.
    close_reason = models.CharField(max_length=200, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "opportunities"
        indexes = [
            models.Index(fields=["expected_close", "id"]),
            models.Index(fields=["stage", "-amount", "id"]),
            models.Index(fields=["name", "id"]),
            models.Index(fields=["created_at", "id"]),
            models.Index(fields=["amount", "id"]),
            # The shell search's newest matching deals, when there are many.
            models.Index(fields=["-updated_at", "id"], name="opportunity_updated"),
            GinIndex(OpClass(Upper("name"), name="gin_trgm_ops"), name="opportunity_name_trgm"),
            # The forecast report's sums by period, read from the index alone: open deals by
            # expected close, and closed deals by when they closed.
            models.Index(
                fields=["expected_close"],
                include=["owner", "stage", "forecast_category", "amount"],
                name="opportunity_forecast",
            ),
            models.Index(
                fields=["closed_at"],
                include=["owner", "stage", "amount"],
                condition=models.Q(closed_at__isnull=False),
                name="opportunity_closed",
            ),
        ]

    def __str__(self):
        return self.name

    @property
    def weighted_amount(self) -> Decimal:
        return self.amount * self.stage.probability / 100


class StageTotal(models.Model):
    """Opportunities counted by stage and owner, with their amount, for the pipeline board's
    column totals: summing these rows replaces reading every deal.

    Triggers in the database write them (migration 0008): every statement that inserts, updates
    or deletes opportunities, whatever wrote it (a form, the API, a COPY, a merge), adds a row
    per stage and owner it changed, with the change. Only ever adding rows, a write takes no lock
    on a total, so writers never wait for each other or deadlock over one. The beat folds the
    rows into one per stage and owner now and then (`stage_totals_compact`). The rows are
    derived, so they hold no foreign keys: a deleted user's or empty stage's rows sum to zero."""

    stage = models.ForeignKey(
        Stage, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+"
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )
    count = models.BigIntegerField()
    amount = models.DecimalField(max_digits=20, decimal_places=2)

    class Meta:
        indexes = [models.Index(fields=["stage", "owner"], name="stage_total_stage_owner")]

    def __str__(self):
        return f"{self.count:+} in stage {self.stage_id} for owner {self.owner_id}"


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
        indexes = [
            models.Index(fields=["opportunity", "changed_at"]),
            # Pipeline movement: the moves made in a period.
            models.Index(
                fields=["changed_at"],
                include=["opportunity", "from_stage", "to_stage"],
                name="stage_change_at",
            ),
        ]

    def __str__(self):
        return f"{self.opportunity_id}: {self.from_stage_id} -> {self.to_stage_id}"


class Product(models.Model):
    """Something the tenant sells, with its list price; opportunities list products as line
    items, and reports group revenue by product type."""

    name = models.CharField(max_length=200)
    sku = models.CharField(max_length=64, null=True, blank=True, unique=True)
    product_type = models.CharField(max_length=100, blank=True)
    unit_price = models.DecimalField(max_digits=14, decimal_places=2, default=Decimal("0"))
    currency = models.CharField(max_length=3, default="USD")
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(unit_price__gte=0), name="product_price_not_negative"
            ),
        ]

    def __str__(self):
        return self.name


class LineItem(models.Model):
    """A product on an opportunity: how many, at what price, with what discount. An opportunity
    with line items is worth the sum of their totals."""

    opportunity = models.ForeignKey(
        Opportunity, on_delete=models.CASCADE, related_name="line_items"
    )
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="line_items")
    quantity = models.DecimalField(max_digits=12, decimal_places=2, default=Decimal("1"))
    unit_price = models.DecimalField(max_digits=14, decimal_places=2)
    discount_percent = models.DecimalField(max_digits=5, decimal_places=2, default=Decimal("0"))

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(quantity__gt=0), name="line_item_quantity_positive"
            ),
            models.CheckConstraint(
                condition=models.Q(unit_price__gte=0), name="line_item_price_not_negative"
            ),
            models.CheckConstraint(
                condition=models.Q(discount_percent__gte=0, discount_percent__lte=100),
                name="line_item_discount_percent",
            ),
        ]

    def __str__(self):
        return f"{self.quantity} x {self.product}"

    @property
    def total(self) -> Decimal:
        gross = self.quantity * self.unit_price
        return (gross * (100 - self.discount_percent) / 100).quantize(Decimal("0.01"))
