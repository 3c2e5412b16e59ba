"""Celery work for the marketing reports (beat queues it in every tenant: crm.settings)."""

from celery import shared_task

from reports.attribution import marketing_rollup_refresh


@shared_task
def marketing_rollup() -> dict[str, int]:
    """Bring the marketing rollups up to date in the queuing tenant's schema: incrementally,
    or rebuilt once a day. Safe to run twice; concurrent runs wait for each other."""
    return marketing_rollup_refresh()
