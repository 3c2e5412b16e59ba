"""The sales activity report page (numbers in reports.activity)."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from crm.access import require
from reports import activity
from reports.activity_forms import ActivityForm
from reports.charts import line_chart
from reports.exports import csv_response, wants_csv
from reports.rollup_tasks import activity_rollup
from reports.rollups import NOT_COUNTED, chart_drawn_once, rollup_count_soon
from reports.views import REPORTS, Report

REPORTS.append(
    Report(
        "Sales activity",
        "reports:activity",
        "reports.sales",
        "Calls, meetings, e-mails, letters and tasks done per salesperson per week, with "
        "trends, and activities per won opportunity.",
    )
)

CSV_HEADER = [
    "Week",
    "Salesperson",
    *activity.LABELS.values(),
    "Opportunities won",
    "Activities on won opportunities",
]


def _csv_query(request) -> str:
    params = request.GET.copy()
    params["format"] = "csv"
    return params.urlencode()


@login_required
@require("reports.sales")
def activity_report(request):
    """Each salesperson's activities and tasks done in the weeks chosen, week by week."""
    form, values, problems = ActivityForm.read(request.GET, viewer=request.user)
    people = ActivityForm.people_of(values, viewer=request.user)
    start, end = values["start"], values["end"]
    if wants_csv(request):
        weeks = activity.weeks_between(start, end)
        return csv_response(
            filename=f"activity-{weeks[0]:%Y-%m-%d}-{weeks[-1]:%Y-%m-%d}",
            header=CSV_HEADER,
            rows=(
                [
                    f"{week:%Y-%m-%d}",
                    name,
                    *(getattr(counts, number) for number in activity.NUMBERS),
                ]
                for week, name, counts in activity.activity_grid(
                    people=people, start=start, end=end
                )
            ),
        )
    report = activity.activity_report(people=people, start=start, end=end)
    freshness = activity.activity_freshness()
    if freshness is None:
        rollup_count_soon(activity_rollup)
    labels = [f"{week:%d %b}" for week in report.weeks]
    context = {
        "title": "Sales activity",
        "form": form,
        "problems": problems,
        "freshness": freshness or NOT_COUNTED,
        "csv_query": _csv_query(request),
        "chart": chart_drawn_once(
            line_chart,
            labels=labels,
            series={
                label: [getattr(report.by_week[week], name) for week in report.weeks]
                for name, label in activity.LABELS.items()
            },
        ),
        "report": report,
        "weeks": [
            (label, report.by_week[week]) for label, week in zip(labels, report.weeks, strict=True)
        ],
        "labels": activity.LABELS,
    }
    return render(request, "reports/activity.html", context)
