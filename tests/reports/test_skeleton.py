"""The reports index and the parts every report uses: URL filters that fall back to defaults
with a message, periods, CSV downloads and server-drawn charts."""

from datetime import date

import pytest
from django import forms

from crm.users.models import Role
from crm.users.services import user_create
from reports.charts import bar_chart, funnel_chart
from reports.exports import csv_response
from reports.filters import ReportForm, period_of, periods
from tests.conftest import PASSWORD

ALPHA = {"HTTP_HOST": "alpha.localhost"}


class _Form(ReportForm):
    period = forms.ChoiceField(choices=[("month", "Month"), ("year", "Year")], initial="month")
    start = forms.DateField(required=False, initial=lambda: date(2026, 1, 1))
    end = forms.DateField(required=False, initial=lambda: date(2026, 12, 31))


def test_good_filters_are_used_and_bad_ones_give_way_to_the_defaults_with_a_message():
    _, values, problems = _Form.read({"period": "year", "start": "2026-03-01"})
    assert values == {"period": "year", "start": date(2026, 3, 1), "end": date(2026, 12, 31)}
    assert problems == []

    _, values, problems = _Form.read({"period": "decade", "start": "yesterday"})
    assert values == {"period": "month", "start": date(2026, 1, 1), "end": date(2026, 12, 31)}
    assert len(problems) == 2

    _, values, problems = _Form.read({"start": "2026-05-01", "end": "2026-02-01"})
    assert (values["start"], values["end"]) == (date(2026, 1, 1), date(2026, 12, 31))
    assert problems == ["End: The end is before the start."]

    form, values, problems = _Form.read({})
    assert not form.is_bound and values["period"] == "month" and problems == []


def test_periods_are_calendar_months_quarters_and_years():
    q = period_of("quarter", date(2026, 11, 23))
    assert (q.start, q.end, q.label) == (date(2026, 10, 1), date(2027, 1, 1), "Q4 2026")
    assert period_of("month", date(2026, 12, 5)).end == date(2027, 1, 1)
    assert period_of("year", date(2026, 6, 1)).label == "2026"
    assert [p.label for p in periods("quarter", date(2026, 2, 1), date(2026, 8, 1))] == [
        "Q1 2026",
        "Q2 2026",
        "Q3 2026",
    ]
    assert q.previous().label == "Q3 2026" and q.next().label == "Q1 2027"


def test_csv_cells_that_a_spreadsheet_would_run_are_written_as_text():
    response = csv_response(filename="x", header=["name", "n"], rows=[["=cmd()", 3], ["Ann", 1]])
    assert response.content.decode().splitlines() == ["name,n", "'=cmd(),3", "Ann,1"]
    assert response["Content-Disposition"] == 'attachment; filename="x.csv"'


def test_charts_are_inline_svg_with_their_labels_escaped():
    svg = bar_chart(labels=["<b>Q1</b>", "Q2"], series={"Won": [1, 2]})
    assert svg.startswith("<svg") and "<script" not in svg
    assert "<b>Q1</b>" not in svg and "&lt;b&gt;Q1&lt;/b&gt;" in svg
    assert "<svg" in funnel_chart(steps=[("Awareness", 10), ("Education", 4)])


@pytest.mark.django_db
def test_the_index_is_for_managers_admins_and_marketers(client, in_alpha):
    sales = user_create(email="rs@alpha.test", password=PASSWORD, full_name="S", role=Role.SALES)
    client.post("/login/", {"username": sales.email, "password": PASSWORD}, **ALPHA)
    assert client.get("/reports/", **ALPHA).status_code == 403
    assert "/reports/" not in client.get("/", **ALPHA).content.decode()

    manager = user_create(
        email="rm@alpha.test", password=PASSWORD, full_name="M", role=Role.MANAGER
    )
    client.force_login(manager)
    assert 'href="/reports/"' in client.get("/", **ALPHA).content.decode()
    assert client.get("/reports/", **ALPHA).status_code == 200
