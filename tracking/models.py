import secrets

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models


class TimelineEntry(models.Model):
    """One thing a customer did or was told, as shown on the 360-degree page.

    Written by the service that makes the change, in the same transaction. `account` is the
    account of the contact at the time (or the account the entry is about), so that an account's
    page reads its whole timeline from one index.
    """

    class Kind(models.TextChoices):
        CALL = "call", "Call"
        MEETING = "meeting", "Meeting"
        EMAIL = "email", "E-mail"
        LETTER = "letter", "Letter"
        NOTE = "note", "Note"
        TASK = "task", "Task"
        APPOINTMENT = "appointment", "Appointment"
        OPPORTUNITY = "opportunity", "Opportunity"
        RECORD = "record", "Record change"
        PAGE_VIEW = "page_view", "Page view"
        EMAIL_OPEN = "email_open", "E-mail opened"
        EMAIL_CLICK = "email_click", "E-mail link clicked"
        FORM = "form", "Form filled"
        PRODUCT_VIEW = "product_view", "Product viewed"
        PURCHASE = "purchase", "Purchase"
        CUSTOM = "custom", "Website event"
        SCORE = "score", "Sales-ready"
        STAGE = "stage", "Life-cycle stage"

    # Indexed below with the kind (the timeline's filter asks which kinds a record has).
    contact = models.ForeignKey(
        "contacts.Contact",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="timeline",
        db_index=False,
    )
    account = models.ForeignKey(
        "contacts.Account",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="timeline",
        db_index=False,
    )
    kind = models.CharField(max_length=20, choices=Kind.choices)
    occurred_at = models.DateTimeField()
    summary = models.CharField(max_length=300)
    detail = models.TextField(blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Website events roll up: repeated page views of one visit (session) are one entry with a
    # count. Empty for everything else.
    session_key = models.CharField(max_length=100, blank=True, db_default="")
    count = models.PositiveIntegerField(db_default=1)

    class Meta:
        verbose_name_plural = "timeline entries"
        indexes = [
            models.Index(fields=["contact", "-occurred_at", "-id"]),
            models.Index(fields=["account", "-occurred_at", "-id"]),
            models.Index(fields=["contact", "kind"], name="timeline_contact_kind"),
            models.Index(fields=["account", "kind"], name="timeline_account_kind"),
            # The API's timeline across all customers, newest first or since a time.
            models.Index(fields=["occurred_at", "id"], name="timeline_occurred_id"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["contact", "kind", "session_key"],
                condition=~models.Q(session_key=""),
                name="timeline_one_entry_per_visit",
            )
        ]

    def __str__(self):
        return self.summary

    @property
    def kind_label(self) -> str:
        """As `get_kind_display()`, without building the choices' dict again for each entry of
        a timeline page."""
        return _KIND_LABELS.get(self.kind, self.kind)


_KIND_LABELS = dict(TimelineEntry.Kind.choices)


class AuditEntry(models.Model):
    """Who changed which fields of a record, from what to what, and when."""

    model = models.CharField(max_length=100)
    object_id = models.BigIntegerField()
    action = models.CharField(max_length=10)  # created, updated, deleted
    changes = models.JSONField(default=dict)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "audit entries"
        indexes = [models.Index(fields=["model", "object_id", "-at"])]

    def __str__(self):
        return f"{self.action} {self.model} #{self.object_id}"


# --- website tracking, engagement score, life cycle (issue 6) ---------------------------------


def new_secret() -> str:
    return secrets.token_hex(32)


def default_weights() -> dict[str, float]:
    return {
        "page_view": 1,
        "pricing_view": 5,
        "product_view": 3,
        "purchase": 20,
        "custom": 1,
        "email_open": 1,
        "email_click": 3,
        "form": 10,
        "meeting": 15,
    }


class TrackingSettings(models.Model):
    """The tenant's tracking and scoring choices: one row per tenant (tracking.selectors reads
    it, creating it with the defaults)."""

    # Origins (scheme://host[:port]) of the tenant's websites, allowed to post events (CORS).
    site_origins = ArrayField(models.CharField(max_length=200), default=list, blank=True)
    # Points per kind of exposure (keys as in default_weights).
    weights = models.JSONField(default=default_weights)
    # A page view whose path contains this counts as a pricing-page view.
    pricing_path = models.CharField(max_length=200, default="/pricing")
    # The score halves every half_life_days without new exposure.
    half_life_days = models.FloatField(default=14)
    # Sales-ready when the score reaches the threshold; it can cross again only after falling
    # below threshold * rearm_below, and no sooner than cooldown_days after the last crossing.
    threshold = models.FloatField(default=50)
    rearm_below = models.FloatField(default=0.6)
    cooldown_days = models.FloatField(default=7)
    # The ideal customer, for the fit grade: {"industry": [...], "size": [...], "territory":
    # [...], "customer_type": [...]}; each matching field is a point.
    ideal_customer = models.JSONField(default=dict, blank=True)
    # The key the tenant's own server signs `identify` calls with (HMAC of the e-mail), so a
    # visitor cannot claim to be somebody else from the browser.
    identify_secret = models.CharField(max_length=64, default=new_secret)

    class Meta:
        verbose_name_plural = "tracking settings"

    def __str__(self):
        return "Tracking settings"


class Visitor(models.Model):
    """A browser, known by the anonymous id in the first-party cookie the snippet sets; it
    belongs to a contact once identified (a contact may have several)."""

    id = models.UUIDField(primary_key=True)
    contact = models.ForeignKey(
        "contacts.Contact",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="visitors",
    )
    first_seen_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()
    identified_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["contact"], name="visitor_contact")]

    def __str__(self):
        return str(self.id)


class Event(models.Model):
    """A website (or e-mail) event as received. The id comes from the snippet, so a batch sent
    or drained twice inserts nothing twice. Workers roll events of identified visitors into the
    contact's timeline, score and stage and set rolled_up_at; an anonymous visitor's events wait
    until the visitor is identified."""

    class Kind(models.TextChoices):
        PAGE_VIEW = "page_view", "Page view"
        PRODUCT_VIEW = "product_view", "Product view"
        PURCHASE = "purchase", "Purchase"
        CUSTOM = "custom", "Custom event"
        EMAIL_OPEN = "email_open", "E-mail opened"
        EMAIL_CLICK = "email_click", "E-mail link clicked"
        FORM = "form", "Form filled"
        MEETING = "meeting", "Meeting"

    id = models.UUIDField(primary_key=True)
    visitor_id = models.UUIDField(null=True, blank=True)
    contact = models.ForeignKey(
        "contacts.Contact", null=True, blank=True, on_delete=models.CASCADE, related_name="events"
    )
    session_key = models.CharField(max_length=100, blank=True)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    # A custom event's name.
    name = models.CharField(max_length=100, blank=True)
    occurred_at = models.DateTimeField()
    received_at = models.DateTimeField()
    url = models.TextField(blank=True)
    title = models.CharField(max_length=300, blank=True)
    referrer = models.TextField(blank=True)
    utm = models.JSONField(default=dict, blank=True)
    # Product SKU and category, order id, amount, currency and items, custom properties.
    properties = models.JSONField(default=dict, blank=True)
    rolled_up_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["visitor_id", "occurred_at"], name="event_visitor"),
            models.Index(fields=["contact", "kind", "-occurred_at"], name="event_contact_kind"),
            models.Index(
                fields=["visitor_id"],
                condition=models.Q(rolled_up_at__isnull=True),
                name="event_waiting",
            ),
        ]

    def __str__(self):
        return f"{self.kind} {self.url or self.name}"


class Engagement(models.Model):
    """A contact's engagement score, stored as its value at `at`: the score at any time t is
    value * 2 ** (-(t - at) / half-life), exact without a nightly job. `rank` is
    ln(value) + at * ln 2 / half-life (seconds), which orders contacts by their score at any
    one moment, so "score above X now" and the ready-to-talk list are index range scans."""

    contact = models.OneToOneField(
        "contacts.Contact", primary_key=True, on_delete=models.CASCADE, related_name="engagement"
    )
    value = models.FloatField(default=0)
    at = models.DateTimeField()
    rank = models.FloatField(default=float("-inf"))
    sales_ready = models.BooleanField(default=False)
    ready_since = models.DateTimeField(null=True, blank=True)
    last_crossed_at = models.DateTimeField(null=True, blank=True)
    # The fit grade (how well the contact matches the ideal customer), kept apart from the score.
    fit_grade = models.CharField(max_length=1, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["-rank"], name="engagement_rank"),
            models.Index(
                fields=["-rank"],
                condition=models.Q(sales_ready=True),
                name="engagement_ready_rank",
            ),
        ]

    def __str__(self):
        return f"{self.value:.1f} at {self.at:%Y-%m-%d %H:%M}"


class ScoreChange(models.Model):
    """What moved a contact's score: one row per scored exposure (the breakdown on the page, and
    the score's history for its sparkline)."""

    contact = models.ForeignKey(
        "contacts.Contact", on_delete=models.CASCADE, related_name="score_changes"
    )
    event = models.ForeignKey(Event, null=True, blank=True, on_delete=models.SET_NULL)
    kind = models.CharField(max_length=20)
    reason = models.CharField(max_length=300)
    points = models.FloatField()
    at = models.DateTimeField()
    # The score just after this change.
    score = models.FloatField()

    class Meta:
        indexes = [models.Index(fields=["contact", "-at"], name="score_change_contact")]

    def __str__(self):
        return f"{self.points:+g} {self.reason}"


class LifecycleChange(models.Model):
    """Append-only ledger of every life-cycle stage change, with its time and cause (the
    life-cycle reports read it)."""

    contact = models.ForeignKey(
        "contacts.Contact", on_delete=models.CASCADE, related_name="lifecycle_changes"
    )
    from_stage = models.CharField(max_length=20, blank=True)
    to_stage = models.CharField(max_length=20)
    at = models.DateTimeField()
    cause = models.CharField(max_length=300)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        indexes = [
            models.Index(fields=["contact", "at"], name="lifecycle_contact"),
            models.Index(fields=["to_stage", "at"], name="lifecycle_stage_at"),
        ]

    def __str__(self):
        return f"{self.from_stage or '-'} -> {self.to_stage}"


class PersonalizationBlock(models.Model):
    """Content the snippet puts into an element of the tenant's site (data-crm-slot="<slot>")
    for a known visitor whose contact matches the rules; the block without rules is the default
    for everyone else. The first matching block by priority wins."""

    slot = models.SlugField(max_length=50)
    name = models.CharField(max_length=200)
    # {"segment": id, "interests": [...], "stages": [...], "score_min": n, "score_max": n}
    rules = models.JSONField(default=dict, blank=True)
    content = models.TextField()
    priority = models.PositiveIntegerField(default=100)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["slot", "priority", "id"]

    def __str__(self):
        return self.name


class MergeOffer(models.Model):
    """A browser linked to `contact` also identified as `other` (a shared laptop, a forwarded
    e-mail): two identified contacts are never merged automatically, so the salesperson is
    offered the merge instead. Hidden once the two are one contact (a merge leaves
    contact == other)."""

    contact = models.ForeignKey(
        "contacts.Contact", on_delete=models.CASCADE, related_name="merge_offers"
    )
    other = models.ForeignKey("contacts.Contact", on_delete=models.CASCADE, related_name="+")
    visitor_id = models.UUIDField()
    # How the browser identified as `other`: "identify", "email_click", "form".
    how = models.CharField(max_length=20)
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["contact", "other"], name="merge_offer_once")
        ]

    def __str__(self):
        return f"{self.contact_id} may be {self.other_id}"
