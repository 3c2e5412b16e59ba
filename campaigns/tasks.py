"""Campaign sending tasks: thin, each safe to run twice (see campaigns.sending)."""

import redis
from celery import shared_task

from campaigns import sending


@shared_task
def campaign_dispatch(campaign_id: int) -> int:
    """Queue one chunk task per run of queued rows of a sending campaign (a scheduled one
    starts first if its time has come). Run twice, it queues chunks that claim nothing."""
    if not sending.campaign_start(campaign_id=campaign_id):
        return 0
    chunks = 0
    for first_id, last_id in sending.dispatch_ranges(campaign_id=campaign_id):
        campaign_send_chunk.delay(campaign_id, first_id, last_id)
        chunks += 1
    if not chunks:
        sending.campaign_finish(campaign_id=campaign_id)
    return chunks


@shared_task(
    autoretry_for=(OSError, redis.ConnectionError),
    retry_backoff=5,
    max_retries=5,
)
def campaign_send_chunk(campaign_id: int, first_id: int, last_id: int) -> int:
    """Send one range of a campaign's outbox. A dropped connection (OSError, which smtplib's
    errors for that are) puts the untried rows back and retries the same range."""
    return sending.chunk_send(campaign_id=campaign_id, first_id=first_id, last_id=last_id)


@shared_task
def campaigns_sweep() -> int:
    """Beat, per tenant: start scheduled campaigns that are due, give rows of
    stopped workers back to the queue, and dispatch again sends no worker is at (their tasks
    lost with Redis, or waiting for their window). Returns how many rows went back."""
    for campaign_id in sending.due_campaigns():
        campaign_dispatch.delay(campaign_id)
    requeued = sending.outbox_sweep()
    for campaign_id in sending.stalled_campaigns():
        campaign_dispatch.delay(campaign_id)
    return requeued
