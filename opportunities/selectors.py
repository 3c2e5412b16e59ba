from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Count, DecimalField, ExpressionWrapper, F, Prefetch, QuerySet, Sum
from django.shortcuts import get_object_or_404

from contacts.models import Activity
from crm import access
from opportunities.models import LineItem, Opportunity, Pipeline, Product, Stage, StageChange

CARDS_PER_COLUMN = 20


def opportunity_list(user) -> QuerySet[Opportunity]:
    return (
        access.opportunities_for(user)
        .select_related("account", "owner", "stage")
        .order_by("expected_close", "id")
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


@dataclass
class Column:
    stage: Stage
    cards: list[Opportunity]
    count: int
    total: Decimal
    weighted: Decimal


def pipeline_board(user, pipeline: Pipeline) -> list[Column]:
    """A pipeline's stages as columns: the biggest visible opportunities of each, with the count,
    total and probability-weighted total of all of them (one aggregate query, one per column)."""
    visible = access.opportunities_for(user)
    stages = list(pipeline.stages.order_by("position"))
    weighted = ExpressionWrapper(
        F("amount") * F("stage__probability") / 100,
        output_field=DecimalField(max_digits=16, decimal_places=2),
    )
    totals = {
        row["stage"]: row
        for row in visible.filter(stage__pipeline=pipeline)
        .values("stage")
        .annotate(count=Count("id"), total=Sum("amount"), weighted=Sum(weighted))
    }
    columns = []
    for stage in stages:
        row = totals.get(stage.pk, {})
        cards = list(
            visible.filter(stage=stage)
            .select_related("account", "owner")
            .order_by("-amount", "id")[:CARDS_PER_COLUMN]
        )
        columns.append(
            Column(
                stage=stage,
                cards=cards,
                count=row.get("count", 0),
                total=row.get("total") or Decimal(0),
                weighted=row.get("weighted") or Decimal(0),
            )
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
