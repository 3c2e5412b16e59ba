from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Case, Count, Prefetch, QuerySet, Sum, Value, When
from django.db.models.functions import Concat, Trim
from django.shortcuts import get_object_or_404
from django.utils.html import format_html_join
from django.utils.safestring import mark_safe

from contacts.models import Activity, Task
from crm import access
from opportunities.models import LineItem, Opportunity, Pipeline, Product, Stage, StageChange

CARDS_PER_COLUMN = 20


def opportunity_list(user) -> QuerySet[Opportunity]:
    return (
        access.opportunities_for(user)
        .select_related("account", "owner", "stage")
        .order_by("expected_close", "id")
    )


def opportunity_export(user) -> QuerySet[Opportunity]:
    """The opportunity list with the export's computed columns: the primary contact's name and
    whether the deal is open, won or lost."""
    return opportunity_list(user).annotate(
        primary_contact_name=Trim(
            Concat("primary_contact__first_name", Value(" "), "primary_contact__last_name")
        ),
        state=Case(
            When(stage__is_won=True, then=Value("won")),
            When(stage__is_lost=True, then=Value("lost")),
            default=Value("open"),
        ),
    )


def opportunity_get(user, pk: int) -> Opportunity:
    """An opportunity the user may see, or 404 (the same for "not yours" and "not there")."""
    return get_object_or_404(
        access.opportunities_for(user).select_related(
            "stage__pipeline", "account", "primary_contact", "owner"
        ),
        pk=pk,
    )


def stage_history(opportunity: Opportunity) -> list[StageChange]:
    return list(
        StageChange.objects.filter(opportunity=opportunity)
        .select_related("from_stage", "to_stage", "changed_by")
        .order_by("-changed_at", "-id")
    )


def line_items(opportunity: Opportunity) -> list[LineItem]:
    return list(
        LineItem.objects.filter(opportunity=opportunity).select_related("product").order_by("id")
    )


def opportunity_activities(opportunity: Opportunity) -> list[Activity]:
    return list(
        Activity.objects.filter(opportunity=opportunity)
        .select_related("user")
        .order_by("-occurred_at", "-id")[:50]
    )


def opportunity_open_tasks(opportunity: Opportunity) -> list[Task]:
    return list(
        Task.objects.filter(opportunity=opportunity, done_at__isnull=True)
        .select_related("assignee")
        .order_by("due_on", "id")
    )


@dataclass
class Column:
    stage: Stage
    cards: list[Opportunity]
    count: int
    total: Decimal
    weighted: Decimal
    # The options of the stage menu on each of the column's cards, this stage selected: drawn
    # once per column, as drawing them per card was half the board's rendering time.
    stage_options: str = ""


def pipeline_board(user, pipeline: Pipeline) -> list[Column]:
    """A pipeline's stages as columns: the biggest visible opportunities of each, with the count,
    total and probability-weighted total of all of them (a stage's weighted total is its total
    times its probability).

    The totals add up the stage totals the database keeps per owner (see StageTotal), a few
    rows however many deals there are; a partner's are counted from the deals shared with it."""
    visible = access.opportunities_for(user)
    stages = list(pipeline.stages.order_by("position"))
    kept = access.stage_totals_for(user)
    if kept is None:
        sums = visible.values("stage").annotate(count=Count("*"), total=Sum("amount"))
    else:
        sums = kept.values("stage").annotate(count=Sum("count"), total=Sum("amount"))
    sums = sums.filter(stage__in=[stage.pk for stage in stages]).order_by()
    totals = {row["stage"]: row for row in sums}
    columns = []
    for stage in stages:
        row = totals.get(stage.pk, {})
        total = row.get("total") or Decimal(0)
        cards = list(
            visible.filter(stage=stage)
            .select_related("account")
            .only("name", "amount", "currency", "stage_id", "account__name")
            .order_by("-amount", "id")[:CARDS_PER_COLUMN]
        )
        columns.append(
            Column(
                stage=stage,
                cards=cards,
                count=row.get("count") or 0,
                total=total,
                weighted=total * stage.probability / 100,
            )
        )
    for column in columns:
        column.stage_options = format_html_join(
            "",
            '<option value="{}"{}>{}</option>',
            (
                (stage.pk, mark_safe(" selected") if stage == column.stage else "", stage.name)
                for stage in stages
            ),
        )
    return columns


def pipelines() -> QuerySet[Pipeline]:
    return Pipeline.objects.order_by("name")


def pipelines_with_stages() -> list[Pipeline]:
    return list(
        Pipeline.objects.order_by("name").prefetch_related(
            Prefetch("stages", queryset=Stage.objects.order_by("position"))
        )
    )


def products() -> QuerySet[Product]:
    return Product.objects.order_by("-is_active", "name", "id")
