from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone


class Role(models.TextChoices):
    ADMIN = "admin", "Admin"
    MANAGER = "manager", "Manager"
    SALES = "sales", "Sales"
    MARKETING = "marketing", "Marketing"
    PARTNER = "partner", "Partner"


class Team(models.Model):
    """A group of salespeople and their manager; managers see their teams' records."""

    name = models.CharField(max_length=100, unique=True)

    def __str__(self):
        return self.name


class PartnerOrganization(models.Model):
    """A reseller or agency that works some of the tenant's accounts; its users (role partner)
    see only the accounts shared with it, with their contacts and opportunities."""

    name = models.CharField(max_length=150, unique=True)

    def __str__(self):
        return self.name


class UserManager(BaseUserManager):
    def get_by_natural_key(self, username):
        return self.get(email__iexact=username)


class User(AbstractBaseUser):
    """A person who works in one tenant's CRM. Users live in the tenant's schema, so an account
    exists in exactly one tenant and its login never reaches another."""

    email = models.EmailField(unique=True)
    full_name = models.CharField(max_length=150)
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.SALES)
    team = models.ForeignKey(
        Team, null=True, blank=True, on_delete=models.SET_NULL, related_name="members"
    )
    partner_organization = models.ForeignKey(
        PartnerOrganization, null=True, blank=True, on_delete=models.PROTECT, related_name="users"
    )
    is_active = models.BooleanField(default=True)
    date_joined = models.DateTimeField(default=timezone.now)
    # Set while an invitation is outstanding; cleared when the person sets a password.
    invited_at = models.DateTimeField(null=True, blank=True)
    # The secret in the user's private calendar feed URL; made when first asked for.
    calendar_token = models.CharField(max_length=64, null=True, blank=True, unique=True)
    invited_by = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS = ["full_name"]

    objects = UserManager()

    class Meta:
        constraints = [
            models.UniqueConstraint(Lower("email"), name="user_email_ci_unique"),
        ]
        ordering = ["full_name"]

    def __str__(self):
        return self.full_name or self.email

    @property
    def is_invited(self) -> bool:
        return self.invited_at is not None

    def get_full_name(self):
        return self.full_name

    def get_short_name(self):
        return self.full_name.split(" ")[0] if self.full_name else self.email
