"""Celery work for the sales activity, pipeline movement and customer life-cycle reports (beat
queues it in every tenant: crm.settings)."""

from celery import shared_task

from reports.activity import activity_rollup_refresh
from reports.lifecycle import lifecycle_rollup_refresh
from reports.movement import movement_rollup_refresh


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
def movement_rollup() -> int:
    """Bring the pipeline-movement rollup up to date in the queuing tenant's schema:
    incrementally, or rebuilt once a day. Safe to run twice: a refresh that finds another at
    work returns."""
    return movement_rollup_refresh()
