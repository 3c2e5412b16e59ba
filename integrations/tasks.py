from celery import shared_task
from django.utils import timezone

from crm.api import idempotency
from integrations.models import WebhookDelivery
from integrations.webhooks import webhook_deliveries_due, webhook_delivery_send


@shared_task
def webhook_deliver(delivery_id: int) -> str | None:
    """Make one attempt at a webhook delivery and, if it failed and attempts remain, queue the
    next one for when its backoff ends. A duplicate or early task finds the delivery not due
    (the claim is a conditional UPDATE) and does nothing. Returns the delivery's new status."""
    delivery = webhook_delivery_send(delivery_id=delivery_id)
    if delivery is None:
        return None
    if delivery.status == WebhookDelivery.Status.PENDING:
        wait = (delivery.next_attempt_at - timezone.now()).total_seconds()
        webhook_deliver.apply_async((delivery_id,), countdown=max(wait, 0))
    return delivery.status


@shared_task
def webhook_deliveries_sweep() -> int:
    """Queue again the deliveries whose task was lost or whose worker died (Celery beat runs this
    in every tenant's schema each minute). Safe to run twice: each delivery is sent once."""
    due = webhook_deliveries_due(now=timezone.now())
    for pk in due:
        webhook_deliver.delay(pk)
    return len(due)


@shared_task
def idempotency_keys_purge() -> int:
    """Beat, per tenant, hourly: forget Idempotency-Keys older than a day."""
    return idempotency.keys_purge()
