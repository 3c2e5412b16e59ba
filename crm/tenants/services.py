"""Creating tenants.

A tenant's schema is cloned from the template tenant's schema (`TENANT_BASE_SCHEMA`), which
`migrate_schemas` keeps current like any other tenant. Cloning copies tables, indexes, sequences and
the migration history in one SQL call, which is what lets sign-up answer in well under a second
instead of running every migration.
"""

import re

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django_tenants.clone import CloneSchema
from django_tenants.utils import schema_context, schema_exists

from crm.tenants.models import Tenant

SLUG_PATTERN = re.compile(r"^[a-z][a-z0-9-]{1,28}[a-z0-9]$")
RESERVED_SLUGS = frozenset(
    {
        "admin",
        "api",
        "app",
        "assets",
        "auth",
        "billing",
        "blog",
        "cdn",
        "demo-template",
        "dev",
        "docs",
        "ftp",
        "help",
        "imap",
        "login",
        "mail",
        "media",
        "pop",
        "public",
        "signup",
        "smtp",
        "static",
        "status",
        "support",
        "template",
        "tenant-template",
        "test",
        "www",
    }
)


def slug_validate(slug: str) -> None:
    """Raise ValidationError naming what is wrong with a workspace slug."""
    if not 3 <= len(slug) <= 30:
        raise ValidationError("Use 3 to 30 characters.", code="length")
    if not SLUG_PATTERN.match(slug) or "--" in slug:
        raise ValidationError(
            "Use lowercase letters, digits and single hyphens, starting with a letter and not "
            "ending with a hyphen.",
            code="characters",
        )
    if slug in RESERVED_SLUGS or slug.startswith(("pg-", "xn--")):
        raise ValidationError("This address is reserved; choose another.", code="reserved")
    if Tenant.objects.filter(slug=slug).exists():
        raise ValidationError("This address is taken; choose another.", code="taken")


def owner_email_validate(email: str) -> None:
    if Tenant.objects.filter(owner_email__iexact=email.strip()).exists():
        raise ValidationError(
            "This e-mail already owns a workspace; log in there instead.", code="taken"
        )


def schema_name_for(slug: str) -> str:
    return "t_" + slug.replace("-", "_")


def template_ensure(*, verbosity: int = 0) -> Tenant:
    """Create the template tenant (fully migrated) if it does not exist yet.

    Later migrations reach it through `migrate_schemas`, which migrates every tenant row.
    """
    template = Tenant.objects.filter(is_template=True).first()
    if template is not None:
        return template
    with transaction.atomic():
        template = Tenant.objects.create(
            schema_name=settings.TENANT_BASE_SCHEMA,
            slug="tenant-template",
            name="Template",
            is_template=True,
        )
        # No base schema exists yet, so django-tenants runs every migration here.
        template.create_schema(check_if_exists=True, verbosity=verbosity)
    return template


@transaction.atomic
def tenant_provision(
    *, slug: str, name: str, admin_email: str, admin_password: str, admin_name: str = ""
) -> Tenant:
    """Create a tenant with its schema and its first admin user, all or nothing.

    Everything runs in one transaction (PostgreSQL DDL is transactional): if any step fails, the
    tenant row, its schema and its user all vanish together and the same slug can be tried again.
    """
    from crm.users.services import user_create

    slug_validate(slug)
    template = Tenant.objects.filter(is_template=True).first()
    if template is None or not schema_exists(template.schema_name):
        raise RuntimeError("The template tenant is missing: run `manage.py setup_platform`.")

    owner_email_validate(admin_email)
    tenant = Tenant.objects.create(
        schema_name=schema_name_for(slug),
        slug=slug,
        name=name,
        owner_email=admin_email.strip().lower(),
    )
    CloneSchema().clone_schema(template.schema_name, tenant.schema_name, "DATA")
    with schema_context(tenant.schema_name):
        user_create(
            email=admin_email,
            password=admin_password,
            full_name=admin_name or admin_email.split("@")[0],
            role="admin",
        )
    return tenant
