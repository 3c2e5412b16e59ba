"""Acquisition cost and cost per lead on the data set of test_marketing.py, with cost entries
worked out by hand below; the cost entry pages, their field errors, roles and tenants.

Cost entries added here: Spring mail, 1-31 Jan 3,100 tagged territory "north " and customer
type customer, 1-28 Feb 2,800 untagged; Expo, 1-10 Mar 1,000 tagged product type Hardware.
Without entries, Webinar counts its actual 1,200 over the whole year (365 days) and Dud ad its
500 over June; Autumn mail cost nothing.
"""

from datetime import date
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django_tenants.utils import schema_context

from campaigns.models import Campaign
from crm.users.models import Role, User
from reports import marketing
from reports.costs import (
    acquisition_cost,
    actual_cost_split,
    cost_entries_save,
    first_dimension,
)
from reports.models import CostEntry
from tests.reports.test_marketing import ALPHA, BETA, YEAR, build_data_set, log_in
from tracking.models import AuditEntry

pytestmark = pytest.mark.django_db


@pytest.fixture
def data(in_alpha):
    found = build_data_set()
    cost_entries_save(
        actor=found["admin"],
        campaign=found["Spring mail"],
        entries=[
            {
                "period_start": date(2026, 1, 1),
                "period_end": date(2026, 1, 31),
                "amount": Decimal(3100),
                "territory": "north ",
                "customer_type": "customer",
            },
            {
                "period_start": date(2026, 2, 1),
                "period_end": date(2026, 2, 28),
                "amount": Decimal(2800),
            },
        ],
    )
    cost_entries_save(
        actor=found["admin"],
        campaign=found["Expo"],
        entries=[
            {
                "period_start": date(2026, 3, 1),
                "period_end": date(2026, 3, 10),
                "amount": Decimal(1000),
                "product_type": "Hardware",
            }
        ],
    )
    return found


def table(cube) -> list[tuple]:
    return [
        (*row.labels, row.cost, row.customers, row.acquisition_cost, row.leads, row.cost_per_lead)
        for row in [*cube.rows, cube.total]
    ]


def d(value) -> Decimal:
    return Decimal(value).quantize(Decimal("0.01"))


def test_acquisition_cost_and_cost_per_lead_by_marketing_tool(data):
    cube = acquisition_cost(**YEAR, model="first", dimensions=["tool"], period="month")
    # First touch: Acme's win goes to Spring mail, Beta's to Expo; the leads are Ann (Spring
    # mail), Dee (Autumn mail), Cid (Webinar) and Bob (Expo).
    assert table(cube) == [
        ("Advertising", d(500), 0, None, 0, None),
        ("E-mail", d(5900), 1, d(5900), 2, d(2950)),
        ("Event / trade show", d(1000), 1, d(1000), 1, d(1000)),
        ("Web", d(1200), 0, None, 1, d(1200)),
        ("All", d(8600), 2, d(4300), 4, d(2150)),
    ]


def test_cost_is_shared_by_days_when_the_period_cuts_an_entry(data):
    cube = acquisition_cost(
        start=date(2026, 1, 16),
        end=date(2026, 1, 31),
        model="first",
        dimensions=["tool"],
        period="month",
    )
    # 16 of January's 31 days of Spring mail's 3,100; 16 of the Webinar's 365 days of 1,200;
    # Bob became a lead on 20 Jan (Expo, which cost nothing then).
    assert table(cube) == [
        ("E-mail", d(1600), 0, None, 0, None),
        ("Event / trade show", d(0), 0, None, 1, d(0)),
        ("Web", d(Decimal(1200) * 16 / 365), 0, None, 0, None),
        ("All", d(1600 + Decimal(1200) * 16 / 365), 0, None, 1, d(1600 + Decimal(1200) * 16 / 365)),
    ]


@pytest.mark.parametrize("today", [None, date(2026, 4, 20)])
def test_whole_months_and_the_days_around_them_add_up(data, monkeypatch, today):
    # 16 Jan to 20 Apr: February and March whole (monthly rollup), the rest from the rows. Bob
    # (20 Jan, Expo) and Cid (1 Feb, Webinar) became leads; Beta became a customer (15 Apr).
    # As if today were 20 Apr, April so far is April's monthly row (nothing in it is later).
    if today is not None:
        monkeypatch.setattr(marketing, "today", lambda: today)
    months = marketing._whole_months(date(2026, 1, 16), date(2026, 4, 20))
    assert months == (date(2026, 2, 1), date(2026, 4, 1) if today is None else date(2026, 5, 1))
    if today is not None:
        # A range that ends in a later month takes that month whole too.
        later = marketing._whole_months(date(2026, 1, 16), date(2026, 5, 20))
        assert later == (date(2026, 2, 1), date(2026, 6, 1))

    cube = acquisition_cost(
        start=date(2026, 1, 16),
        end=date(2026, 4, 20),
        model="first",
        dimensions=["tool"],
        period="month",
    )
    web = Decimal(1200) * 95 / 365
    assert table(cube) == [
        ("E-mail", d(1600 + 2800), 0, None, 0, None),
        ("Event / trade show", d(1000), 1, d(1000), 1, d(1000)),
        ("Web", d(web), 0, None, 1, d(web)),
        ("All", d(5400 + web), 1, d(5400 + web), 2, d((5400 + web) / 2)),
    ]


def test_untagged_cost_stays_on_its_own_row_and_tags_match_in_any_case(data):
    cube = acquisition_cost(**YEAR, model="last", dimensions=["territory"], period="month")
    # Customers: Acme (North), Beta (South). Leads: Ann (North), Bob and Cid (South), Dee
    # (no territory). Untagged cost: 2,800 + 1,200 + 1,000 + 500.
    assert table(cube)[:3] == [
        ("north", d(3100), 1, d(3100), 1, d(3100)),
        ("South", d(0), 1, d(0), 2, d(0)),
        ("(not tagged)", d(5500), 0, None, 1, d(5500)),
    ]


def test_the_chart_sums_the_cube_over_all_but_its_first_dimension(data):
    cube = acquisition_cost(**YEAR, model="first", dimensions=["tool", "territory"], period="month")
    assert [
        (row.labels, row.cost, row.customers, row.acquisition_cost) for row in first_dimension(cube)
    ] == [
        (("Advertising",), d(500), 0, None),
        (("E-mail",), d(5900), 1, d(5900)),
        (("Event / trade show",), d(1000), 1, d(1000)),
        (("Web",), d(1200), 0, None),
    ]


def test_by_product_type_leads_are_left_out(data):
    cube = acquisition_cost(**YEAR, model="even", dimensions=["product_type"], period="month")
    # Neither winning deal has products, so both customers are on the untagged row.
    assert not cube.shows_leads
    assert table(cube) == [
        ("Hardware", d(1000), 0, None, None, None),
        ("(not tagged)", d(7600), 2, d(3800), None, None),
        ("All", d(8600), 2, d(4300), None, None),
    ]


def test_by_quarter(data):
    cube = acquisition_cost(**YEAR, model="first", dimensions=["period"], period="quarter")
    q1 = Decimal(5900 + 1000) + Decimal(1200) * 90 / 365
    q2 = Decimal(500) + Decimal(1200) * 91 / 365
    rows = table(cube)
    # Q1: Ann, Bob and Cid became leads; Q2: Beta (15 Apr) and Acme (1 May) became customers.
    assert rows[0] == ("Q1 2026", d(q1), 0, None, 3, d(q1 / 3))
    assert rows[1] == ("Q2 2026", d(q2), 2, d(q2 / 2), 0, None)
    assert [row[0] for row in rows] == ["Q1 2026", "Q2 2026", "Q3 2026", "Q4 2026", "All"]


def test_actual_cost_split_by_month_keeps_every_cent():
    campaign = Campaign(
        actual_cost=Decimal(1000), starts_on=date(2026, 1, 15), ends_on=date(2026, 3, 10)
    )
    split = actual_cost_split(campaign=campaign, today=date(2026, 11, 1))
    # 55 days: 17 in January, 28 in February, 10 in March; March takes the rounding.
    assert [(e["period_start"], e["period_end"], e["amount"]) for e in split] == [
        (date(2026, 1, 15), date(2026, 1, 31), Decimal("309.09")),
        (date(2026, 2, 1), date(2026, 2, 28), Decimal("509.09")),
        (date(2026, 3, 1), date(2026, 3, 10), Decimal("181.82")),
    ]
    assert (
        actual_cost_split(campaign=Campaign(actual_cost=Decimal(5)), today=date(2026, 1, 1)) == []
    )


def test_the_service_refuses_a_bad_entry_and_keeps_the_old_ones(data):
    with pytest.raises(ValidationError) as refused:
        cost_entries_save(
            actor=data["admin"],
            campaign=data["Expo"],
            entries=[
                {"period_start": date(2026, 1, 1), "period_end": date(2026, 1, 2), "amount": 1},
                {"period_start": date(2026, 5, 1), "period_end": date(2026, 4, 1), "amount": -1},
            ],
        )
    assert set(refused.value.message_dict) == {"1-period_end", "1-amount"}
    assert list(
        CostEntry.objects.filter(campaign=data["Expo"]).values_list("amount", flat=True)
    ) == [Decimal("1000.00")]


def formset(*rows, initial=0) -> dict:
    post = {
        "costs-TOTAL_FORMS": str(len(rows)),
        "costs-INITIAL_FORMS": str(initial),
        "costs-MIN_NUM_FORMS": "0",
        "costs-MAX_NUM_FORMS": "200",
    }
    for i, row in enumerate(rows):
        post.update({f"costs-{i}-{name}": value for name, value in row.items()})
    return post


def test_the_entry_page_shows_field_errors_and_saves_nothing_until_they_are_fixed(client, data):
    log_in(client, "marketer@alpha.test", Role.MARKETING)
    dud = data["Dud ad"]
    url = f"/reports/costs/{dud.pk}/"
    page = client.get(url, **ALPHA).content.decode()
    assert 'data-testid="cost-split-offer"' in page
    split = client.get(url, {"split": "1"}, **ALPHA).content.decode()
    assert 'value="2026-06-01"' in split and 'value="500.00"' in split

    bad = client.post(
        url,
        formset(
            {"period_start": "2026-06-10", "period_end": "2026-06-01", "amount": "100"},
            {"period_start": "2026-06-01", "period_end": "2026-06-30", "amount": "lots"},
            {"period_start": "2026-06-01", "period_end": "2026-06-30", "amount": "-5"},
            {
                "period_start": "2026-06-01",
                "period_end": "2026-06-30",
                "amount": "5",
                "customer_type": "martian",
            },
            {"period_start": "", "period_end": "", "amount": ""},
        ),
        **ALPHA,
    )
    body = bad.content.decode()
    assert bad.status_code == 200
    assert "The period ends before it starts." in body
    assert "Enter a number." in body
    assert "Ensure this value is greater than or equal to 0." in body
    assert "Select a valid choice. martian is not one of the available choices." in body
    assert not CostEntry.objects.filter(campaign=dud).exists()

    good = client.post(
        url,
        formset(
            {
                "period_start": "2026-06-01",
                "period_end": "2026-06-15",
                "amount": "300",
                "territory": "West",
                "customer_type": "prospect",
                "product_type": "Software",
            },
            {"period_start": "2026-06-16", "period_end": "2026-06-30", "amount": "200"},
            {"period_start": "", "period_end": "", "amount": ""},
        ),
        **ALPHA,
    )
    assert good.status_code == 302 and good["Location"] == "/reports/costs/"
    assert list(
        CostEntry.objects.filter(campaign=dud)
        .order_by("period_start")
        .values_list("amount", "territory", "customer_type", "product_type")
    ) == [
        (Decimal("300.00"), "West", "prospect", "Software"),
        (Decimal("200.00"), "", "", ""),
    ]
    assert AuditEntry.objects.filter(model="campaigns.campaign", object_id=dud.pk).exists()

    # Editing: the first row is deleted, the second changed.
    again = client.post(
        url,
        formset(
            {
                "period_start": "2026-06-01",
                "period_end": "2026-06-15",
                "amount": "300",
                "DELETE": "on",
            },
            {"period_start": "2026-06-16", "period_end": "2026-06-30", "amount": "250"},
            initial=2,
        ),
        **ALPHA,
    )
    assert again.status_code == 302
    assert list(CostEntry.objects.filter(campaign=dud).values_list("amount", flat=True)) == [
        Decimal("250.00")
    ]
    listing = client.get("/reports/costs/", **ALPHA).content.decode()
    assert "Dud ad" in listing and "250.00" in listing


def test_cost_pages_by_role_and_tenant(client, data, beta):
    spring = data["Spring mail"]
    log_in(client, "seller@alpha.test", Role.SALES)
    assert client.get(f"/reports/costs/{spring.pk}/", **ALPHA).status_code == 403
    assert client.post(f"/reports/costs/{spring.pk}/", formset(), **ALPHA).status_code == 403
    log_in(client, "boss@alpha.test", Role.MANAGER)
    assert client.get(f"/reports/costs/{spring.pk}/", **ALPHA).status_code == 200
    with schema_context(beta.schema_name):
        client.force_login(User.objects.get(email="admin@beta.test"))
    assert client.get(f"/reports/costs/{spring.pk}/", **BETA).status_code == 404
    beta_page = client.get("/reports/acquisition-cost/", YEAR, **BETA).content.decode()
    assert "Spring mail" not in beta_page and "No cost, customer or lead" in beta_page


def test_the_cube_page_with_two_dimensions_its_csv_and_bad_filters(client, data):
    log_in(client, "admin@alpha.test")
    query = {
        "start": "2026-01-01",
        "end": "2026-12-31",
        "model": "first",
        "dimensions": ["tool", "territory"],
    }
    page = client.get("/reports/acquisition-cost/", query, **ALPHA)
    assert page.status_code == 200 and "<svg" in page.content.decode()
    assert "Cost per won customer by marketing tool" in page.content.decode()
    lines = (
        client.get("/reports/acquisition-cost/", {**query, "format": "csv"}, **ALPHA)
        .content.decode()
        .splitlines()
    )
    assert (
        lines[0]
        == "Marketing tool,Territory,Cost,Won customers,Acquisition cost,Leads,Cost per lead"
    )
    assert "E-mail,north,3100.00,1.00,3100.00,1.00,3100.00" in lines
    assert lines[-1] == "All,,8600.00,2.00,4300.00,4.00,2150.00"

    bad = client.get(
        "/reports/acquisition-cost/",
        {"dimensions": ["tool", "colour"], "period": "fortnight", "end": "31/12/2026"},
        **ALPHA,
    ).content.decode()
    assert 'data-testid="report-problems"' in bad
    assert "Slice by: Select a valid choice. colour is not one of the available choices." in bad
    assert (
        "Periods of: Select a valid choice." in bad and "End (included): Enter a valid date." in bad
    )
