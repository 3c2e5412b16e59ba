"""Writes on opportunities. Each stage change is kept in the stage history and shown on the
timeline of the account (and of the primary contact), in the same transaction."""

from django.db import transaction
from django.utils import timezone

from opportunities.models import ForecastCategory, Opportunity, Stage, StageChange
from tracking.models import TimelineEntry
from tracking.services import audit_record, timeline_add


@transaction.atomic
def opportunity_create(*, actor, **fields) -> Opportunity:
    opportunity = Opportunity(**fields)
    if opportunity.owner_id is None:
        opportunity.owner = actor
    opportunity.full_clean()
    opportunity.save()
    StageChange.objects.create(
        opportunity=opportunity,
        to_stage=opportunity.stage,
        changed_at=timezone.now(),
        changed_by=actor,
    )
    audit_record(instance=opportunity, action="created", actor=actor)
    timeline_add(
        kind=TimelineEntry.Kind.OPPORTUNITY,
        contact=opportunity.primary_contact,
        account=opportunity.account,
        actor=actor,
        summary=f"New opportunity {opportunity.name} in {opportunity.stage}",
    )
    return opportunity


@transaction.atomic
def opportunity_move_stage(*, actor, opportunity: Opportunity, stage: Stage) -> Opportunity:
    """Move an opportunity to another stage of its pipeline. Locks the row, so two people dragging
    the same card at once record two moves in order; moving to the stage it is in does nothing."""
    locked = Opportunity.objects.select_for_update().select_related("stage").get(pk=opportunity.pk)
    if locked.stage_id == stage.pk:
        return locked
    if stage.pipeline_id != locked.stage.pipeline_id:
        raise ValueError("A stage of another pipeline.")
    previous = locked.stage
    now = timezone.now()
    StageChange.objects.create(
        opportunity=locked, from_stage=previous, to_stage=stage, changed_at=now, changed_by=actor
    )
    locked.stage = stage
    if stage.is_won or stage.is_lost:
        locked.closed_at = now
        locked.forecast_category = ForecastCategory.CLOSED
    elif previous.is_won or previous.is_lost:
        locked.closed_at = None
        locked.forecast_category = ForecastCategory.PIPELINE
    locked.save(update_fields=["stage", "closed_at", "forecast_category", "updated_at"])
    timeline_add(
        kind=TimelineEntry.Kind.OPPORTUNITY,
        contact=locked.primary_contact,
        account=locked.account,
        actor=actor,
        summary=f"{locked.name} moved from {previous} to {stage}",
    )
    return locked
