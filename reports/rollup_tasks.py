"""Celery work for the sales activity, forecast, pipeline movement and customer life-cycle
reports (beat queues it in every tenant: crm.settings)."""

from celery import shared_task

from reports.activity import activity_rollup_refresh
from reports.deal_rollups import deal_rollups_refresh
from reports.lifecycle import lifecycle_rollup_refresh


@shared_task
def activity_rollup() -> int:
    """Bring the activity rollup up to date in the queuing tenant's schema: incrementally, or
    rebuilt once a day. Safe to run twice: a refresh that finds another at work returns."""
    return activity_rollup_refresh()


@shared_task
def lifecycle_rollup() -> int:
    """Bring the life-cycle rollup up to date in the queuing tenant's schema: incrementally,
    or rebuilt once a day. Safe to run twice: a refresh that finds another at work returns."""
    return lifecycle_rollup_refresh()


@shared_task
def deal_rollups() -> int:
    """Bring the forecast and pipeline-movement rollups up to date in the queuing tenant's
    schema: incrementally, or rebuilt once a day. Safe to run twice: a refresh that finds
    another at work returns."""
    return deal_rollups_refresh()
