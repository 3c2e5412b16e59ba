from django.db import models
from django.db.models.functions import Lower
from django_tenants.models import DomainMixin, TenantMixin


class Tenant(TenantMixin):
    """A company that uses the CRM. All its data lives in its own PostgreSQL schema.

    Tenants are created only through `crm.tenants.services.tenant_provision`, which clones the
    schema from the template tenant inside one transaction; `auto_create_schema` is off so that a
    plain `save()` never runs migrations behind the caller's back.
    """

    slug = models.SlugField(max_length=30, unique=True)
    name = models.CharField(max_length=200)
    # The founder's e-mail: one workspace per founder address, checked at sign-up.
    owner_email = models.EmailField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # The schema new tenants are cloned from; it has no domain and no users.
    is_template = models.BooleanField(default=False)

    auto_create_schema = False
    auto_drop_schema = True

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["is_template"],
                condition=models.Q(is_template=True),
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
