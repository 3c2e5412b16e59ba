from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from crm.access import require
from opportunities import selectors, services
from opportunities.models import Pipeline, Stage

PAGE_SIZE = 50


@login_required
@require("opportunities.view")
def opportunity_list(request):
    page = Paginator(selectors.opportunity_list(request.user), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    return render(request, "opportunities/opportunity_list.html", {"page": page})


def _pipeline(request) -> Pipeline | None:
    pipelines = selectors.pipelines()
    wanted = request.GET.get("pipeline") or request.POST.get("pipeline")
    if wanted and wanted.isdigit():
        return pipelines.filter(pk=wanted).first() or pipelines.first()
    return pipelines.first()


@login_required
@require("opportunities.view")
def board(request):
    """The pipeline board: opportunities as cards in stage columns."""
    pipeline = _pipeline(request)
    context = {
        "pipeline": pipeline,
        "pipelines": selectors.pipelines(),
        "columns": selectors.pipeline_board(request.user, pipeline) if pipeline else [],
    }
    return render(request, "opportunities/board.html", context)


@login_required
@require("opportunities.view")
@require_POST
def move_stage(request, pk):
    """Move a card (drag and drop, or the card's stage menu). Answers htmx with the re-drawn
    board, so the column totals follow; a plain form post is redirected back to the board."""
    opportunity = selectors.opportunity_get(request.user, pk)
    stage_id = request.POST.get("stage", "")
    if not stage_id.isdigit():
        return HttpResponseBadRequest("Choose a stage.")
    stage = get_object_or_404(Stage, pk=stage_id, pipeline_id=opportunity.stage.pipeline_id)
    services.opportunity_move_stage(actor=request.user, opportunity=opportunity, stage=stage)
    if request.htmx:
        pipeline = stage.pipeline
        return render(
            request,
            "opportunities/_board.html",
            {
                "pipeline": pipeline,
                "columns": selectors.pipeline_board(request.user, pipeline),
            },
        )
    return redirect(f"/opportunities/board/?pipeline={stage.pipeline_id}")
