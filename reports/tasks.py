from celery import shared_task

from reports.forecast import forecast_snapshots_take


@shared_task
def forecast_snapshots() -> int:
    """Beat, weekly, per tenant: keep the forecast per owner for the current and next month,
    quarter and year (see reports.forecast.forecast_snapshots_take; safe to run twice)."""
    return forecast_snapshots_take()
