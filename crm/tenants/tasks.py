from celery import shared_task

from crm.tenants.services import spares_fill


@shared_task(needs_tenant=False)
def spares_refill() -> int:
    """Top up the spare schemas after a sign-up took one. Safe to run twice: it only makes
    what is missing."""
    return spares_fill()
