"""The 360-degree page's engagement sections: the score now with a sparkline of its history,
the reasons it moved, what the contact viewed, clicked and bought, the fit grade apart, and the
stage history; for contacts the user may see only, in each tenant."""

import uuid
from datetime import timedelta
from itertools import pairwise

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context

from contacts import services as contact_services
from contacts.models import Contact
from crm.users.models import Role, User
from crm.users.services import user_create
from tests.conftest import PASSWORD
from tracking.models import Event, TimelineEntry
from tracking.score_selectors import engagement_panel
from tracking.scoring import score_events, tracking_settings
from tracking.services import timeline_add

pytestmark = pytest.mark.django_db

ALPHA = {"HTTP_HOST": "alpha.localhost"}
BETA = {"HTTP_HOST": "beta.localhost"}


@pytest.fixture
def admin(in_alpha):
    return User.objects.get(email="admin@alpha.test")


@pytest.fixture
def contact(admin):
    settings = tracking_settings()
    settings.weights = {**settings.weights, "page_view": 1, "pricing_view": 5, "purchase": 20}
    settings.ideal_customer = {"industry": ["software"]}
    settings.save()
    account = contact_services.account_create(actor=admin, name="Initech", industry="Software")
    contact = contact_services.contact_create(actor=admin, first_name="Ada", account=account)
    now = timezone.now()
    events = []
    for minutes, kind, url, props in [
        (300, "page_view", "https://site.test/blog", {}),
        (200, "page_view", "https://site.test/pricing", {}),
        (100, "page_view", "https://site.test/pricing", {}),
        (50, "purchase", "https://site.test/checkout", {"order_id": "A-7", "amount": 99}),
    ]:
        at = now - timedelta(minutes=minutes)
        events.append(
            Event.objects.create(
                id=uuid.uuid4(),
                contact=contact,
                kind=kind,
                url=url,
                occurred_at=at,
                received_at=at,
                rolled_up_at=at,
                properties=props,
            )
        )
    score_events(events=events, now=now)
    kinds = TimelineEntry.Kind
    timeline_add(kind=kinds.PAGE_VIEW, summary="Viewed /pricing", contact=contact)
    timeline_add(kind=kinds.PURCHASE, summary="Bought order A-7", contact=contact)
    timeline_add(
        kind=kinds.EMAIL_CLICK,
        summary="Clicked a link in Spring",
        contact=contact,
        detail="https://site.test/offer",
    )
    return contact


def login(client, email):
    client.post("/login/", {"username": email, "password": PASSWORD}, **ALPHA)


def test_the_panel_shows_score_history_reasons_activity_fit_and_stages(
    client, admin, contact, django_assert_max_num_queries
):
    login(client, admin.email)

    with django_assert_max_num_queries(14):
        response = client.get(f"/contacts/{contact.pk}/engagement/", **ALPHA)

    assert response.status_code == 200
    panel = response.context["panel"]
    assert panel.score == pytest.approx(31, abs=0.5)
    assert [(r.reason, r.count) for r in panel.reasons[:2]] == [
        ("Bought order A-7 (99)", 1),
        ("Viewed /pricing", 2),
    ]
    assert {share.kind for share in panel.by_kind} == {"purchase", "pricing_view", "page_view"}
    assert panel.fit_grade == "A"
    html = response.content.decode()
    assert "<polyline points=" in html and 'data-testid="sparkline"' in html
    assert "Clicked a link in Spring" in html and "Bought order A-7" in html
    assert "Awareness → Evaluation" in html and "Evaluation → Purchase" in html


def test_the_sparkline_rises_at_each_change_and_decays_between(admin):
    settings = tracking_settings()
    settings.half_life_days = 1 / 24  # an hour
    settings.weights = {**settings.weights, "custom": 10}
    settings.save()
    contact = Contact.objects.create(first_name="Spark")
    now = timezone.now()
    events = [
        Event.objects.create(
            id=uuid.uuid4(),
            contact=contact,
            kind="custom",
            name="x",
            occurred_at=now - timedelta(hours=hours),
            received_at=now,
        )
        for hours in (6, 3, 1)
    ]
    score_events(events=events, now=now)

    panel = engagement_panel(contact, now=now)

    ys = [float(point.split(",")[1]) for point in panel.sparkline.points.split()]
    # SVG y grows downwards: a change jumps up (smaller y), the decay drifts down after it.
    assert sum(1 for a, b in pairwise(ys) if b < a) == 3
    assert any(b > a for a, b in pairwise(ys))
    assert panel.score == pytest.approx(5 + 10 / 8 + 10 / 64)


def test_the_contact_page_loads_the_panel(client, admin, contact):
    login(client, admin.email)

    page = client.get(f"/contacts/{contact.pk}/", **ALPHA).content.decode()

    assert f'hx-get="/contacts/{contact.pk}/engagement/"' in page


def test_a_contact_outside_the_users_reach_or_tenant_is_not_found(client, admin, contact, beta):
    seller = user_create(email="s@alpha.test", password=PASSWORD, full_name="S", role=Role.SALES)
    login(client, seller.email)

    assert client.get(f"/contacts/{contact.pk}/engagement/", **ALPHA).status_code == 404
    mine = Contact.objects.create(first_name="Mine", owner=seller)
    assert client.get(f"/contacts/{mine.pk}/engagement/", **ALPHA).status_code == 200
    with schema_context(beta.schema_name):
        client.post("/login/", {"username": "admin@beta.test", "password": PASSWORD}, **BETA)
        assert client.get(f"/contacts/{contact.pk}/engagement/", **BETA).status_code == 404
