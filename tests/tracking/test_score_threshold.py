"""The threshold of acceptance with a controlled clock: every event says when it happened and
every call says what time it is, so nothing sleeps and nothing depends on the wall clock."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from contacts import services as contact_services
from contacts.models import Task
from crm.users.models import User
from integrations import webhooks
from integrations.models import WebhookDelivery
from tracking.models import Engagement, Event, TimelineEntry
from tracking.scoring import score_events, score_now, tracking_settings

pytestmark = pytest.mark.django_db

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)


@pytest.fixture
def owner(in_alpha):
    return User.objects.get(email="admin@alpha.test")


@pytest.fixture
def contact(owner):
    account = contact_services.account_create(actor=owner, name="Initech", industry="Software")
    return contact_services.contact_create(
        actor=owner, first_name="Ada", last_name="Lovelace", email="ada@x.test", account=account
    )


@pytest.fixture(autouse=True)
def scale(in_alpha):
    settings = tracking_settings()
    settings.weights = {"custom": 30, "page_view": 1}
    settings.half_life_days = 1
    settings.threshold = 50
    settings.rearm_below = 0.6  # re-armed below 30
    settings.cooldown_days = 7
    settings.ideal_customer = {"industry": ["software"], "size": ["50-500"]}
    settings.save()
    return settings


def signup(contact, at, name="signup"):
    event = Event.objects.create(
        id=uuid.uuid4(),
        contact=contact,
        kind="custom",
        name=name,
        occurred_at=at,
        received_at=at,
        rolled_up_at=at,
    )
    return score_events(events=[event], now=at)


def tasks(contact):
    return list(Task.objects.filter(contact=contact, title__startswith="Talk to"))


def test_the_score_crosses_once_and_again_only_after_falling_below_rearm_and_cooldown(
    contact, owner, mailbox, django_capture_on_commit_callbacks, celery_worker
):
    """The owner's e-mail goes out from a real worker, in a task of its own."""
    # Given 30 points, then 30 more a second later: the score is just under 60, over 50.
    assert signup(contact, T0) == []
    with django_capture_on_commit_callbacks(execute=True):
        crossed = signup(contact, T0 + timedelta(seconds=1), name="demo booked")

    # Then the contact is sales-ready, the owner has one action item, a SCORE entry, a mail.
    assert len(crossed) == 1
    engagement = Engagement.objects.get(contact=contact)
    assert engagement.sales_ready and engagement.ready_since == T0 + timedelta(seconds=1)
    assert engagement.fit_grade == "B"  # industry matches; the company size is unknown
    [task] = tasks(contact)
    assert task.assignee == owner and "Did demo booked" in task.notes
    score_entry = TimelineEntry.objects.get(contact=contact, kind=TimelineEntry.Kind.SCORE)
    assert "reached the threshold 50" in score_entry.summary
    mail = mailbox.wait_for(owner.email)
    assert mail["Subject"] == "Ready to talk: Ada Lovelace"
    assert "Did signup" in mail.get_payload() and f"/contacts/{contact.pk}/" in mail.get_payload()

    # When more comes while it is still high, and after a half-life while it stayed above 30:
    signup(contact, T0 + timedelta(hours=1))
    signup(contact, T0 + timedelta(days=1, hours=2))
    # Then no second crossing.
    assert len(tasks(contact)) == 1
    assert Engagement.objects.get(contact=contact).sales_ready

    # When it decays below 30 (re-armed) and climbs back over 50 within the cooldown:
    low = T0 + timedelta(days=5)
    engagement = Engagement.objects.get(contact=contact)
    assert score_now(engagement, at=low) < 30
    assert signup(contact, low) == []
    assert not Engagement.objects.get(contact=contact).sales_ready
    assert signup(contact, low + timedelta(seconds=1)) == []
    assert score_now(Engagement.objects.get(contact=contact), at=low) > 50
    # Then still one crossing: the cooldown (7 days since the first) has not passed.
    assert len(tasks(contact)) == 1

    # When after the cooldown it falls and climbs back over the threshold again:
    later = T0 + timedelta(days=9)
    signup(contact, later)
    crossed = signup(contact, later + timedelta(seconds=1))
    # Then it crosses a second time.
    assert len(crossed) == 1
    assert len(tasks(contact)) == 2
    assert Engagement.objects.get(contact=contact).last_crossed_at == later + timedelta(seconds=1)


def test_the_score_halves_every_half_life_and_is_exact_at_read_time(contact):
    signup(contact, T0)

    engagement = Engagement.objects.get(contact=contact)
    assert score_now(engagement, at=T0) == pytest.approx(30)
    assert score_now(engagement, at=T0 + timedelta(days=1)) == pytest.approx(15)
    assert score_now(engagement, at=T0 + timedelta(days=3)) == pytest.approx(3.75)


def test_a_backlog_that_crossed_long_ago_but_has_decayed_since_does_not_notify(contact):
    first = Event.objects.create(
        id=uuid.uuid4(),
        contact=contact,
        kind="custom",
        name="a",
        occurred_at=T0,
        received_at=T0,
        rolled_up_at=T0,
    )
    second = Event.objects.create(
        id=uuid.uuid4(),
        contact=contact,
        kind="custom",
        name="b",
        occurred_at=T0 + timedelta(seconds=1),
        received_at=T0,
        rolled_up_at=T0,
    )

    crossed = score_events(events=[first, second], now=T0 + timedelta(days=30))

    assert crossed == []
    assert not Engagement.objects.get(contact=contact).sales_ready
    assert tasks(contact) == []


def test_a_contact_without_an_owner_is_flagged_and_put_on_the_timeline_without_a_task(
    owner, mailbox, django_capture_on_commit_callbacks
):
    contact = contact_services.contact_create(actor=owner, first_name="Nobody's")
    contact_services.contact_update(actor=owner, contact=contact, owner=None)
    sent_before = len(mailbox.messages)

    signup(contact, T0)
    with django_capture_on_commit_callbacks(execute=True):
        signup(contact, T0 + timedelta(seconds=1))

    assert Engagement.objects.get(contact=contact).sales_ready
    assert TimelineEntry.objects.filter(contact=contact, kind="score").exists()
    assert tasks(contact) == []
    assert len(mailbox.messages) == sent_before


def test_crossing_is_a_webhook_event_with_the_contact_its_score_and_reasons(
    contact, owner, settings
):
    settings.CRM_WEBHOOKS_ALLOW_PRIVATE = True
    listening = webhooks.webhook_endpoint_create(
        actor=owner, url="http://127.0.0.1:9/ready", events=["contact.sales_ready"]
    )
    webhooks.webhook_endpoint_create(
        actor=owner, url="http://127.0.0.1:9/other", events=["contact.deleted"]
    )

    signup(contact, T0)
    assert not WebhookDelivery.objects.exists()
    signup(contact, T0 + timedelta(seconds=1), name="demo booked")

    delivery = WebhookDelivery.objects.get()
    assert (delivery.endpoint, delivery.event) == (listening, "contact.sales_ready")
    data = delivery.payload["data"]
    assert (data["id"], data["email"]) == (contact.pk, "ada@x.test")
    ready = data["sales_ready"]
    assert (ready["threshold"], ready["fit_grade"]) == (50, "B")
    assert 50 < ready["score"] <= 60  # 30 points twice, one a second older
    assert ready["at"].startswith("2025-03-03T09:00:01")
    assert {r["reason"] for r in ready["reasons"]} == {"Did signup", "Did demo booked"}
    # Still high an hour later: no second crossing, no second event.
    signup(contact, T0 + timedelta(hours=1))
    assert WebhookDelivery.objects.count() == 1
