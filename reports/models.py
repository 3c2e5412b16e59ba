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


class RollupState(models.Model):
    """How far one report's rollup has read its sources: when it was last brought up to date
    (the page shows it), when it was last rebuilt from scratch, and the marks (last ids read,
    last change time seen) the next incremental refresh starts from."""

    name = models.CharField(max_length=50, unique=True)
    refreshed_at = models.DateTimeField(null=True, blank=True)
    rebuilt_at = models.DateTimeField(null=True, blank=True)
    marks = models.JSONField(default=dict, blank=True)

    def __str__(self):
        return f"{self.name} at {self.refreshed_at}"


class ActivityWeek(models.Model):
    """The sales activity report's rollup: what one salesperson did in one week (Monday to
    Sunday, UTC): calls, meetings, e-mails and letters logged, tasks completed, and the
    opportunities they own that were won that week with the activities logged on those
    (reports.activity keeps it up to date)."""

    week = models.DateField(help_text="The Monday")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    calls = models.PositiveIntegerField(default=0)
    meetings = models.PositiveIntegerField(default=0)
    emails = models.PositiveIntegerField(default=0)
    letters = models.PositiveIntegerField(default=0)
    tasks_done = models.PositiveIntegerField(default=0)
    won = models.PositiveIntegerField(default=0)
    won_activities = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["week", "user"], name="activity_week_once_per_user")
        ]

    def __str__(self):
        return f"{self.user_id} week of {self.week}"


class DealCell(models.Model):
    """What the deal rollups' cells share (reports.deal_rollups keeps them): one calendar month,
    quarter or year, one owner and one territory (the account's)."""

    period_kind = models.CharField(max_length=10, choices=Quota.PeriodKind.choices)
    period_start = models.DateField()
    # No database link: deleting a user never waits on these tables.
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    territory = models.CharField(max_length=100, blank=True)

    class Meta:
        abstract = True

    def __str__(self):
        return f"{self.period_kind} {self.period_start} {self.owner_id}"


class MovementCell(DealCell):
    """The pipeline-movement report's rollup: how many deals entered, advanced, slipped, were
    won or were lost (`measure`) in the cell's period, and their amounts as they are now."""

    class Measure(models.TextChoices):
        ENTERED = "entered", "Entered"
        ADVANCED = "advanced", "Advanced"
        SLIPPED = "slipped", "Slipped"
        WON = "won", "Won"
        LOST = "lost", "Lost"

    measure = models.CharField(max_length=10, choices=Measure.choices)
    deals = models.PositiveIntegerField()
    amount = models.DecimalField(max_digits=18, decimal_places=2)

    class Meta:
        constraints = [
            # Also the index the pages read a period by.
            models.UniqueConstraint(
                fields=["period_kind", "period_start", "measure", "owner", "territory"],
                name="movement_cell_once",
                nulls_distinct=False,
            )
        ]


class ForecastCell(DealCell):
    """The forecast's rollup: the open deals expected to close in the cell's period by forecast
    category, their weighted amount (exact, rounded only on the page), and what closed won
    then."""

    pipeline = models.DecimalField(max_digits=18, decimal_places=2)
    best_case = models.DecimalField(max_digits=18, decimal_places=2)
    commit = models.DecimalField(max_digits=18, decimal_places=2)
    weighted = models.DecimalField(max_digits=22, decimal_places=6)
    closed_won = models.DecimalField(max_digits=18, decimal_places=2)

    class Meta:
        constraints = [
            # Also the index the pages read a period by.
            models.UniqueConstraint(
                fields=["period_kind", "period_start", "owner", "territory"],
                name="forecast_cell_once",
                nulls_distinct=False,
            )
        ]


class LifecycleStay(models.Model):
    """One stay of a contact in a life-cycle stage: when they entered it, when they left it and
    for which stage (empty while they are still there), with the contact's source, territory
    and customer type as last read. Built from the ledger (tracking.LifecycleChange) and, for
    the stage a contact started in, their creation (reports.lifecycle)."""

    # No foreign key: deleting a contact never waits for a rebuild of this table, and a deleted
    # contact's stays go at the next daily rebuild (reports.lifecycle).
    contact_id = models.BigIntegerField()
    stage = models.CharField(max_length=20)
    entered_at = models.DateTimeField()
    left_at = models.DateTimeField(null=True, blank=True)
    next_stage = models.CharField(max_length=20, blank=True)
    # Left for a later stage (a reorder stay: for a new reorder cycle).
    moved_on = models.BooleanField(default=False)
    source = models.CharField(max_length=100, blank=True)
    territory = models.CharField(max_length=100, blank=True)
    customer_type = models.CharField(max_length=20, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["contact_id", "entered_at"], name="lifecycle_stay_contact"),
            models.Index(fields=["entered_at"], name="lifecycle_stay_entered"),
        ]

    def __str__(self):
        return f"{self.contact_id} in {self.stage} from {self.entered_at:%Y-%m-%d}"


class LifecycleStat(models.Model):
    """The life-cycle report's numbers for one period, one stage and one slice of contacts:
    how many entered the stage in the period, how many of those have moved on to a later stage
    and how many have left it at all, and the median and 90th-percentile days those who left
    spent there. `sliced_by` says which of source (1), territory (2) and customer type (4) the
    slice is for; the others are every value (and blank here)."""

    SOURCE, TERRITORY, CUSTOMER_TYPE = 1, 2, 4

    period_kind = models.CharField(max_length=10)
    period_start = models.DateField()
    stage = models.CharField(max_length=20)
    sliced_by = models.PositiveSmallIntegerField(default=0)
    source = models.CharField(max_length=100, blank=True)
    territory = models.CharField(max_length=100, blank=True)
    customer_type = models.CharField(max_length=20, blank=True)
    entered = models.PositiveIntegerField(default=0)
    moved_on = models.PositiveIntegerField(default=0)
    left = models.PositiveIntegerField(default=0)
    median_days = models.FloatField(null=True, blank=True)
    p90_days = models.FloatField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["period_kind", "sliced_by", "period_start"], name="lifecycle_stat_slice"
            )
        ]

    def __str__(self):
        return f"{self.period_kind} {self.period_start} {self.stage}"


class MarketingTouch(models.Model):
    """A campaign's touch on a contact, as the marketing reports count it: the contact clicked
    a link in the campaign's e-mail, responded to it (filled one of its forms) or converted in
    it, or was brought in by it (their source names the campaign). One row per contact and
    campaign, at the earliest moment known. Also the contact's lead attribution: when they
    became a lead (their first touch) and this touch's place among theirs. A rollup that
    reports.attribution keeps; no database link to the rows it reads, so their deletes never
    wait on it (a refresh drops what no longer holds)."""

    contact = models.ForeignKey(
        "contacts.Contact", on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    campaign = models.ForeignKey(
        "campaigns.Campaign", on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    touched_at = models.DateTimeField()
    lead_at = models.DateTimeField()
    is_first = models.BooleanField()
    is_last = models.BooleanField()
    # All the contact's touches: an even split gives this one 1/of_touches of the lead.
    of_touches = models.PositiveIntegerField()
    territory = models.CharField(max_length=100, blank=True)
    customer_type = models.CharField(max_length=20, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["contact", "campaign"], name="marketing_touch_once")
        ]
        indexes = [
            # With what the acquisition-cost cube reads of the days outside whole months, so
            # those are read from the index alone.
            models.Index(
                fields=["lead_at"],
                include=[
                    "campaign",
                    "territory",
                    "customer_type",
                    "is_first",
                    "is_last",
                    "of_touches",
                ],
                name="marketing_touch_lead",
            )
        ]

    def __str__(self):
        return f"{self.campaign_id} touched {self.contact_id} at {self.touched_at}"


class MarketingCredit(models.Model):
    """What one campaign gets of one opportunity under each attribution model, from the
    touches on the opportunity's people before it was created: first touch, last touch, or
    `touches` of `of_touches` (even split). Carries what the reports slice and filter by (the
    opportunity's dates and amount, whether its win made the account a customer, the account's
    territory and customer type, the main product's type). A rollup that reports.attribution
    keeps."""

    opportunity = models.ForeignKey(
        "opportunities.Opportunity",
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    campaign = models.ForeignKey(
        "campaigns.Campaign", on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    account = models.ForeignKey(
        "contacts.Account", on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    created_at = models.DateTimeField()
    won_at = models.DateTimeField(null=True, blank=True)
    amount = models.DecimalField(max_digits=14, decimal_places=2)
    first_win = models.BooleanField()
    territory = models.CharField(max_length=100, blank=True)
    customer_type = models.CharField(max_length=20, blank=True)
    product_type = models.CharField(max_length=100, blank=True)
    touches = models.PositiveIntegerField()
    of_touches = models.PositiveIntegerField()
    is_first = models.BooleanField()
    is_last = models.BooleanField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["opportunity", "campaign"], name="marketing_credit_once"
            )
        ]
        indexes = [
            models.Index(fields=["created_at"], name="marketing_credit_created"),
            # With what the acquisition-cost cube reads of the days outside whole months.
            models.Index(
                fields=["won_at"],
                condition=models.Q(won_at__isnull=False),
                include=[
                    "campaign",
                    "territory",
                    "customer_type",
                    "product_type",
                    "first_win",
                    "touches",
                    "of_touches",
                    "is_first",
                    "is_last",
                ],
                name="marketing_credit_won",
            ),
            models.Index(fields=["account"], name="marketing_credit_account"),
        ]

    def __str__(self):
        return f"{self.campaign_id} in {self.opportunity_id}"


class WonDeal(models.Model):
    """A won opportunity as the customer-size report reads it: amount, when, the source of the
    person it was won through and the campaign of its first touch. A rollup that
    reports.attribution keeps."""

    opportunity = models.OneToOneField(
        "opportunities.Opportunity",
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    account = models.ForeignKey(
        "contacts.Account", on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    won_at = models.DateTimeField()
    amount = models.DecimalField(max_digits=14, decimal_places=2)
    first_win = models.BooleanField()
    source = models.CharField(max_length=100, blank=True)
    first_campaign = models.ForeignKey(
        "campaigns.Campaign",
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )

    class Meta:
        indexes = [
            models.Index(fields=["won_at"], name="won_deal_won"),
            models.Index(fields=["account"], name="won_deal_account"),
        ]

    def __str__(self):
        return f"{self.opportunity_id} won at {self.won_at}"


class MarketingMeasures(models.Model):
    """Each attribution model's marketing results in a day or month: leads (by the day of
    their first touch), opportunities (by the day they were created), won deals, won customers
    and revenue (by the day they were won)."""

    MEASURES = ("leads", "opportunities", "won", "customers", "revenue")
    MODELS = ("first", "last", "even")

    campaign = models.ForeignKey(
        "campaigns.Campaign", on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    leads_first = models.DecimalField(max_digits=20, decimal_places=6, default=0)
    leads_last = models.DecimalField(max_digits=20, decimal_places=6, default=0)
    leads_even = models.DecimalField(max_digits=20, decimal_places=6, default=0)
    opportunities_first = models.DecimalField(max_digits=20, decimal_places=6, default=0)
    opportunities_last = models.DecimalField(max_digits=20, decimal_places=6, default=0)
    opportunities_even = models.DecimalField(max_digits=20, decimal_places=6, default=0)
    won_first = models.DecimalField(max_digits=20, decimal_places=6, default=0)
    won_last = models.DecimalField(max_digits=20, decimal_places=6, default=0)
    won_even = models.DecimalField(max_digits=20, decimal_places=6, default=0)
    customers_first = models.DecimalField(max_digits=20, decimal_places=6, default=0)
    customers_last = models.DecimalField(max_digits=20, decimal_places=6, default=0)
    customers_even = models.DecimalField(max_digits=20, decimal_places=6, default=0)
    revenue_first = models.DecimalField(max_digits=20, decimal_places=6, default=0)
    revenue_last = models.DecimalField(max_digits=20, decimal_places=6, default=0)
    revenue_even = models.DecimalField(max_digits=20, decimal_places=6, default=0)

    class Meta:
        abstract = True


class MarketingMonth(MarketingMeasures):
    """The marketing rollups summed by calendar month (in the site's time zone), campaign and
    slice (territory, customer type, product type). Pages that slice read whole months here
    and only the days at the ends of their period from the rows (reports.attribution keeps
    it)."""

    month = models.DateField()
    territory = models.CharField(max_length=100, blank=True)
    customer_type = models.CharField(max_length=20, blank=True)
    product_type = models.CharField(max_length=100, blank=True)

    class Meta:
        constraints = [
            # Refreshes add their changes to a month's cell (INSERT ... ON CONFLICT).
            models.UniqueConstraint(
                fields=["month", "campaign", "territory", "customer_type", "product_type"],
                name="marketing_month_once",
            )
        ]

    def __str__(self):
        return f"{self.campaign_id} in {self.month:%Y-%m}"


class MarketingDay(MarketingMeasures):
    """The marketing rollups summed by day (in the site's time zone) and campaign: what the
    marketing results page reads, a few thousand rows a year (reports.attribution keeps it)."""

    day = models.DateField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["day", "campaign"], name="marketing_day_once")
        ]

    def __str__(self):
        return f"{self.campaign_id} on {self.day}"
