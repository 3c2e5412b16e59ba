"""The sales forecast, its drill-down, and pipeline movement (live queries in reports.forecast,
the rollups the pages read in reports.deal_rollups)."""

from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.urls import reverse

from crm.access import can, require
from crm.pagination import Ordering, keyset_page
from reports import deal_rollups, forecast
from reports.charts import bar_chart, line_chart
from reports.exports import csv_response, wants_csv
from reports.filters import today
from reports.forecast_forms import DrillDownForm, ForecastForm
from reports.rollup_tasks import deal_rollups as deal_rollups_task
from reports.rollups import chart_drawn_once, rollup_count_soon
from reports.views import REPORTS, Report

REPORTS.extend(
    [
        Report(
            "Sales forecast",
            "reports:forecast",
            "reports.sales",
            "Pipeline, best case, commit, weighted and closed won by period, against quotas; "
            "how the forecast moved and how accurate it was.",
        ),
        Report(
            "Pipeline movement",
            "reports:pipeline_movement",
            "reports.sales",
            "What entered, advanced, slipped, was won and was lost in a period.",
        ),
    ]
)

DRILL_PAGE_SIZE = 50
DRILL_ORDER = Ordering("amount", ("amount", "id"), descending=True)


def _scope_params(values: dict) -> dict:
    return {
        name: values[name]
        for name in ("period", "team", "territory", "owner")
        if values[name] not in (None, "")
    }


def _drill_urls(values: dict, measures, owner: str | None = None) -> dict[str, str]:
    """{measure: the drill-down's URL} for one row's numbers."""
    params = _scope_params(values)
    if owner is not None:
        params["owner"] = owner
    scoped = f"{reverse('reports:forecast_opportunities')}?{urlencode(params)}"
    return {measure: f"{scoped}&{urlencode({'measure': measure})}" for measure in measures}


def _csv_query(request) -> str:
    params = request.GET.copy()
    params.pop("after", None)
    params["format"] = "csv"
    return params.urlencode()


def _period_links(values: dict, period) -> dict:
    links = {}
    for name, other in (("previous", period.previous()), ("next", period.next())):
        params = {**_scope_params(values), "period": forecast.period_key(other)}
        links[name] = {"label": other.label, "query": urlencode(params)}
    return links


def _table_row(row: forecast.ForecastRow, values: dict, owner: str | None) -> dict:
    urls = _drill_urls(values, forecast.FORECAST_MEASURES, owner)
    return {
        "name": row.name,
        "cells": [
            {"measure": measure, "value": getattr(row.numbers, measure), "url": url}
            for measure, url in urls.items()
        ],
        "quota": row.quota,
        "attainment": row.attainment,
    }


def _people_chart(rows: list[forecast.ForecastRow]):
    if not rows:
        return None
    return chart_drawn_once(
        bar_chart,
        labels=[row.name for row in rows],
        series={
            label: [float(getattr(row.numbers, measure)) for row in rows]
            for measure, label in forecast.FORECAST_MEASURES.items()
        },
    )


def _history_chart(history: list[forecast.HistoryPoint] | None):
    if not history:
        return None
    return chart_drawn_once(
        line_chart,
        labels=[f"{point.taken_at:%Y-%m-%d}" for point in history],
        series={
            label: [float(getattr(point.numbers, measure)) for point in history]
            for measure, label in forecast.FORECAST_MEASURES.items()
        },
    )


def _counted(period) -> tuple[bool, str]:
    """Whether the deal rollups were counted yet, and the line the page shows about it. Never
    counted (a new tenant before beat came by): a count is queued, and the page shows live
    figures meanwhile."""
    freshness = deal_rollups.deals_freshness()
    if freshness is None:
        rollup_count_soon(deal_rollups_task)
        return False, f"{period.label}: live figures as of this moment."
    return True, f"{period.label}. {freshness}"


@login_required
@require("reports.sales")
def forecast_report(request):
    """The forecast for a period and a scope, by salesperson, with its history and accuracy."""
    form, values, problems = ForecastForm.read(request.GET, user=request.user)
    period = forecast.period_from_key(values["period"])
    scope = ForecastForm.scope_of(values)
    counted, freshness = _counted(period)
    numbers = deal_rollups.forecast_counted(request.user, scope, period) if counted else None
    result = forecast.forecast(request.user, scope, period, numbers)
    won = deal_rollups.won_counted if counted else forecast.won_by_period
    if wants_csv(request):
        return csv_response(
            filename=f"forecast-{values['period']}",
            header=["Salesperson", *forecast.FORECAST_MEASURES.values(), "Quota", "Attainment %"],
            rows=[
                [
                    row.name,
                    *(forecast.cents(getattr(row.numbers, m)) for m in forecast.FORECAST_MEASURES),
                    "" if row.quota is None else row.quota,
                    "" if row.attainment is None else row.attainment,
                ]
                for row in [*result.rows, result.total]
            ],
        )
    history = forecast.forecast_history(request.user, scope, period)
    accuracy = forecast.past_accuracy(request.user, scope, period.kind, today=today(), won=won)
    actual = result.total.numbers.closed_won
    context = {
        "title": "Sales forecast",
        "form": form,
        "problems": problems,
        "period": period,
        "period_links": _period_links(values, period),
        "period_ended": period.end <= today(),
        "freshness": (
            freshness
            + (
                f" The last snapshot of this forecast was taken on "
                f"{history[-1].taken_at:%Y-%m-%d %H:%M} UTC."
                if history
                else ""
            )
        ),
        "csv_query": _csv_query(request),
        "chart": _people_chart(result.rows),
        "rows": [_table_row(row, values, row.owner_param) for row in result.rows],
        "total": _table_row(result.total, values, None),
        "quotas_shown": result.quotas_shown,
        "may_set_quotas": can(request.user, "quotas.manage"),
        "quota_query": urlencode({"period": values["period"]}),
        "history": [forecast.Accuracy(point, actual) for point in history or []],
        "history_shown": history is not None,
        "history_chart": _history_chart(history),
        "actual": actual,
        "accuracy": accuracy,
    }
    return render(request, "reports/forecast.html", context)


@login_required
@require("reports.sales")
def forecast_opportunities(request):
    """The opportunities behind one number of the forecast or pipeline-movement report:
    exactly those it sums (the same filter), biggest first, a page at a time."""
    form, values, problems = DrillDownForm.read(request.GET, user=request.user)
    period = forecast.period_from_key(values["period"])
    scope = DrillDownForm.scope_of(values)
    measure = values["measure"]
    opportunities = forecast.measure_opportunities(request.user, scope, period, measure)
    if wants_csv(request):
        return csv_response(
            filename=f"{measure}-{values['period']}",
            header=[
                "Id",
                "Name",
                "Account",
                "Stage",
                "Amount",
                "Currency",
                "Weighted",
                "Expected close",
                "Forecast",
                "Closed at",
                "Owner",
            ],
            rows=(
                [
                    o.pk,
                    o.name,
                    o.account.name,
                    o.stage.name,
                    o.amount,
                    o.currency,
                    forecast.cents(o.weighted),
                    o.expected_close or "",
                    o.get_forecast_category_display(),
                    o.closed_at.isoformat() if o.closed_at else "",
                    o.owner.full_name if o.owner else "",
                ]
                for o in opportunities.order_by(*DRILL_ORDER.order_by()).iterator(chunk_size=2000)
            ),
        )
    totals = forecast.measure_totals(opportunities)
    page = keyset_page(
        opportunities,
        DRILL_ORDER,
        cursor=request.GET.get("after"),
        size=DRILL_PAGE_SIZE,
        total=totals.count,
    )
    if page.cursor_was_invalid:
        problems = [*problems, "Page: that page link was not valid; here is the first page."]
    params = request.GET.copy()
    params.pop("after", None)
    report = "pipeline_movement" if measure in forecast.MOVEMENT_MEASURES else "forecast"
    return render(
        request,
        "reports/forecast_opportunities.html",
        {
            "title": f"{forecast.MEASURES[measure]}, {period.label}",
            "form": form,
            "problems": problems,
            "freshness": "The opportunities behind the number, biggest first.",
            "csv_query": _csv_query(request),
            "measure": measure,
            "totals": totals,
            "page": page,
            "params": params.urlencode(),
            "back_url": f"{reverse(f'reports:{report}')}?{urlencode(_scope_params(values))}",
            "back_label": "Pipeline movement" if report == "pipeline_movement" else "Forecast",
        },
    )


@login_required
@require("reports.sales")
def pipeline_movement(request):
    """What entered, advanced, slipped, was won and was lost in a period."""
    form, values, problems = ForecastForm.read(request.GET, user=request.user)
    period = forecast.period_from_key(values["period"])
    scope = ForecastForm.scope_of(values)
    counted, freshness = _counted(period)
    movement = deal_rollups.movement_counted if counted else forecast.pipeline_movement
    rows = movement(request.user, scope, period)
    if wants_csv(request):
        return csv_response(
            filename=f"pipeline-movement-{values['period']}",
            header=["Movement", "Opportunities", "Amount"],
            rows=[[row.label, row.count, row.amount] for row in rows],
        )
    urls = _drill_urls(values, forecast.MOVEMENT_MEASURES)
    return render(
        request,
        "reports/pipeline_movement.html",
        {
            "title": "Pipeline movement",
            "form": form,
            "problems": problems,
            "period": period,
            "period_links": _period_links(values, period),
            "freshness": freshness,
            "csv_query": _csv_query(request),
            "chart": chart_drawn_once(
                bar_chart,
                labels=[row.label for row in rows],
                series={"Amount": [float(row.amount) for row in rows]},
            ),
            "rows": [{"row": row, "url": urls[row.measure]} for row in rows],
        },
    )
