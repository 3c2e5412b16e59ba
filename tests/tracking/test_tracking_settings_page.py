"""The admin's scoring settings page: saving, field errors for bad input (400, nothing saved),
admins only, a new half-life rebuilding the ranks, and each tenant's own settings."""

import math
from datetime import timedelta

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context

from contacts.models import Contact
from crm.users.models import Role
from crm.users.services import user_create
from tests.conftest import PASSWORD
from tracking.models import AuditEntry, Engagement
from tracking.score_forms import WEIGHT_LABELS
from tracking.scoring import Scale, tracking_settings

pytestmark = pytest.mark.django_db

ALPHA = {"HTTP_HOST": "alpha.localhost"}
BETA = {"HTTP_HOST": "beta.localhost"}


def valid(**changes):
    data = {
        "pricing_path": "/plans",
        "half_life_days": "7",
        "threshold": "40",
        "rearm_below": "0.5",
        "cooldown_days": "3",
        "ideal_industries": "Software, Retail",
        "ideal_sizes": "11-50, 1000+",
        "ideal_territories": "North",
        "ideal_customer_types": ["customer"],
        **{f"weight_{key}": "2" for key in WEIGHT_LABELS},
        "weight_pricing_view": "8",
    }
    data.update(changes)
    return data


@pytest.fixture
def admin_client(client, in_alpha):
    client.post("/login/", {"username": "admin@alpha.test", "password": PASSWORD}, **ALPHA)
    return client


def test_an_admin_saves_the_scoring_settings(admin_client):
    page = admin_client.get("/settings/scoring/", **ALPHA)
    assert page.status_code == 200 and b"Points: Pricing page view" in page.content

    response = admin_client.post("/settings/scoring/", valid(), **ALPHA)

    assert response.status_code == 302
    settings = tracking_settings()
    assert settings.pricing_path == "/plans" and settings.half_life_days == 7
    assert settings.threshold == 40 and settings.rearm_below == 0.5
    assert settings.weights["pricing_view"] == 8 and settings.weights["meeting"] == 2
    assert settings.ideal_customer == {
        "industry": ["Retail", "Software"],
        "size": ["1000+", "11-50"],
        "territory": ["North"],
        "customer_type": ["customer"],
    }
    audit = AuditEntry.objects.filter(model="tracking.trackingsettings").latest("at")
    assert audit.changes["threshold"] == ["50.0", "40.0"]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("half_life_days", "0", "greater than or equal to 0.1"),
        ("half_life_days", "soon", "Enter a number"),
        ("threshold", "", "This field is required"),
        ("rearm_below", "1.5", "less than or equal to 0.95"),
        ("weight_purchase", "-1", "greater than or equal to 0"),
        ("pricing_path", "pricing", "starts with /"),
        ("ideal_sizes", "big", "Not a size band: big"),
        ("ideal_sizes", "50-10", "the first number is the smaller one"),
        ("ideal_customer_types", ["emperor"], "Select a valid choice"),
    ],
)
def test_bad_input_gets_a_field_error_and_saves_nothing(admin_client, field, value, message):
    before = tracking_settings()

    response = admin_client.post("/settings/scoring/", valid(**{field: value}), **ALPHA)

    assert response.status_code == 400
    assert message in " ".join(response.context["form"].errors[field])
    assert 'class="field-error"' in response.content.decode()
    after = tracking_settings()
    assert (after.threshold, after.half_life_days, after.weights) == (
        before.threshold,
        before.half_life_days,
        before.weights,
    )


@pytest.mark.parametrize("role", [Role.MANAGER, Role.SALES, Role.MARKETING, Role.PARTNER])
def test_only_admins_may_change_scoring(client, in_alpha, role):
    user = user_create(email=f"{role}@alpha.test", password=PASSWORD, full_name="X", role=role)
    client.post("/login/", {"username": user.email, "password": PASSWORD}, **ALPHA)

    assert client.get("/settings/scoring/", **ALPHA).status_code == 403
    assert client.post("/settings/scoring/", valid(), **ALPHA).status_code == 403


def test_a_new_half_life_rebuilds_the_ranks(admin_client):
    at = timezone.now() - timedelta(days=3)
    contact = Contact.objects.create(first_name="Ranked")
    old = Scale.of(tracking_settings())
    Engagement.objects.create(contact=contact, value=12, at=at, rank=old.rank(12, at))

    admin_client.post("/settings/scoring/", valid(half_life_days="2"), **ALPHA)

    rank = Engagement.objects.get(contact=contact).rank
    assert rank == pytest.approx(math.log(12) + at.timestamp() * math.log(2) / (2 * 86400))


def test_each_tenant_keeps_its_own_scoring_settings(admin_client, beta):
    admin_client.post("/settings/scoring/", valid(threshold="33"), **ALPHA)

    with schema_context(beta.schema_name):
        assert tracking_settings().threshold == 50
    assert tracking_settings().threshold == 33
    # Alpha's admin is nobody on beta's host.
    assert admin_client.get("/settings/scoring/", **BETA).status_code in (302, 403)
