from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Count, DecimalField, ExpressionWrapper, F, QuerySet, Sum
from django.shortcuts import get_object_or_404

from crm import access
from opportunities.models import Opportunity, Pipeline, Stage

CARDS_PER_COLUMN = 20


def opportunity_list(user) -> QuerySet[Opportunity]:
    return (
        access.opportunities_for(user)
        .select_related("account", "owner", "stage")
        .order_by("expected_close", "id")
    )


def opportunity_get(user, pk: int) -> Opportunity:
    return get_object_or_404(access.opportunities_for(user).select_related("stage"), pk=pk)


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
