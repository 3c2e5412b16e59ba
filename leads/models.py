"""Lead capture: web-to-lead forms that marketers build, and what visitors send through them."""

import uuid

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, URLValidator
from django.db import models
from django.db.models.functions import Lower

MAX_INTERESTS = 30


class ContactField(models.TextChoices):
    """The contact fields a form may ask for besides the e-mail address, which every form asks
    for (it is what a submission is matched on)."""

    FIRST_NAME = "first_name", "First name"
    LAST_NAME = "last_name", "Last name"
    PHONE = "phone", "Phone"
    TITLE = "title", "Job title"
    COMPANY = "company", "Company"
    TERRITORY = "territory", "Territory"


class LeadForm(models.Model):
    """A web-to-lead form: what it asks a visitor, which campaign a filled form answers, what
    the visitor sees afterwards, whether the address must be confirmed first, and who gets the
    new contacts it brings in. Visitors reach it by its `key`, on its hosted page or through the
    embed snippet on the tenant's own website."""

    class Assignment(models.TextChoices):
        ROUND_ROBIN = "round_robin", "Round-robin among chosen users"
        TERRITORY = "territory", "By territory"

    name = models.CharField(max_length=150, unique=True)
    # Public and unguessable, so a form's address tells nothing about how many forms there are.
    key = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    is_active = models.BooleanField(default=True, help_text="Inactive forms take no submissions.")
    campaign = models.ForeignKey(
        "campaigns.Campaign",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="lead_forms",
        help_text="A filled form counts as a response to this campaign.",
    )
    intro = models.TextField(blank=True, max_length=1000, help_text="Shown above the fields.")
    contact_fields = ArrayField(
        models.CharField(max_length=20, choices=ContactField.choices), default=list, blank=True
    )
    required_fields = ArrayField(
        models.CharField(max_length=20, choices=ContactField.choices), default=list, blank=True
    )
    # The interests a visitor may tick; ticked ones are added to the contact's interests.
    interests = ArrayField(models.CharField(max_length=50), default=list, blank=True)
    submit_label = models.CharField(max_length=50, default="Send")
    thank_you_message = models.TextField(
        max_length=1000, default="Thank you! We will be in touch soon."
    )
    redirect_url = models.URLField(
        max_length=500,
        blank=True,
        validators=[URLValidator(schemes=["http", "https"])],
        help_text="Send visitors to this page instead of showing the thank-you message.",
    )
    double_opt_in = models.BooleanField(
        default=False,
        help_text="E-mail the visitor a link to confirm their address; nothing reaches the "
        "contact, the campaign or the sales team before they do.",
    )
    assignment = models.CharField(
        max_length=20, choices=Assignment.choices, default=Assignment.ROUND_ROBIN
    )
    round_robin_users = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="+"
    )
    # The user the last new contact went to; the next one goes to the next user by id.
    round_robin_last = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    fallback_owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Gets new contacts the rule finds nobody for.",
    )
    follow_up_days = models.PositiveSmallIntegerField(
        default=1,
        validators=[MaxValueValidator(90)],
        help_text="The owner's follow-up action item is due this many days after the form "
        "is filled.",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return self.name

    @property
    def contact_field_labels(self) -> list[str]:
        return [ContactField(name).label for name in self.contact_fields]

    def clean(self):
        errors = {}
        if not set(self.required_fields) <= set(self.contact_fields):
            errors["required_fields"] = "Only fields the form shows can be required."
        if (
            self.assignment == self.Assignment.TERRITORY
            and ContactField.TERRITORY not in self.contact_fields
        ):
            errors["contact_fields"] = (
                "Assigning by territory needs the form to ask for the territory."
            )
        lowered = [interest.strip().lower() for interest in self.interests]
        if len(set(lowered)) != len(lowered) or "" in lowered:
            errors["interests"] = "Give each interest once."
        elif len(self.interests) > MAX_INTERESTS:
            errors["interests"] = f"At most {MAX_INTERESTS} interests."
        if errors:
            raise ValidationError(errors)


class TerritoryOwner(models.Model):
    """Under a by-territory rule: the user who gets a form's new contacts from a territory."""

    form = models.ForeignKey(LeadForm, on_delete=models.CASCADE, related_name="territory_owners")
    territory = models.CharField(max_length=100)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")

    class Meta:
        constraints = [
            models.UniqueConstraint("form", Lower("territory"), name="lead_form_territory_once")
        ]

    def __str__(self):
        return f"{self.territory}: {self.owner_id}"


class FormSubmission(models.Model):
    """One filled lead form as the visitor sent it (the cleaned values, their address and when),
    and the contact it was matched to or created. Segments ask "filled form Y" of these rows.

    Under double opt-in it waits, without a contact, until the visitor follows the link in the
    confirmation e-mail; only then does it reach the contact, the campaign and the owner."""

    class Status(models.TextChoices):
        AWAITING_CONFIRMATION = "awaiting", "Awaiting confirmation"
        PROCESSED = "processed", "Processed"

    form = models.ForeignKey(LeadForm, on_delete=models.CASCADE, related_name="submissions")
    contact = models.ForeignKey(
        "contacts.Contact",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="form_submissions",
    )
    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.AWAITING_CONFIRMATION
    )
    # {"email": ..., "first_name": ..., "interests": [...]}: only fields the form asks for.
    data = models.JSONField(default=dict)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)
    # The page the form was filled on, as the browser said (Referer, else Origin).
    page_url = models.CharField(max_length=500, blank=True)
    submitted_at = models.DateTimeField(auto_now_add=True)
    confirmation_sent_at = models.DateTimeField(null=True, blank=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    # Whether this submission brought the contact into the CRM (rather than matching one).
    created_contact = models.BooleanField(default=False)

    class Meta:
        indexes = [
            models.Index(fields=["form", "-submitted_at"], name="submission_form_recent"),
            models.Index(fields=["contact", "form"], name="submission_contact_form"),
        ]

    def __str__(self):
        return f"{self.form_id} at {self.submitted_at:%Y-%m-%d %H:%M}"
