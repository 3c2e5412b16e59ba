from decimal import Decimal

import pytest

from contacts import services as contact_services
from crm.users.models import Role
from crm.users.services import user_create
from opportunities import services
from opportunities.models import ForecastCategory, StageChange
from tests.conftest import PASSWORD
from tracking.models import TimelineEntry

pytestmark = pytest.mark.django_db

ALPHA = {"HTTP_HOST": "alpha.localhost"}


@pytest.fixture
def deal(admin, stages):
    account = contact_services.account_create(actor=admin, name="Initech")
    contact = contact_services.contact_create(actor=admin, first_name="Bill", account=account)
    return services.opportunity_create(
        actor=admin,
        name="Initech renewal",
        account=account,
        primary_contact=contact,
        stage=stages["Qualification"],
        amount=Decimal("1000"),
    )


def test_moving_a_deal_records_the_stage_history_and_the_timeline(admin, stages, deal):
    services.opportunity_move_stage(actor=admin, opportunity=deal, stage=stages["Proposal"])
    services.opportunity_move_stage(actor=admin, opportunity=deal, stage=stages["Proposal"])

    history = list(StageChange.objects.filter(opportunity=deal).order_by("changed_at", "id"))
    assert [(h.from_stage and h.from_stage.name, h.to_stage.name) for h in history] == [
        (None, "Qualification"),
        ("Qualification", "Proposal"),
    ]
    assert history[1].changed_by == admin
    moved = TimelineEntry.objects.get(summary__contains="moved from")
    assert moved.summary == "Initech renewal moved from Qualification to Proposal"
    assert moved.contact == deal.primary_contact and moved.account == deal.account


def test_winning_closes_the_deal_and_reopening_puts_it_back_in_the_pipeline(admin, stages, deal):
    won = services.opportunity_move_stage(actor=admin, opportunity=deal, stage=stages["Closed won"])
    assert won.closed_at and won.forecast_category == ForecastCategory.CLOSED

    reopened = services.opportunity_move_stage(
        actor=admin, opportunity=deal, stage=stages["Negotiation"]
    )
    assert reopened.closed_at is None
    assert reopened.forecast_category == ForecastCategory.PIPELINE


def test_the_board_shows_columns_with_totals_and_weighted_totals(client, admin, stages, deal):
    services.opportunity_create(
        actor=admin,
        name="Second",
        account=deal.account,
        stage=stages["Qualification"],
        amount=Decimal("500"),
    )
    client.post("/login/", {"username": admin.email, "password": PASSWORD}, **ALPHA)

    board = client.get("/opportunities/board/", **ALPHA)

    first = board.context["columns"][0]
    assert first.stage.name == "Qualification"
    assert (first.count, first.total, first.weighted) == (2, Decimal("1500"), Decimal("150"))
    assert [c.name for c in first.cards] == ["Initech renewal", "Second"]
    assert board.context["columns"][2].count == 0


def test_moving_a_card_answers_htmx_with_the_redrawn_board(client, admin, stages, deal):
    client.post("/login/", {"username": admin.email, "password": PASSWORD}, **ALPHA)

    response = client.post(
        f"/opportunities/{deal.pk}/stage/",
        {"stage": stages["Proposal"].pk},
        HTTP_HX_REQUEST="true",
        **ALPHA,
    )

    assert response.status_code == 200
    assert response.templates[0].name == "opportunities/_board.html"
    proposal = next(c for c in response.context["columns"] if c.stage.name == "Proposal")
    assert (proposal.count, proposal.weighted) == (1, Decimal("500"))


def test_bad_moves_are_refused_and_change_nothing(client, admin, stages, deal):
    rival = user_create(
        email="rival@alpha.test", password=PASSWORD, full_name="Rival", role=Role.SALES
    )
    client.post("/login/", {"username": admin.email, "password": PASSWORD}, **ALPHA)
    assert (
        client.post(f"/opportunities/{deal.pk}/stage/", {"stage": "x"}, **ALPHA).status_code == 400
    )
    assert (
        client.post(f"/opportunities/{deal.pk}/stage/", {"stage": 999999}, **ALPHA).status_code
        == 404
    )

    client.post("/logout/", **ALPHA)
    client.post("/login/", {"username": rival.email, "password": PASSWORD}, **ALPHA)
    refused = client.post(
        f"/opportunities/{deal.pk}/stage/", {"stage": stages["Proposal"].pk}, **ALPHA
    )

    assert refused.status_code == 404
    deal.refresh_from_db()
    assert deal.stage == stages["Qualification"]
