from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from contacts import quick_actions
from contacts import selectors as contact_selectors
from contacts.export import export_response
from contacts.forms import ActivityForm, TaskForm
from crm.access import require
from crm.forms import report_errors
from crm.lists import list_page
from crm.pagination import Ordering
from opportunities import selectors, services
from opportunities.filters import OpportunityFilter
from opportunities.forms import (
    CloseForm,
    LineItemForm,
    OpportunityForm,
    PipelineForm,
    ProductForm,
    StageFormSet,
)
from opportunities.models import LineItem, Pipeline, Product, Stage

ORDERINGS = {
    "newest": Ordering("newest", ("created_at", "id"), descending=True),
    "name": Ordering("name", ("name", "id")),
    "amount": Ordering("amount", ("amount", "id"), descending=True),
}
# The export's columns: (header, field or annotation of selectors.opportunity_export).
EXPORT_COLUMNS = (
    ("id", "id"),
    ("name", "name"),
    ("account", "account__name"),
    ("primary_contact", "primary_contact_name"),
    ("owner", "owner__email"),
    ("pipeline", "stage__pipeline__name"),
    ("stage", "stage__name"),
    ("amount", "amount"),
    ("currency", "currency"),
    ("expected_close", "expected_close"),
    ("forecast_category", "forecast_category"),
    ("probability", "stage__probability"),
    ("status", "state"),
    ("closed_at", "closed_at"),
    ("close_reason", "close_reason"),
    ("next_step", "next_step"),
)


@login_required
@require("opportunities.view")
def opportunity_list(request):
    return list_page(
        request,
        selectors.opportunity_list(request.user),
        OpportunityFilter,
        ORDERINGS,
        "opportunities/opportunity_list.html",
    )


@login_required
@require("opportunities.view")
def opportunity_export(request):
    """The opportunity list as CSV, with the list's filters, only what the user may see."""
    return export_response(
        request,
        selectors.opportunity_export(request.user),
        OpportunityFilter,
        EXPORT_COLUMNS,
        "opportunities",
    )


@login_required
@require("opportunities.view")
def opportunity_detail(request, pk):
    """A deal's page: its facts, products, stage history and what was done about it."""
    opportunity = selectors.opportunity_get(request.user, pk)
    return render(
        request,
        "opportunities/opportunity_detail.html",
        {
            "opportunity": opportunity,
            "line_items": selectors.line_items(opportunity),
            "history": selectors.stage_history(opportunity),
            "activities": selectors.opportunity_activities(opportunity),
            "tasks": selectors.opportunity_open_tasks(opportunity),
            "audit": contact_selectors.audit_trail(request.user, opportunity),
            "line_item_form": LineItemForm(),
            "close_form": CloseForm(),
            # Ids of their own: the close form has an "outcome" too.
            "activity_form": ActivityForm(initial={"kind": "call"}, auto_id="activity_%s"),
            "task_form": TaskForm(auto_id="task_%s"),
        },
    )


@login_required
@require("opportunities.view")
@require_POST
def opportunity_log_activity(request, pk):
    opportunity = selectors.opportunity_get(request.user, pk)
    back = reverse("opportunities:detail", args=[opportunity.pk])
    return quick_actions.log_activity(request, back=back, opportunity=opportunity)


@login_required
@require("opportunities.view")
@require_POST
def opportunity_add_task(request, pk):
    opportunity = selectors.opportunity_get(request.user, pk)
    back = reverse("opportunities:detail", args=[opportunity.pk])
    return quick_actions.add_task(request, back=back, opportunity=opportunity)


@login_required
@require("opportunities.view")
def opportunity_create(request):
    initial = {}
    account_id = request.GET.get("account", "")
    if account_id.isdigit():
        initial["account"] = contact_selectors.account_get(request.user, int(account_id))
    form = OpportunityForm(request.POST or None, initial=initial, user=request.user)
    if request.method == "POST" and form.is_valid():
        opportunity = services.opportunity_create(actor=request.user, **form.cleaned_data)
        messages.success(request, f"{opportunity.name} was added.")
        return redirect("opportunities:detail", pk=opportunity.pk)
    return render(request, "opportunities/opportunity_form.html", {"form": form})


@login_required
@require("opportunities.view")
def opportunity_edit(request, pk):
    opportunity = selectors.opportunity_get(request.user, pk)
    form = OpportunityForm(request.POST or None, instance=opportunity, user=request.user)
    if request.method == "POST" and form.is_valid():
        fields = dict(form.cleaned_data)
        if form.fields["amount"].disabled:
            fields.pop("amount")
        services.opportunity_update(actor=request.user, opportunity=opportunity, **fields)
        messages.success(request, "Saved.")
        return redirect("opportunities:detail", pk=opportunity.pk)
    return render(
        request, "opportunities/opportunity_form.html", {"form": form, "opportunity": opportunity}
    )


@login_required
@require("opportunities.view")
@require_POST
def opportunity_close(request, pk):
    """Mark a deal won or lost, with the reason."""
    opportunity = selectors.opportunity_get(request.user, pk)
    form = CloseForm(request.POST)
    if not form.is_valid():
        report_errors(request, form)
        return redirect("opportunities:detail", pk=pk)
    won = form.cleaned_data["outcome"] == "won"
    try:
        services.opportunity_close(
            actor=request.user, opportunity=opportunity, won=won, reason=form.cleaned_data["reason"]
        )
    except services.NoClosingStage as missing:
        messages.error(request, str(missing))
    else:
        messages.success(request, f"{opportunity.name} marked {'won' if won else 'lost'}.")
    return redirect("opportunities:detail", pk=pk)


@login_required
@require("opportunities.view")
@require_POST
def line_item_add(request, pk):
    opportunity = selectors.opportunity_get(request.user, pk)
    form = LineItemForm(request.POST)
    if form.is_valid():
        services.line_item_add(actor=request.user, opportunity=opportunity, **form.cleaned_data)
        messages.success(request, f"{form.cleaned_data['product']} added.")
    else:
        report_errors(request, form)
    return redirect("opportunities:detail", pk=pk)


@login_required
@require("opportunities.view")
@require_POST
def line_item_remove(request, pk, item_pk):
    opportunity = selectors.opportunity_get(request.user, pk)
    item = get_object_or_404(LineItem, pk=item_pk, opportunity=opportunity)
    services.line_item_remove(actor=request.user, item=item)
    messages.success(request, f"{item.product} removed.")
    return redirect("opportunities:detail", pk=pk)


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


@login_required
@require("pipelines.manage")
def pipeline_list(request):
    return render(
        request,
        "opportunities/pipeline_list.html",
        {"pipelines": selectors.pipelines_with_stages()},
    )


def _stages_initial(pipeline: Pipeline | None) -> list[dict]:
    if pipeline is None:
        return []
    return [
        {
            "id": stage.pk,
            "name": stage.name,
            "probability": stage.probability,
            "is_won": stage.is_won,
            "is_lost": stage.is_lost,
            "ORDER": stage.position + 1,
        }
        for stage in pipeline.stages.order_by("position")
    ]


@login_required
@require("pipelines.manage")
def pipeline_edit(request, pk=None):
    """Create a pipeline or edit one: its name and its stages (rename, set the probability,
    reorder, add, delete the unused)."""
    pipeline = get_object_or_404(Pipeline, pk=pk) if pk else None
    form = PipelineForm(request.POST or None, initial={"name": pipeline.name if pipeline else ""})
    stages = StageFormSet(request.POST or None, initial=_stages_initial(pipeline), prefix="stages")
    if request.method == "POST" and form.is_valid() and stages.is_valid():
        # ordered_forms leaves out the rows marked for deletion and the untouched blank rows.
        items = [{**f.cleaned_data, "delete": False} for f in stages.ordered_forms]
        items += [
            {"id": f.cleaned_data.get("id"), "delete": True}
            for f in stages.deleted_forms
            if f.cleaned_data.get("id")
        ]
        try:
            saved = services.pipeline_save(
                actor=request.user, pipeline=pipeline, name=form.cleaned_data["name"], stages=items
            )
        except ValidationError as invalid:
            for message in invalid.messages:
                form.add_error(None, message)
        else:
            messages.success(request, f"Pipeline {saved.name} saved.")
            return redirect("opportunities:pipeline_list")
    return render(
        request,
        "opportunities/pipeline_form.html",
        {"form": form, "stages": stages, "pipeline": pipeline},
    )


@login_required
@require("products.manage")
def product_list(request):
    return render(request, "opportunities/product_list.html", {"products": selectors.products()})


@login_required
@require("products.manage")
def product_edit(request, pk=None):
    product = get_object_or_404(Product, pk=pk) if pk else None
    form = ProductForm(request.POST or None, instance=product)
    if request.method == "POST" and form.is_valid():
        if product is None:
            saved = services.product_create(actor=request.user, **form.cleaned_data)
        else:
            saved = services.product_update(
                actor=request.user, product=product, **form.cleaned_data
            )
        messages.success(request, f"{saved.name} saved.")
        return redirect("opportunities:product_list")
    return render(request, "opportunities/product_form.html", {"form": form, "product": product})
