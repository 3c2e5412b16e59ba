from django.db import models
from django.db.models.functions import Lower
from django_tenants.models import DomainMixin, TenantMixin


class Tenant(TenantMixin):
    """A company that uses the CRM. All its data lives in its own PostgreSQL schema.

    Besides live tenants there are two kinds of rows that nobody can reach by host: the template,
    whose schema new schemas are cloned from, and spares, empty schemas cloned ahead of time so
    that sign-up only has to rename one (see `crm.tenants.services`). Being tenant rows, both are
    migrated by `migrate_schemas` like every live tenant.

    `auto_create_schema` is off so that a plain `save()` never runs migrations behind the
    caller's back.
    """

    class Kind(models.TextChoices):
        LIVE = "live", "Live"
        TEMPLATE = "template", "Template"
        SPARE = "spare", "Spare"

    slug = models.SlugField(max_length=30, unique=True)
    name = models.CharField(max_length=200)
    # The founder's e-mail: one workspace per founder address, checked at sign-up.
    owner_email = models.EmailField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.LIVE)
    # Requests per minute each API key of the tenant may make (set by the platform operator).
    api_rate_limit = models.PositiveIntegerField(default=600)
    # Marketing e-mails a second the tenant may send (campaigns.governor; set by the operator).
    email_send_rate = models.PositiveIntegerField(default=100)

    auto_create_schema = False
    auto_drop_schema = True

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["kind"],
                condition=models.Q(kind="template"),
                name="tenant_single_template",
            ),
            models.UniqueConstraint(
                Lower("owner_email"),
                condition=~models.Q(owner_email=""),
                name="tenant_owner_email_unique",
            ),
        ]

    def __str__(self):
        return self.name


class Domain(DomainMixin):
    """A host name that routes to a tenant, besides its `<slug>.<base domain>` address."""
