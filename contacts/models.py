from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.db import models


class LifecycleStage(models.TextChoices):
    AWARENESS = "awareness", "Awareness"
    EDUCATION = "education", "Education"
    EVALUATION = "evaluation", "Evaluation"
    PURCHASE = "purchase", "Purchase"
    REORDER = "reorder", "Reorder"


class CustomerType(models.TextChoices):
    PROSPECT = "prospect", "Prospect"
    CUSTOMER = "customer", "Customer"
    PARTNER = "partner", "Partner"
    RESELLER = "reseller", "Reseller"
    OTHER = "other", "Other"


def _owner(related_name: str) -> models.ForeignKey:
    return models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name=related_name,
    )


class Account(models.Model):
    """A company the tenant sells to or works with."""

    name = models.CharField(max_length=200)
    domain = models.CharField(max_length=200, blank=True)
    industry = models.CharField(max_length=100, blank=True)
    employees = models.PositiveIntegerField(null=True, blank=True, help_text="Company size")
    territory = models.CharField(max_length=100, blank=True)
    customer_type = models.CharField(
        max_length=20, choices=CustomerType.choices, default=CustomerType.PROSPECT
    )
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="subsidiaries"
    )
    phone = models.CharField(max_length=50, blank=True)
    street = models.CharField(max_length=200, blank=True)
    postal_code = models.CharField(max_length=20, blank=True)
    city = models.CharField(max_length=100, blank=True)
    country = models.CharField(max_length=100, blank=True)
    external_id = models.CharField(max_length=100, null=True, blank=True, unique=True)
    tags = ArrayField(models.CharField(max_length=50), default=list, blank=True)
    owner = _owner("accounts")
    # Partner organisations that work this account (and so see it, its contacts and deals).
    shared_with = models.ManyToManyField(
        "users.PartnerOrganization", blank=True, related_name="accounts"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            models.Index(fields=["name", "id"]),
            models.Index(fields=["owner", "name", "id"]),
            GinIndex(fields=["tags"], name="account_tags_gin"),
        ]

    def __str__(self):
        return self.name


class Contact(models.Model):
    """A person at an account (or on their own) whom the tenant markets to, sells to or serves."""

    first_name = models.CharField(max_length=100)
    last_name = models.CharField(max_length=100, blank=True)
    email = models.EmailField(blank=True)
    other_emails = ArrayField(models.EmailField(), default=list, blank=True)
    phone = models.CharField(max_length=50, blank=True)
    other_phones = ArrayField(models.CharField(max_length=50), default=list, blank=True)
    title = models.CharField(max_length=150, blank=True)
    account = models.ForeignKey(
        Account, null=True, blank=True, on_delete=models.SET_NULL, related_name="contacts"
    )
    owner = _owner("contacts")
    territory = models.CharField(max_length=100, blank=True)
    customer_type = models.CharField(
        max_length=20, choices=CustomerType.choices, default=CustomerType.PROSPECT
    )
    # The marketing tool or campaign that brought the contact in.
    source = models.CharField(max_length=100, blank=True)
    lifecycle_stage = models.CharField(
        max_length=20, choices=LifecycleStage.choices, default=LifecycleStage.AWARENESS
    )
    interests = ArrayField(models.CharField(max_length=50), default=list, blank=True)
    do_not_email = models.BooleanField(default=False)
    do_not_call = models.BooleanField(default=False)
    do_not_mail = models.BooleanField(default=False)
    external_id = models.CharField(max_length=100, null=True, blank=True, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            models.Index(fields=["last_name", "first_name", "id"]),
            models.Index(fields=["owner", "last_name", "first_name", "id"]),
            models.Index(fields=["email"]),
        ]

    def __str__(self):
        return self.full_name

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()
