import math
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from contacts import services as contact_services
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
