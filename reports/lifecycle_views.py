"""The customer life-cycle report page (numbers in reports.lifecycle)."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from crm.access import require
from reports import lifecycle
from reports.charts import funnel_chart
from reports.exports import csv_response, wants_csv
from reports.filters import periods
from reports.lifecycle_forms import GROUP_BY, LifecycleForm
from reports.rollup_tasks import lifecycle_rollup
from reports.rollups import NOT_COUNTED, chart_drawn_once, rollup_count_soon
from reports.views import REPORTS, Report

REPORTS.append(
    Report(
        "Customer life cycle",
        "reports:lifecycle",
        "reports.sales",
        "For each stage from awareness to reorder: how many contacts entered and moved on, "
        "the conversion rate and the days spent there, by period, source, territory and "
        "customer type.",
    )
)

CSV_HEADER = [
    "Period",
    "Group",
    "Stage",
    "Entered",
    "Moved on",
    "Conversion %",
    "Left",
    "Still there",
    "Median days",
    "90th percentile days",
]


def _csv_query(request) -> str:
    params = request.GET.copy()
    params["format"] = "csv"
    return params.urlencode()


def _days(value: float | None) -> float | str:
    return "" if value is None else round(value, 1)


@login_required
@require("reports.sales")
def lifecycle_report(request):
    """The stages' numbers for each period chosen (and each value of a dimension)."""
    form, values, problems = LifecycleForm.read(request.GET)
    chosen = periods(values["period"], values["start"], values["end"])
    report = lifecycle.lifecycle_report(
        periods=chosen,
        group_by=values["group_by"],
        filters=LifecycleForm.filters_of(values),
    )
    if wants_csv(request):
        return csv_response(
            filename=f"life-cycle-{chosen[0].label}-{chosen[-1].label}".replace(" ", "-"),
            header=CSV_HEADER,
            rows=(
                [
                    group.period.label,
                    group.value if group.value is not None else "All",
                    row.label,
                    row.entered,
                    row.moved_on,
                    "" if row.conversion is None else row.conversion,
                    row.left,
                    row.still_there,
                    _days(row.median_days),
                    _days(row.p90_days),
                ]
                for group in report.groups
                for row in group.stages
            ),
        )
    freshness = lifecycle.lifecycle_freshness()
    if freshness is None:
        rollup_count_soon(lifecycle_rollup)
    funnel = [(lifecycle.STAGE_LABELS[s], n) for s, n in report.entered.items()]
    context = {
        "title": "Customer life cycle",
        "form": form,
        "problems": problems,
        "freshness": freshness or NOT_COUNTED,
        "csv_query": _csv_query(request),
        "chart": chart_drawn_once(
            funnel_chart,
            steps=funnel,
            title=f"Contacts entering each stage, {chosen[0].label} to {chosen[-1].label}",
        )
        if any(n for _, n in funnel)
        else None,
        "report": report,
        "funnel": funnel,
        "group_label": dict(GROUP_BY)[values["group_by"]],
    }
    return render(request, "reports/lifecycle.html", context)
