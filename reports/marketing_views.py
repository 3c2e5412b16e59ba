"""Marketing results and customer size by source (queries in reports.marketing, rollups in
reports.attribution). Both show tenant-wide totals to every role allowed marketing reports;
they name campaigns and sources, never a contact or an opportunity."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.db import transaction
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from crm.access import require
from reports import marketing
from reports.attribution import marketing_freshness
from reports.charts import bar_chart
from reports.exports import csv_response, wants_csv
from reports.marketing_forms import CustomerSizeFilters, MarketingFilters
from reports.marketing_tasks import marketing_rollup
from reports.rollups import chart_drawn_once
from reports.views import REPORTS, Report

REPORTS.extend(
    [
        Report(
            "Marketing results",
            "reports:marketing",
            "reports.marketing",
            "Leads, opportunities, won customers and revenue by campaign and marketing tool, "
            "under first-touch, last-touch or even-split attribution.",
        ),
        Report(
            "Customer size by source",
            "reports:customer_size",
            "reports.marketing",
            "Average won amount by the contact's source or the first-touch marketing tool.",
        ),
    ]
)


NOT_YET = "These figures are being counted for the first time: reload in a minute or two."


def freshness() -> str:
    """How fresh the rollups are; when they were never counted (a new tenant that opened a
    marketing report before beat came by), a first count is queued, at most once in ten
    minutes per tenant."""
    line = marketing_freshness()
    if line is None:
        if cache.add("reports:marketing-rollup-queued", True, timeout=600):
            transaction.on_commit(marketing_rollup.delay)
        return NOT_YET
    return line


def csv_query(request) -> str:
    params = request.GET.copy()
    params["format"] = "csv"
    return params.urlencode()


@login_required
@require("reports.marketing")
def marketing_report(request):
    """What each campaign or marketing tool brought in a period, under the chosen model."""
    form, values, problems = MarketingFilters.read(request.GET)
    report = marketing.marketing_results(
        start=values["start"], end=values["end"], model=values["model"]
    )
    by_tool = values["by"] == "tool"
    rows = report.tools if by_tool else report.campaigns
    if wants_csv(request):
        return csv_response(
            filename=f"marketing-results-{values['model']}-{values['start']}-{values['end']}",
            header=[
                "Marketing tool" if by_tool else "Campaign",
                *([] if by_tool else ["Marketing tool"]),
                "Leads",
                "Opportunities",
                "Won deals",
                "Won customers",
                "Revenue",
            ],
            rows=(
                [
                    row.label,
                    *([] if by_tool else [row.kind]),
                    row.leads,
                    row.opportunities,
                    row.won,
                    row.customers,
                    row.revenue,
                ]
                for row in [*rows, report.total]
            ),
        )
    model = marketing.Attribution(values["model"]).label
    return render(
        request,
        "reports/marketing.html",
        {
            "title": "Marketing results",
            "form": form,
            "problems": problems,
            "freshness": freshness(),
            "csv_query": csv_query(request),
            "chart": chart_drawn_once(
                bar_chart,
                labels=[tool.label for tool in report.tools],
                series={"Revenue": [float(tool.revenue) for tool in report.tools]},
                title=f"Revenue by marketing tool ({model.lower()})",
            ),
            "rows": rows,
            "total": report.total,
            "by_tool": by_tool,
        },
    )


@login_required
@require("reports.marketing")
@require_POST
def marketing_refresh(request):
    """Queue a refresh of the marketing rollups now, rather than at the next beat."""
    transaction.on_commit(marketing_rollup.delay)
    messages.success(request, "The figures are being refreshed; reload in a moment.")
    back = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
        return redirect(back)
    return redirect("reports:marketing")


@login_required
@require("reports.marketing")
def customer_size_report(request):
    """Does customer size vary with what attracted them: won deals by source or tool."""
    form, values, problems = CustomerSizeFilters.read(request.GET)
    rows = marketing.customer_size(start=values["start"], end=values["end"], by=values["by"])
    group = dict(marketing.SizeBy.choices)[values["by"]]
    if wants_csv(request):
        return csv_response(
            filename=f"customer-size-{values['by']}-{values['start']}-{values['end']}",
            header=[group, "Won deals", "New customers", "Revenue", "Average", "Median"],
            rows=([r.label, r.deals, r.customers, r.revenue, r.average, r.median] for r in rows),
        )
    return render(
        request,
        "reports/marketing_customer_size.html",
        {
            "title": "Customer size by source",
            "form": form,
            "problems": problems,
            "freshness": freshness(),
            "csv_query": csv_query(request),
            "chart": chart_drawn_once(
                bar_chart,
                labels=[row.label for row in rows],
                series={
                    "Average won amount": [float(row.average) for row in rows],
                    "Median": [float(row.median) for row in rows],
                },
                title=f"Won amount by {group.lower()}",
            )
            if rows
            else None,
            "rows": rows,
            "group": group,
        },
    )
