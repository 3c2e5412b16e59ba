"""Creating tenants.

Running every migration for a new schema takes seconds, so schemas are cloned from the template
tenant's schema (`TENANT_BASE_SCHEMA`), which `migrate_schemas` keeps current like any other tenant.
Cloning copies tables, indexes, sequences and the migration history in one SQL call, but still takes
a few hundred milliseconds, so a few spare schemas are cloned ahead of time by a Celery task and
sign-up only renames one (`ALTER SCHEMA ... RENAME`, a catalog update). With no spare left,
sign-up clones on the spot.
"""

import re
import secrets

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django_tenants.clone import CloneSchema
from django_tenants.utils import quote_schema_name, schema_context, schema_exists

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
    template = Tenant.objects.filter(kind=Tenant.Kind.TEMPLATE).first()
    if template is not None:
        return template
    with transaction.atomic():
        template = Tenant.objects.create(
            schema_name=settings.TENANT_BASE_SCHEMA,
            slug="tenant-template",
            name="Template",
            kind=Tenant.Kind.TEMPLATE,
        )
        # No base schema exists yet, so django-tenants runs every migration here.
        template.create_schema(check_if_exists=True, verbosity=verbosity)
    return template


def _template() -> Tenant:
    template = Tenant.objects.filter(kind=Tenant.Kind.TEMPLATE).first()
    if template is None or not schema_exists(template.schema_name):
        raise RuntimeError("The template tenant is missing: run `manage.py setup_platform`.")
    return template


def spares_fill(*, target: int = settings.CRM_SPARE_SCHEMAS) -> int:
    """Clone spare schemas from the template until `target` are waiting; return how many were
    made. Each spare is committed on its own, so a crash keeps the ones already made."""
    made = 0
    while Tenant.objects.filter(kind=Tenant.Kind.SPARE).count() < target:
        with transaction.atomic():
            token = secrets.token_hex(6)
            spare = Tenant.objects.create(
                schema_name=f"spare_{token}",
                slug=f"spare-{token}",
                name="Spare",
                kind=Tenant.Kind.SPARE,
            )
            CloneSchema().clone_schema(_template().schema_name, spare.schema_name, "DATA")
        made += 1
    return made


@transaction.atomic
def tenant_provision(
    *, slug: str, name: str, admin_email: str, admin_password: str, admin_name: str = ""
) -> Tenant:
    """Create a tenant with its schema and its first admin user, all or nothing.

    Everything runs in one transaction (PostgreSQL DDL is transactional): if any step fails, the
    tenant row, its schema and its user all vanish together (a spare it took goes back to being a
    spare) and the same slug can be tried again.
    """
    from crm.tenants.tasks import spares_refill
    from crm.users.services import user_create

    slug_validate(slug)
    owner_email_validate(admin_email)
    schema_name = schema_name_for(slug)
    # SKIP LOCKED: two sign-ups at once each take a different spare instead of queueing.
    tenant = (
        Tenant.objects.select_for_update(skip_locked=True).filter(kind=Tenant.Kind.SPARE).first()
    )
    if tenant is not None:
        with connection.cursor() as cursor:
            cursor.execute(
                f"ALTER SCHEMA {quote_schema_name(tenant.schema_name)} "
                f"RENAME TO {quote_schema_name(schema_name)}"
            )
        tenant.kind = Tenant.Kind.LIVE
    else:
        tenant = Tenant(kind=Tenant.Kind.LIVE)
    tenant.schema_name = schema_name
    tenant.slug = slug
    tenant.name = name
    tenant.owner_email = admin_email.strip().lower()
    tenant.save()
    if not schema_exists(schema_name):
        CloneSchema().clone_schema(_template().schema_name, schema_name, "DATA")
    with schema_context(tenant.schema_name):
        user_create(
            email=admin_email,
            password=admin_password,
            full_name=admin_name or admin_email.split("@")[0],
            role="admin",
        )
    transaction.on_commit(spares_refill.delay)
    return tenant
