"""Writes on pipelines, products and opportunities. Each stage change is kept in the stage history
and shown on the timeline of the account (and of the primary contact), in the same transaction."""

from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import DecimalField, ExpressionWrapper, F, Sum
from django.utils import timezone

from integrations.webhooks import webhook_emit
from opportunities.models import (
    ForecastCategory,
    LineItem,
    Opportunity,
    Pipeline,
    Product,
    Stage,
    StageChange,
)
from tracking import lifecycle
from tracking.models import AuditEntry, TimelineEntry
from tracking.services import audit_record, audited_update, field_values, timeline_add


def _closing_fields(opportunity: Opportunity, stage: Stage, previous: Stage | None, now) -> None:
    """Entering a won or lost stage closes the deal; leaving one reopens it."""
    if stage.is_won or stage.is_lost:
        opportunity.closed_at = now
        opportunity.forecast_category = ForecastCategory.CLOSED
    elif previous is not None and (previous.is_won or previous.is_lost):
        opportunity.closed_at = None
        opportunity.close_reason = ""
        opportunity.forecast_category = ForecastCategory.PIPELINE


def _lifecycle(opportunity: Opportunity, stage: Stage, previous: Stage | None, actor) -> None:
    """The primary contact's life-cycle stage follows the deal: opened, won or lost."""
    if stage.is_won:
        change = lifecycle.WON
    elif stage.is_lost:
        change = lifecycle.LOST
    elif previous is None or previous.is_won or previous.is_lost:
        change = lifecycle.OPENED
    else:
        return
    lifecycle.lifecycle_opportunity_changed(opportunity=opportunity, change=change, actor=actor)


@transaction.atomic
def opportunity_create(*, actor, **fields) -> Opportunity:
    opportunity = Opportunity(**fields)
    if opportunity.owner_id is None:
        opportunity.owner = actor
    now = timezone.now()
    _closing_fields(opportunity, opportunity.stage, None, now)
    opportunity.full_clean()
    opportunity.save()
    StageChange.objects.create(
        opportunity=opportunity, to_stage=opportunity.stage, changed_at=now, changed_by=actor
    )
    audit_record(instance=opportunity, action="created", actor=actor)
    timeline_add(
        kind=TimelineEntry.Kind.OPPORTUNITY,
        contact=opportunity.primary_contact,
        account=opportunity.account,
        actor=actor,
        summary=f"New opportunity {opportunity.name} in {opportunity.stage}",
    )
    _lifecycle(opportunity, opportunity.stage, None, actor)
    webhook_emit(event="opportunity.created", instance=opportunity)
    return opportunity


@transaction.atomic
def opportunity_update(*, actor, opportunity: Opportunity, **fields) -> Opportunity:
    """Change an opportunity's fields; a new stage goes through `opportunity_move_stage`, so it
    is in the stage history like a move on the board."""
    stage = fields.pop("stage", None)
    # A fresh copy: the caller's may carry the new stage already (a bound form sets it), and the
    # stage must only change through the move below.
    stored = Opportunity.objects.get(pk=opportunity.pk)
    entry = audited_update(actor=actor, instance=stored, fields=fields)
    if entry is not None:
        changed = ", ".join(name.replace("_", " ") for name in entry.changes)
        timeline_add(
            kind=TimelineEntry.Kind.OPPORTUNITY,
            contact=stored.primary_contact,
            account=stored.account,
            actor=actor,
            summary=f"{actor} changed {changed} of {stored.name}",
        )
        webhook_emit(event="opportunity.updated", instance=stored)
    if stage is not None and stage.pk != stored.stage_id:
        stored = opportunity_move_stage(actor=actor, opportunity=stored, stage=stage)
    return stored


@transaction.atomic
def opportunity_move_stage(
    *, actor, opportunity: Opportunity, stage: Stage, reason: str = ""
) -> Opportunity:
    """Move an opportunity to another stage of its pipeline. Locks the row, so two people dragging
    the same card at once record two moves in order; moving to the stage it is in does nothing.
    `reason` says why a deal was won or lost, when the stage is a closing one."""
    locked = Opportunity.objects.select_for_update().select_related("stage").get(pk=opportunity.pk)
    if locked.stage_id == stage.pk:
        return locked
    if stage.pipeline_id != locked.stage.pipeline_id:
        raise ValueError("A stage of another pipeline.")
    previous = locked.stage
    before = field_values(locked)
    now = timezone.now()
    StageChange.objects.create(
        opportunity=locked, from_stage=previous, to_stage=stage, changed_at=now, changed_by=actor
    )
    locked.stage = stage
    _closing_fields(locked, stage, previous, now)
    if reason and (stage.is_won or stage.is_lost):
        locked.close_reason = reason[:200]
    locked.save(
        update_fields=["stage", "closed_at", "forecast_category", "close_reason", "updated_at"]
    )
    audit_record(instance=locked, action="updated", actor=actor, before=before)
    summary = f"{locked.name} moved from {previous} to {stage}"
    timeline_add(
        kind=TimelineEntry.Kind.OPPORTUNITY,
        contact=locked.primary_contact,
        account=locked.account,
        actor=actor,
        summary=f"{summary}: {locked.close_reason}" if locked.close_reason else summary,
    )
    _lifecycle(locked, stage, previous, actor)
    # A move is one event, stage_changed (not also "updated"), naming both stages.
    webhook_emit(
        event="opportunity.stage_changed",
        instance=locked,
        extra={
            "previous_stage": {"id": previous.pk, "name": previous.name},
            "stage_changed_at": now,
        },
    )
    return locked


@transaction.atomic
def opportunity_delete(*, actor, opportunity: Opportunity) -> None:
    """Delete a deal with its stage history and line items; its account's timeline says so."""
    audit_record(instance=opportunity, action="deleted", actor=actor)
    timeline_add(
        kind=TimelineEntry.Kind.OPPORTUNITY,
        contact=opportunity.primary_contact,
        account=opportunity.account,
        actor=actor,
        summary=f"{actor} deleted the opportunity {opportunity.name}",
    )
    webhook_emit(event="opportunity.deleted", instance=opportunity, data={"id": opportunity.pk})
    opportunity.delete()


class NoClosingStage(ValueError):
    """The opportunity's pipeline has no won (or no lost) stage to close it into."""


def opportunity_close(*, actor, opportunity: Opportunity, won: bool, reason: str) -> Opportunity:
    """Mark a deal won or lost, with the reason, by moving it to its pipeline's won or lost
    stage (the first one, if a pipeline has several)."""
    closing = Stage.objects.filter(pipeline_id=opportunity.stage.pipeline_id)
    closing = closing.filter(is_won=True) if won else closing.filter(is_lost=True)
    stage = closing.order_by("position").first()
    if stage is None:
        word = "won" if won else "lost"
        raise NoClosingStage(f"The pipeline {opportunity.stage.pipeline} has no {word} stage.")
    return opportunity_move_stage(actor=actor, opportunity=opportunity, stage=stage, reason=reason)


_LINE_TOTAL = ExpressionWrapper(
    F("quantity") * F("unit_price") * (100 - F("discount_percent")) / 100,
    output_field=DecimalField(max_digits=20, decimal_places=4),
)


def _amount_from_line_items(*, actor, opportunity: Opportunity) -> Opportunity:
    """An opportunity with line items is worth their sum; the change is audited."""
    locked = Opportunity.objects.select_for_update().get(pk=opportunity.pk)
    total = LineItem.objects.filter(opportunity=locked).aggregate(total=Sum(_LINE_TOTAL))["total"]
    amount = (total or Decimal(0)).quantize(Decimal("0.01"))
    if amount != locked.amount:
        before = field_values(locked)
        locked.amount = amount
        locked.save(update_fields=["amount", "updated_at"])
        audit_record(instance=locked, action="updated", actor=actor, before=before)
        webhook_emit(event="opportunity.updated", instance=locked)
    return locked


@transaction.atomic
def line_item_add(
    *,
    actor,
    opportunity: Opportunity,
    product: Product,
    quantity: Decimal,
    unit_price: Decimal | None = None,
    discount_percent: Decimal = Decimal(0),
) -> LineItem:
    """Put a product on an opportunity (at its list price unless a price is given)."""
    item = LineItem(
        opportunity=opportunity,
        product=product,
        quantity=quantity,
        unit_price=product.unit_price if unit_price is None else unit_price,
        discount_percent=discount_percent,
    )
    item.full_clean()
    item.save()
    _amount_from_line_items(actor=actor, opportunity=opportunity)
    return item


@transaction.atomic
def line_item_remove(*, actor, item: LineItem) -> Opportunity:
    opportunity = item.opportunity
    item.delete()
    return _amount_from_line_items(actor=actor, opportunity=opportunity)


@transaction.atomic
def product_create(*, actor, **fields) -> Product:
    product = Product(**fields)
    product.full_clean()
    product.save()
    audit_record(instance=product, action="created", actor=actor)
    return product


@transaction.atomic
def product_update(*, actor, product: Product, **fields) -> Product:
    audited_update(actor=actor, instance=product, fields=fields)
    return product


def _stage_in_use(stage: Stage) -> bool:
    return (
        Opportunity.objects.filter(stage=stage).exists()
        or StageChange.objects.filter(to_stage=stage).exists()
    )


def _stage_label(stage: Stage) -> str:
    """A stage as the pipeline's audit trail shows it: whatever the reports read of it."""
    closing = ", won" if stage.is_won else ", lost" if stage.is_lost else ""
    return f"{stage.name} ({stage.probability}%{closing})"


@transaction.atomic
def pipeline_save(*, actor, pipeline: Pipeline | None, name: str, stages: list[dict]) -> Pipeline:
    """Create a pipeline or change one: its name and its stages, in the order given.

    Each item of `stages` has `name`, `probability`, `is_won`, `is_lost`, and, for a stage that
    exists, `id` and `delete`. A stage that deals are in, or that the stage history names, cannot
    be deleted (reports read that history): rename it instead. A pipeline needs at least one open
    stage, names unique within it, and a stage cannot be both won and lost.
    """
    before_name, before_stages = None, []
    if pipeline is None:
        pipeline = Pipeline(name=name)
    else:
        pipeline = Pipeline.objects.select_for_update().get(pk=pipeline.pk)
        before_name = pipeline.name
        before_stages = [_stage_label(stage) for stage in pipeline.stages.order_by("position")]
        pipeline.name = name
    pipeline.full_clean()
    pipeline.save()
    existing = {stage.pk: stage for stage in Stage.objects.filter(pipeline=pipeline)}
    kept, errors = [], []
    for item in stages:
        stage = existing.get(item.get("id")) if item.get("id") else None
        if stage is not None and item.get("delete"):
            if _stage_in_use(stage):
                errors.append(
                    f"{stage.name} has opportunities or stage history; rename it instead."
                )
            else:
                stage.delete()
            continue
        if item.get("delete"):
            continue
        if item["is_won"] and item["is_lost"]:
            errors.append(f"{item['name']} cannot be both won and lost.")
        kept.append((stage or Stage(pipeline=pipeline), item))
    names = [item["name"].strip().lower() for _, item in kept]
    if len(set(names)) != len(names):
        errors.append("Two stages have the same name.")
    if not any(not item["is_won"] and not item["is_lost"] for _, item in kept):
        errors.append("A pipeline needs at least one open stage.")
    if errors:
        raise ValidationError(errors)
    # Positions are unique per pipeline: park the kept stages out of the way, then number them.
    Stage.objects.filter(pipeline=pipeline).update(position=F("position") + 10_000)
    for position, (stage, item) in enumerate(kept):
        stage.name = item["name"].strip()
        stage.probability = item["probability"]
        stage.is_won = item["is_won"]
        stage.is_lost = item["is_lost"]
        stage.position = position
        stage.full_clean()
        stage.save()
    after = [_stage_label(stage) for stage, _ in kept]
    if after != before_stages or name != before_name:
        AuditEntry.objects.create(
            model=pipeline._meta.label_lower,
            object_id=pipeline.pk,
            action="updated" if before_name is not None else "created",
            changes={"name": [before_name, name], "stages": [before_stages, after]},
            actor=actor,
        )
    return pipeline


def stage_totals_compact() -> int:
    """Fold the stage-total rows the triggers added (see StageTotal) into one row per stage and
    owner, leaving out those that sum to nothing; how many rows it wrote. One statement: rows a
    trigger adds meanwhile are not in its snapshot and wait for the next fold, and a second fold
    running at once finds the first one's rows gone and writes none."""
    with connection.cursor() as cursor:
        cursor.execute(
            "WITH folded AS (DELETE FROM opportunities_stagetotal "
            "RETURNING stage_id, owner_id, count, amount) "
            "INSERT INTO opportunities_stagetotal (stage_id, owner_id, count, amount) "
            "SELECT stage_id, owner_id, sum(count), sum(amount) FROM folded "
            "GROUP BY stage_id, owner_id HAVING sum(count) <> 0 OR sum(amount) <> 0"
        )
        return cursor.rowcount


@transaction.atomic
def stage_totals_rebuild() -> int:
    """Count the stage totals afresh from the deals, for when something went around the
    triggers (a restore, `session_replication_role = replica`, triggers disabled by hand); how
    many rows there are now. Writers of deals wait until it commits."""
    with connection.cursor() as cursor:
        cursor.execute("LOCK TABLE opportunities_opportunity IN SHARE MODE")
        cursor.execute("DELETE FROM opportunities_stagetotal")
        cursor.execute(
            "INSERT INTO opportunities_stagetotal (stage_id, owner_id, count, amount) "
            "SELECT stage_id, owner_id, count(*), sum(amount) FROM opportunities_opportunity "
            "GROUP BY stage_id, owner_id"
        )
        return cursor.rowcount
