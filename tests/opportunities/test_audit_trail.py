"""The change history on a record: stage moves, tasks and appointments are in it, and a changed
link shows the name of what it points to, where the viewer may see that record."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from contacts import selectors
from contacts import services as contact_services
from opportunities import services
from tests.conftest import PASSWORD
from tracking.models import AuditEntry, TimelineEntry

pytestmark = pytest.mark.django_db

ALPHA = {"HTTP_HOST": "alpha.localhost"}


@pytest.fixture
def deal(sales, stages):
    account = contact_services.account_create(actor=sales, name="Initech")
    return services.opportunity_create(
        actor=sales,
        name="Initech renewal",
        account=account,
        stage=stages["Qualification"],
        amount=Decimal("1000"),
    )


def audit_of(instance):
    return AuditEntry.objects.filter(
        model=instance._meta.label_lower, object_id=instance.pk
    ).order_by("id")


def test_a_card_dragged_on_the_board_is_in_the_deals_change_history(client, sales, stages, deal):
    client.post("/login/", {"username": sales.email, "password": PASSWORD}, **ALPHA)

    client.post(f"/opportunities/{deal.pk}/stage/", {"stage": stages["Proposal"].pk}, **ALPHA)

    move = audit_of(deal).last()
    assert (move.action, move.actor) == ("updated", sales)
    assert move.changes == {"stage": [stages["Qualification"].pk, stages["Proposal"].pk]}
    page = client.get(f"/opportunities/{deal.pk}/", **ALPHA)
    history = page.content.decode().split("Change history", 1)[1]
    assert "<code>stage</code>: Qualification → Proposal" in history


def test_closing_a_deal_records_its_stage_closing_time_and_reason(sales, stages, deal):
    services.opportunity_move_stage(
        actor=sales, opportunity=deal, stage=stages["Closed lost"], reason="Went with a rival"
    )

    changes = audit_of(deal).last().changes
    assert changes["stage"] == [stages["Qualification"].pk, stages["Closed lost"].pk]
    assert changes["close_reason"] == ["", "Went with a rival"]
    assert changes["closed_at"][0] is None and changes["closed_at"][1]


def test_a_task_is_audited_when_made_done_and_reopened_and_shown_on_its_deals_account(sales, deal):
    task = contact_services.task_create(actor=sales, title="Call Bill", opportunity=deal)
    contact_services.task_set_done(actor=sales, task=task, done=True)
    contact_services.task_set_done(actor=sales, task=task, done=True)
    contact_services.task_set_done(actor=sales, task=task, done=False)

    made, done, reopened = audit_of(task)
    assert (made.action, made.changes["title"]) == ("created", [None, "Call Bill"])
    assert done.changes["done_at"][0] is None and done.changes["done_at"][1]
    assert reopened.changes["done_at"][1] is None
    assert {made.actor, done.actor, reopened.actor} == {sales}
    # Filed on the deal alone, its news goes on the deal's account's timeline.
    places = TimelineEntry.objects.filter(kind=TimelineEntry.Kind.TASK)
    assert list(places.values_list("account", flat=True)) == [deal.account_id] * 3


def test_an_appointment_is_audited_when_booked(sales):
    start = timezone.now() + timedelta(days=1)
    appointment = contact_services.appointment_create(
        actor=sales, title="Demo", starts_at=start, ends_at=start + timedelta(hours=1)
    )

    made = audit_of(appointment).get()
    assert (made.action, made.actor, made.changes["title"]) == ("created", sales, [None, "Demo"])


def test_a_changed_link_is_named_only_where_the_viewer_may_see_what_it_points_to(
    admin, sales, deal
):
    rivals = contact_services.account_create(actor=admin, name="Rival Corp")
    services.opportunity_update(actor=admin, opportunity=deal, account=rivals, owner=admin)

    for_admin = selectors.audit_trail(admin, deal)[0].changes
    assert for_admin["account"] == ["Initech", "Rival Corp"]
    assert for_admin["owner"] == ["Sally Sales", str(admin)]
    # Sally reaches Initech (hers) but not the admin's account: that one stays an id.
    for_sally = selectors.audit_trail(sales, deal)[0].changes
    assert for_sally["account"] == ["Initech", rivals.pk]
