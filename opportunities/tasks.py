from celery import shared_task

from opportunities.services import stage_totals_compact


@shared_task
def stage_totals_compact_run() -> int:
    """Fold the pipeline board's stage-total rows in the queuing tenant's schema (queued for
    every tenant by the beat job); safe to run twice at once."""
    return stage_totals_compact()
