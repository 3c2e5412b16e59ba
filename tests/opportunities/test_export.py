"""The opportunity list's CSV export: the list's filters, only the deals the user may see,
streamed, and no cell a spreadsheet would run as a formula."""

import csv
import io
from datetime import date
from decimal import Decimal

import pytest

from contacts import services as contact_services
from crm.users.models import Role
from crm.users.services import user_create
from opportunities import services
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

ALPHA = {"HTTP_HOST": "alpha.localhost"}


@pytest.fixture
def deals(sales, stages):
    """Two of Sally's deals at Initech, one won, and a rival's deal she may not see."""
    account = contact_services.account_create(actor=sales, name="Initech")
    peter = contact_services.contact_create(
        actor=sales, first_name="Peter", last_name="Gibbons", account=account
    )
    renewal = services.opportunity_create(
        actor=sales,
        name="Initech renewal",
        account=account,
        primary_contact=peter,
        stage=stages["Proposal"],
        amount=Decimal("1200.50"),
        currency="EUR",
        expected_close=date(2027, 3, 31),
        forecast_category="commit",
    )
    won = services.opportunity_create(
        actor=sales,
        name='=HYPERLINK("http://evil.test")',
        account=account,
        stage=stages["Proposal"],
    )
    services.opportunity_move_stage(actor=sales, opportunity=won, stage=stages["Closed won"])
    rival = user_create(
        email="rival@alpha.test", password=PASSWORD, full_name="Rival", role=Role.SALES
    )
    hidden = services.opportunity_create(
        actor=rival,
        name="Rival's deal",
        account=contact_services.account_create(actor=rival, name="Rival Co"),
        stage=stages["Proposal"],
    )
    return renewal, won, hidden


def export(client, **params) -> list[dict]:
    response = client.get("/opportunities/export.csv", params, **ALPHA)
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"] == "text/csv"
    assert response["Content-Disposition"].startswith('attachment; filename="opportunities-')
    return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_the_export_holds_the_filtered_deals_the_user_may_see(client, sales, deals, stages):
    renewal, won, hidden = deals
    client.post("/login/", {"username": sales.email, "password": PASSWORD}, **ALPHA)

    everything = export(client)
    open_only = export(client, status="open")

    assert {row["id"] for row in everything} == {str(renewal.pk), str(won.pk)}
    assert "Rival" not in str(everything) and str(hidden.pk) not in {r["id"] for r in everything}
    assert [row["name"] for row in open_only] == ["Initech renewal"]
    row = open_only[0]
    assert row == {
        "id": str(renewal.pk),
        "name": "Initech renewal",
        "account": "Initech",
        "primary_contact": "Peter Gibbons",
        "owner": "sales@alpha.test",
        "pipeline": "Sales",
        "stage": "Proposal",
        "amount": "1200.50",
        "currency": "EUR",
        "expected_close": "2027-03-31",
        "forecast_category": "commit",
        "probability": "50",
        "status": "open",
        "closed_at": "",
        "close_reason": "",
        "next_step": "",
    }
    closed = next(row for row in everything if row["id"] == str(won.pk))
    assert (closed["status"], closed["stage"], closed["primary_contact"]) == (
        "won",
        "Closed won",
        "",
    )
    # The name a spreadsheet would run as a formula is written as text.
    assert closed["name"] == '\'=HYPERLINK("http://evil.test")'


def test_filters_not_understood_export_the_whole_list_and_the_list_links_its_export(
    client, sales, deals
):
    client.post("/login/", {"username": sales.email, "password": PASSWORD}, **ALPHA)

    rows = export(client, stage="nope")
    page = client.get("/opportunities/", {"status": "won"}, **ALPHA).content.decode()

    assert len(rows) == 2
    assert 'href="/opportunities/export.csv?status=won"' in page


def test_a_marketer_gets_no_opportunity_export(client, deals, in_alpha):
    marketer = user_create(
        email="marketing@alpha.test", password=PASSWORD, full_name="M", role=Role.MARKETING
    )
    client.post("/login/", {"username": marketer.email, "password": PASSWORD}, **ALPHA)

    assert client.get("/opportunities/export.csv", **ALPHA).status_code == 403
