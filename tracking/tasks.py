"""Celery tasks of website tracking: draining each tenant's buffer into its schema.

Beat runs `tracking_drains_dispatch` every `CRM_TRACKING_DISPATCH_SECONDS` (1 s): it queues one
`tracking_drain` in each tenant whose stream got entries since its last drain began, at most
one queued per tenant at a time. A sweep every minute queues a drain in every tenant, for entries
left pending by a worker that was killed (nothing marks those dirty again). With
`CRM_TRACKING_QUEUE` set, both go to that queue, for a worker kept for them (`make run` starts
one), so that campaign sends on the other workers never hold them up. The e-mails telling owners
that a contact is ready to talk go out in tasks of their own, on the default queue.
"""

import smtplib

from celery import shared_task
from django.conf import settings
from django.core.mail import EmailMessage
from django_tenants.utils import schema_context

from tracking import buffer
from tracking.drain import drain


@shared_task
def tracking_drain() -> int:
    """Drain the tenant's stream (runs in the tenant's schema); the events written. Safe to
    run twice at once: the second returns as soon as it sees the first's lock."""
    result = drain()
    return result.inserted if result is not None else 0


@shared_task(needs_tenant=False)
def tracking_drains_dispatch() -> int:
    """Queue a drain in each tenant the ingest endpoint marked dirty; returns how many."""
    from crm.tenants.models import Tenant

    client = buffer.client()
    dirty = sorted(schema.decode() for schema in client.smembers(buffer.DIRTY))
    if not dirty:
        return 0
    live = set(
        Tenant.objects.filter(schema_name__in=dirty, kind=Tenant.Kind.LIVE).values_list(
            "schema_name", flat=True
        )
    )
    queued = 0
    for schema in dirty:
        if schema not in live:
            client.srem(buffer.DIRTY, schema)
            continue
        # A drain already queued (and not started) takes these entries too.
        if client.set(buffer.queued_key(schema), 1, nx=True, ex=30):
            with schema_context(schema):
                tracking_drain.delay()
            queued += 1
    return queued


@shared_task(
    needs_tenant=False,
    autoretry_for=(smtplib.SMTPException, OSError),
    retry_backoff=30,
    max_retries=6,
)
def ready_notice_send(*, subject: str, body: str, to: str) -> None:
    """E-mail an owner that a contact of theirs is ready to talk (queued by scoring when the
    crossing commits). A failed send is tried again, backing off from 30 s over about an hour;
    a server that took the message but dropped the connection before answering may get it
    twice."""
    EmailMessage(subject=subject, body=body, from_email=settings.DEFAULT_FROM_EMAIL, to=[to]).send()
