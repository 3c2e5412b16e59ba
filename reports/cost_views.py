"""Customer acquisition cost and cost per lead (the cube in reports.costs), and the pages where
marketers and managers enter each campaign's cost."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render

from campaigns.models import Campaign
from crm.access import require
from reports import costs
from reports.charts import bar_chart
from reports.exports import csv_response, wants_csv
from reports.filters import today
from reports.marketing import Attribution
from reports.marketing_forms import AcquisitionCostFilters, CostEntryFormSet
from reports.marketing_views import csv_query, freshness
from reports.rollups import chart_drawn_once
from reports.views import REPORTS, Report

REPORTS.append(
    Report(
        "Acquisition cost",
        "reports:acquisition_cost",
        "reports.marketing",
        "Marketing cost per won customer and per lead, sliced by marketing tool, territory, "
        "customer type, product type and period; each campaign's cost entries.",
    )
)


@login_required
@require("reports.marketing")
def acquisition_cost_report(request):
    form, values, problems = AcquisitionCostFilters.read(request.GET)
    cube = costs.acquisition_cost(
        start=values["start"],
        end=values["end"],
        model=values["model"],
        dimensions=values["dimensions"],
        period=values["period"],
    )
    names = dict(costs.Dimension.choices)
    header = [names[d] for d in cube.dimensions]
    if wants_csv(request):
        measures = ["Cost", "Won customers", "Acquisition cost"]
        if cube.shows_leads:
            measures += ["Leads", "Cost per lead"]
        return csv_response(
            filename=f"acquisition-cost-{values['model']}-{values['start']}-{values['end']}",
            header=header + measures,
            rows=(
                [
                    *row.labels,
                    *([""] * (len(header) - len(row.labels))),
                    row.cost,
                    row.customers,
                    row.acquisition_cost if row.acquisition_cost is not None else "",
                    *(
                        [row.leads, row.cost_per_lead if row.cost_per_lead is not None else ""]
                        if cube.shows_leads
                        else []
                    ),
                ]
                for row in [*cube.rows, cube.total]
            ),
        )
    # The chart reads the first dimension alone: a bar for each of its values.
    charted = [row for row in costs.first_dimension(cube) if row.acquisition_cost is not None]
    model = Attribution(values["model"]).label.lower()
    return render(
        request,
        "reports/cost_acquisition.html",
        {
            "title": "Acquisition cost",
            "form": form,
            "problems": problems,
            "freshness": freshness(),
            "csv_query": csv_query(request),
            "chart": chart_drawn_once(
                bar_chart,
                labels=[row.labels[0] for row in charted],
                series={"Acquisition cost": [float(row.acquisition_cost) for row in charted]},
                title=f"Cost per won customer by {header[0].lower()} ({model})",
            )
            if charted
            else None,
            "cube": cube,
            "header": header,
        },
    )


@login_required
@require("reports.marketing")
def cost_campaigns(request):
    """Every campaign, what it cost and whether its cost is entered by period."""
    return render(
        request,
        "reports/cost_campaigns.html",
        {"campaigns": costs.cost_campaigns()},
    )


def _initial(campaign: Campaign, split: bool) -> list[dict]:
    if split:
        return costs.actual_cost_split(campaign=campaign, today=today())
    return list(campaign.cost_entries.order_by("period_start", "id").values(*costs.ENTRY_FIELDS))


@login_required
@require("reports.marketing")
def cost_entries_edit(request, pk):
    """A campaign's cost entries: add, change, delete; or start from its actual cost split by
    month (`?split=1`, offered when it has none)."""
    campaign = get_object_or_404(Campaign, pk=pk)
    has_entries = campaign.cost_entries.exists()
    split = request.GET.get("split") == "1"
    initial = _initial(campaign, split)
    formset = CostEntryFormSet(request.POST or None, initial=initial, prefix="costs")
    if request.method == "POST" and formset.is_valid():
        # Blank extra rows have no cleaned data; rows ticked for deletion are left out.
        kept = [f for f in formset.forms if f.cleaned_data and not f.cleaned_data["DELETE"]]
        try:
            costs.cost_entries_save(
                actor=request.user,
                campaign=campaign,
                entries=[{k: f.cleaned_data[k] for k in costs.ENTRY_FIELDS} for f in kept],
            )
        except ValidationError as invalid:
            for key, problems in invalid.message_dict.items():
                position, _, name = key.partition("-")
                for problem in problems:
                    kept[int(position)].add_error(name, problem)
        else:
            messages.success(request, f"Cost entries of {campaign.name} saved.")
            return redirect("reports:cost_campaigns")
    total = sum((e.get("amount") or 0 for e in initial), 0)
    return render(
        request,
        "reports/cost_entries.html",
        {
            "campaign": campaign,
            "formset": formset,
            "has_entries": has_entries,
            "split": split,
            "initial_total": total,
        },
    )
