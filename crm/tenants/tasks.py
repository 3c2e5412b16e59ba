from celery import shared_task

from crm.tenants.services import spares_fill


@shared_task(needs_tenant=False)
def spares_refill() -> int:
    """Top up the spare schemas after a sign-up took one. Safe to run twice: it only makes
    what is missing."""
    return spares_fill()


@shared_task(needs_tenant=False)
def for_each_tenant(task_name: str) -> int:
    """Queue a tenant task once in every live tenant's schema (Celery beat calls this)."""
    from django_tenants.utils import schema_context

    from crm.celery import app
    from crm.tenants.models import Tenant

    task = app.tasks[task_name]
    schemas = list(
        Tenant.objects.filter(kind=Tenant.Kind.LIVE).values_list("schema_name", flat=True)
    )
    for schema in schemas:
        with schema_context(schema):
            task.delay()
    return len(schemas)
