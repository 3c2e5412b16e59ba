"""Life-cycle rules: website events, deals and hand edits move the stage; every change is in
the ledger with its time and cause, and on the timeline."""

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from contacts import services as contact_services
from contacts.models import Contact
from crm.demo import pipeline_ensure
from crm.users.models import User
from leads.services import lead_form_create, submission_receive
from opportunities import services as opportunity_services
from tracking.models import Event, LifecycleChange, TimelineEntry
from tracking.scoring import exposure_record, score_events
from tracking.services import field_values

pytestmark = pytest.mark.django_db

T0 = datetime(2025, 4, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def admin(in_alpha):
    return User.objects.get(email="admin@alpha.test")


@pytest.fixture
def contact(admin):
    account = contact_services.account_create(actor=admin, name="Initech")
    return contact_services.contact_create(actor=admin, first_name="Bill", account=account)


@pytest.fixture
def stages(admin):
    return {s.name: s for s in pipeline_ensure().stages.all()}


def event(contact, kind, at, url="", **properties):
    return Event.objects.create(
        id=uuid.uuid4(),
        contact=contact,
        kind=kind,
        occurred_at=at,
        received_at=at,
        rolled_up_at=at,
        url=url,
        properties=properties,
    )


def ledger(contact):
    return list(
        LifecycleChange.objects.filter(contact=contact)
        .order_by("at", "id")
        .values_list("from_stage", "to_stage")
    )


def stage_of(contact):
    return Contact.objects.get(pk=contact.pk).lifecycle_stage


def test_website_events_move_a_contact_forward_and_repeat_purchases_are_reorder_cycles(contact):
    score_events(
        events=[
            event(contact, "page_view", T0, url="https://site.test/blog"),
            event(contact, "form", T0 + timedelta(minutes=1), form_name="Newsletter"),
            event(contact, "page_view", T0 + timedelta(minutes=2), url="https://site.test/pricing"),
            event(contact, "purchase", T0 + timedelta(days=1), order_id="A1"),
        ],
        now=T0 + timedelta(days=1),
    )
    score_events(events=[event(contact, "purchase", T0 + timedelta(days=40))])
    score_events(events=[event(contact, "purchase", T0 + timedelta(days=80))])

    assert ledger(contact) == [
        ("awareness", "education"),
        ("education", "evaluation"),
        ("evaluation", "purchase"),
        ("purchase", "reorder"),
        ("reorder", "reorder"),
    ]
    assert stage_of(contact) == "reorder"
    first = LifecycleChange.objects.filter(contact=contact).order_by("at").first()
    assert first.at == T0 + timedelta(minutes=1) and first.cause == "Filled form 'Newsletter'"
    stage_entries = TimelineEntry.objects.filter(contact=contact, kind=TimelineEntry.Kind.STAGE)
    assert stage_entries.count() == 5
    assert stage_entries.filter(summary__contains="Awareness → Education").exists()


def test_website_views_never_move_a_contact_back(contact, admin):
    contact_services.contact_update(actor=admin, contact=contact, lifecycle_stage="purchase")

    score_events(events=[event(contact, "page_view", T0, url="https://site.test/pricing")])
    score_events(events=[event(contact, "form", T0)])

    assert stage_of(contact) == "purchase"


def test_a_deal_moves_its_primary_contact_and_a_lost_one_moves_them_back(contact, admin, stages):
    deal = opportunity_services.opportunity_create(
        actor=admin,
        name="Pilot",
        account=contact.account,
        primary_contact=contact,
        stage=stages["Qualification"],
        amount=Decimal("100"),
    )
    assert stage_of(contact) == "evaluation"

    opportunity_services.opportunity_close(actor=admin, opportunity=deal, won=False, reason="Price")
    assert stage_of(contact) == "education"

    again = opportunity_services.opportunity_create(
        actor=admin,
        name="Second try",
        account=contact.account,
        primary_contact=contact,
        stage=stages["Qualification"],
    )
    opportunity_services.opportunity_close(actor=admin, opportunity=again, won=True, reason="Yes")
    assert stage_of(contact) == "purchase"

    # A customer's new deal is a new evaluation; losing it returns them to where they were.
    upsell = opportunity_services.opportunity_create(
        actor=admin,
        name="Upsell",
        account=contact.account,
        primary_contact=contact,
        stage=stages["Qualification"],
    )
    assert stage_of(contact) == "evaluation"
    opportunity_services.opportunity_close(actor=admin, opportunity=upsell, won=False, reason="-")
    assert stage_of(contact) == "purchase"

    causes = list(
        LifecycleChange.objects.filter(contact=contact)
        .order_by("at", "id")
        .values_list("cause", flat=True)
    )
    assert causes == [
        "Opportunity Pilot opened",
        "Opportunity Pilot lost",
        "Opportunity Second try opened",
        "Opportunity Second try won",
        "Opportunity Upsell opened",
        "Opportunity Upsell lost",
    ]
    assert LifecycleChange.objects.filter(contact=contact, actor=admin).count() == 6


def test_losing_one_deal_while_another_is_open_keeps_the_contact_in_evaluation(
    contact, admin, stages
):
    deals = [
        opportunity_services.opportunity_create(
            actor=admin,
            name=name,
            account=contact.account,
            primary_contact=contact,
            stage=stages["Qualification"],
        )
        for name in ("One", "Two")
    ]

    opportunity_services.opportunity_close(actor=admin, opportunity=deals[0], won=False, reason="")

    assert stage_of(contact) == "evaluation"


def test_a_hand_edit_is_in_the_ledger_with_its_user(contact, admin):
    contact_services.contact_update(actor=admin, contact=contact, lifecycle_stage="evaluation")
    contact_services.contact_update(actor=admin, contact=contact, title="CTO")

    [change] = LifecycleChange.objects.filter(contact=contact)
    assert (change.from_stage, change.to_stage, change.actor) == ("awareness", "evaluation", admin)
    assert change.cause == f"Set by {admin}"


def test_a_bulk_upsert_records_stage_changes_too(contact, admin):
    before = field_values(contact)
    contact.lifecycle_stage = "education"

    contact_services.records_bulk_save(
        actor=admin, created=[], changed=[(contact, before)], summary=str
    )

    assert ledger(contact) == [("awareness", "education")]


def test_a_logged_meeting_scores_and_a_recorded_form_moves_the_stage(contact, admin):
    contact_services.activity_log(actor=admin, contact=contact, kind="meeting", subject="Demo")
    exposure_record(contact=contact, kind="form", reason="Filled form 'Trial'")

    assert contact.score_changes.filter(kind="meeting", reason="Meeting: Demo").exists()
    assert stage_of(contact) == "education"


def test_a_filled_lead_form_scores_and_moves_its_contact_to_education(admin):
    form = lead_form_create(
        actor=admin, name="Trial", contact_fields=["first_name"], fallback_owner=admin
    )

    submission_receive(form=form, data={"email": "eve@x.test", "first_name": "Eve"})

    contact = Contact.objects.get(email="eve@x.test")
    assert contact.lifecycle_stage == "education"
    assert contact.score_changes.get().reason == "Filled form 'Trial'"
    assert LifecycleChange.objects.get(contact=contact).cause == "Filled form 'Trial'"
