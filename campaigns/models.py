from decimal import Decimal
from functools import cache
from zoneinfo import available_timezones

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models.functions import Lower


@cache
def time_zones() -> frozenset[str]:
    return frozenset(available_timezones())


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

    class SendState(models.TextChoices):
        DRAFT = "draft", "Not sent"
        SCHEDULED = "scheduled", "Scheduled"
        SENDING = "sending", "Sending"
        PAUSED = "paused", "Paused"
        CANCELLED = "cancelled", "Cancelled"
        SENT = "sent", "Sent"

    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PLANNED)
    budget = models.DecimalField(max_digits=12, decimal_places=2, default=Decimal("0"))
    # What it really cost so far (acquisition-cost reports divide this by the customers won).
    actual_cost = models.DecimalField(max_digits=12, decimal_places=2, default=Decimal("0"))
    goal = models.CharField(max_length=300, blank=True)
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
    # Sending (e-mail campaigns only): what goes out, to whom, and how far the send has got.
    email_template = models.ForeignKey(
        "EmailTemplate", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    segments = models.ManyToManyField("Segment", blank=True, related_name="campaigns")
    send_state = models.CharField(max_length=10, choices=SendState.choices, default=SendState.DRAFT)
    scheduled_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    # Optional sending window: messages go out only between these times of day, in
    # window_timezone (a send that reaches the end waits for the next day's start).
    window_start = models.TimeField(null=True, blank=True)
    window_end = models.TimeField(null=True, blank=True)
    window_timezone = models.CharField(max_length=64, default="UTC")

    def __str__(self):
        return self.name

    def clean(self):
        if (self.window_start is None) != (self.window_end is None):
            raise ValidationError(
                {"window_end": "Give both ends of the sending window, or neither."}
            )
        if self.window_timezone not in time_zones():
            raise ValidationError({"window_timezone": "Choose a known time zone, such as UTC."})


class CampaignMember(models.Model):
    """A contact a campaign is aimed at, and how far they went with it."""

    class Status(models.TextChoices):
        TARGETED = "targeted", "Targeted"
        SENT = "sent", "Sent"
        OPENED = "opened", "Opened"
        CLICKED = "clicked", "Clicked"
        RESPONDED = "responded", "Responded"
        CONVERTED = "converted", "Converted"

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="members")
    contact = models.ForeignKey(
        "contacts.Contact", on_delete=models.CASCADE, related_name="campaign_memberships"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.TARGETED)
    added_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["campaign", "contact"], name="campaign_member_once")
        ]
        indexes = [
            models.Index(fields=["contact", "campaign"]),
            # The API's sync of members by `updated_since`.
            models.Index(fields=["updated_at", "id"], name="campaign_member_updated_id"),
        ]

    def __str__(self):
        return f"{self.contact_id} in {self.campaign_id}"


class Segment(models.Model):
    """A group of contacts described by rules on their fields, their account and their
    behaviour (dynamic: worked out each time it is used), or a fixed list of contacts frozen
    from such rules (static)."""

    class Kind(models.TextChoices):
        DYNAMIC = "dynamic", "Dynamic"
        STATIC = "static", "Static list"

    name = models.CharField(max_length=150, unique=True)
    description = models.CharField(max_length=300, blank=True)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.DYNAMIC)
    # {"op": "and"|"or", "rules": [{"field": ..., "operator": ..., "value": ...} | group, ...]}
    rules = models.JSONField(default=dict, blank=True)
    frozen_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return self.name


class SegmentMember(models.Model):
    """A contact on a static list."""

    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="members")
    contact = models.ForeignKey(
        "contacts.Contact", on_delete=models.CASCADE, related_name="segment_memberships"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["segment", "contact"], name="segment_member_once")
        ]

    def __str__(self):
        return f"{self.contact_id} in {self.segment_id}"


class ContentBlock(models.Model):
    """A reusable piece of an e-mail (a footer, a banner, a signature) that templates include
    by name."""

    name = models.SlugField(max_length=60, unique=True)
    html = models.TextField(blank=True)
    text = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return self.name


class EmailTemplate(models.Model):
    """A marketing e-mail with merge fields and conditional blocks, written once and rendered
    for each recipient in a sandbox."""

    name = models.CharField(max_length=150, unique=True)
    subject = models.CharField(max_length=200)
    preheader = models.CharField(max_length=200, blank=True)
    html_body = models.TextField()
    text_body = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return self.name


class Suppression(models.Model):
    """An address the tenant must never send marketing e-mail to again, and why."""

    class Reason(models.TextChoices):
        UNSUBSCRIBED = "unsubscribed", "Unsubscribed"
        BOUNCED = "bounced", "Bounced"
        COMPLAINED = "complained", "Complained (spam)"
        MANUAL = "manual", "Added by hand"

    email = models.EmailField()
    reason = models.CharField(max_length=20, choices=Reason.choices)
    campaign = models.ForeignKey(
        Campaign, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(Lower("email"), name="suppression_email_once")]

    def __str__(self):
        return self.email


class OutboxMessage(models.Model):
    """One recipient of an e-mail campaign, frozen when the send starts: it moves
    queued -> sending -> sent or failed exactly once (see campaigns.sending)."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="outbox")
    contact = models.ForeignKey("contacts.Contact", on_delete=models.CASCADE, related_name="+")
    # The address as it was when the audience was frozen.
    email = models.EmailField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    # <campaign.row@tenant host>: the same on every attempt, so the sink can count duplicates.
    message_id = models.CharField(max_length=200)
    error = models.TextField(blank=True)
    # The claiming worker's lease: set when claimed, renewed while it sends (campaigns.sending).
    claimed_at = models.DateTimeField(null=True, blank=True)
    # How often a worker claimed it (a message that keeps stopping workers is failed).
    attempts = models.PositiveSmallIntegerField(db_default=0)
    sent_at = models.DateTimeField(null=True, blank=True)
    # Engagement (campaigns.engagement): the first open and click, and how often it was opened
    # (a database default, as the audience is frozen by a raw INSERT).
    opened_at = models.DateTimeField(null=True, blank=True)
    clicked_at = models.DateTimeField(null=True, blank=True)
    opens = models.PositiveIntegerField(db_default=0)
    # What the ESP reported afterwards (Anymail tracking webhooks), and an unsubscribe through
    # this message's link.
    delivered_at = models.DateTimeField(null=True, blank=True)
    bounced_at = models.DateTimeField(null=True, blank=True)
    complained_at = models.DateTimeField(null=True, blank=True)
    unsubscribed_at = models.DateTimeField(null=True, blank=True)
    bounce_reason = models.CharField(max_length=500, blank=True, db_default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["campaign", "contact"], name="outbox_message_once")
        ]
        indexes = [models.Index(fields=["campaign", "status", "id"], name="outbox_progress")]

    def __str__(self):
        return self.message_id


class CampaignLink(models.Model):
    """A link in a campaign's e-mail. Sent messages point at /c/<token>/ instead, and the click
    is redirected to the URL stored here, never to one taken from the request."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="links")
    url = models.URLField(max_length=2000)
    clicks = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["campaign", "url"], name="campaign_link_once")
        ]

    def __str__(self):
        return self.url
