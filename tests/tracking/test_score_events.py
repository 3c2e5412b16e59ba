import math
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from campaigns.engagement import email_click_record, email_open_record
from campaigns.models import CampaignLink, OutboxMessage
from campaigns.services import campaign_create
from contacts import services as contact_services
from contacts.models import Contact
from crm.users.models import User
from tracking.models import Engagement, Event, ScoreChange
from tracking.scoring import score_events, score_now, tracking_settings

pytestmark = pytest.mark.django_db

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def admin(in_alpha):
    return User.objects.get(email="admin@alpha.test")


@pytest.fixture
def contact(admin):
    return contact_services.contact_create(actor=admin, first_name="Ada", email="ada@x.test")


def event(contact, kind="page_view", at=T0, url="https://site.test/", **extra):
    return Event.objects.create(
        id=uuid.uuid4(),
        contact=contact,
        kind=kind,
        occurred_at=at,
        received_at=at,
        url=url,
        rolled_up_at=at,
        **extra,
    )


def test_a_batch_adds_each_kinds_weight_and_the_score_halves_every_half_life(contact):
    settings = tracking_settings()
    settings.weights = {"page_view": 1, "pricing_view": 5}
    settings.half_life_days = 10
    settings.save()

    score_events(
        events=[
            event(contact, url="https://site.test/pricing?plan=pro"),
            event(contact, url="https://site.test/blog/a", at=T0 + timedelta(seconds=1)),
        ],
        now=T0,
    )

    engagement = Engagement.objects.get(contact=contact)
    assert score_now(engagement, at=T0 + timedelta(seconds=1)) == pytest.approx(6)
    assert score_now(engagement, at=T0 + timedelta(days=10, seconds=1)) == pytest.approx(3)
    reasons = list(ScoreChange.objects.order_by("at").values_list("reason", "points"))
    assert reasons == [("Viewed /pricing", 5), ("Viewed /blog/a", 1)]
    expected_rank = math.log(6) + (T0 + timedelta(seconds=1)).timestamp() * math.log(2) / (
        10 * 86400
    )
    assert engagement.rank == pytest.approx(expected_rank)


def test_an_event_arriving_late_adds_its_points_decayed_to_the_stored_moment(contact):
    settings = tracking_settings()
    settings.weights = {"page_view": 4}
    settings.half_life_days = 1
    settings.save()
    score_events(events=[event(contact, at=T0 + timedelta(days=2))], now=T0)

    score_events(events=[event(contact, at=T0)], now=T0)

    engagement = Engagement.objects.get(contact=contact)
    assert engagement.at == T0 + timedelta(days=2)
    assert engagement.value == pytest.approx(4 + 1)


def test_a_batch_of_thousands_of_events_over_many_contacts_takes_a_few_queries(
    admin, django_assert_max_num_queries
):
    contacts = Contact.objects.bulk_create(
        [Contact(first_name=f"C{n}", owner=admin) for n in range(500)]
    )
    events = [
        Event(
            id=uuid.uuid4(),
            contact=contacts[n % 500],
            kind="page_view" if n % 10 else "product_view",
            occurred_at=T0 + timedelta(seconds=n),
            received_at=T0,
            url=f"https://site.test/{'pricing' if n % 7 == 0 else 'blog'}/{n}",
            properties={"sku": f"SKU-{n}"},
        )
        for n in range(5000)
    ]
    Event.objects.bulk_create(events)
    tracking_settings()

    # The settings; lock the Engagement rows, create the missing ones and lock those; one
    # UPDATE and one COPY; lock the contacts whose stage moves, one UPDATE per target stage,
    # the ledger and the timeline (a sequence read and a COPY each).
    with django_assert_max_num_queries(12):
        score_events(events=events, now=T0 + timedelta(hours=2))

    assert Engagement.objects.count() == 500
    assert ScoreChange.objects.count() == 5000
    assert Contact.objects.filter(lifecycle_stage="evaluation").count() == 500


def test_campaign_email_opens_and_clicks_score_with_the_campaigns_name(admin, contact):
    campaign = campaign_create(actor=admin, name="Spring offer", kind="email")
    outbox = OutboxMessage.objects.create(
        campaign=campaign, contact=contact, email=contact.email, status="sent", message_id="<m@x>"
    )
    link = CampaignLink.objects.create(campaign=campaign, url="https://shop.test/offer")

    email_open_record(outbox_id=outbox.pk)
    email_open_record(outbox_id=outbox.pk)
    email_click_record(outbox=outbox, link=link)

    assert list(contact.score_changes.order_by("id").values_list("kind", "reason")) == [
        ("email_open", "Opened the 'Spring offer' e-mail"),
        ("email_click", "Clicked 'Spring offer' link: https://shop.test/offer"),
    ]
