"""Quotas: a manager sets one per person and period on a page with a form (field errors for bad
input), audited like every write; only for the people in their reach."""

from decimal import Decimal

import pytest
from django_tenants.utils import schema_context

from crm.users.models import Role, Team, User
from crm.users.services import user_create
from reports.filters import period_of, today
from reports.forecast import period_key
from reports.models import Quota
from tests.conftest import PASSWORD
from tracking.models import AuditEntry

pytestmark = pytest.mark.django_db

ALPHA = {"HTTP_HOST": "alpha.localhost"}
BETA = {"HTTP_HOST": "beta.localhost"}
YEAR = str(today().year)


@pytest.fixture
def people(in_alpha):
    north, south = Team.objects.create(name="North"), Team.objects.create(name="South")

    def person(email, name, role, team=None):
        return user_create(email=email, password=PASSWORD, full_name=name, role=role, team=team)

    return {
        "mona": person("mona@alpha.test", "Mona Manager", Role.MANAGER, north),
        "sam": person("sam@alpha.test", "Sam Seller", Role.SALES, north),
        "tom": person("tom@alpha.test", "Tom South", Role.SALES, south),
        "mark": person("mark@alpha.test", "Mark Eting", Role.MARKETING),
    }


def log_in(client, user):
    client.logout()
    client.post("/login/", {"username": user.email, "password": PASSWORD}, **ALPHA)


def test_a_manager_sets_and_changes_a_quota_and_both_are_audited(client, people):
    log_in(client, people["mona"])
    quarter = period_of("quarter", today())
    sam = people["sam"]

    set_once = client.post(
        "/reports/quotas/",
        {"user": sam.pk, "period": period_key(quarter), "amount": "12000"},
        **ALPHA,
    )
    changed = client.post(
        "/reports/quotas/",
        {"user": sam.pk, "period": period_key(quarter), "amount": "15000.50"},
        **ALPHA,
    )
    page = client.get(f"/reports/quotas/?period={period_key(quarter)}", **ALPHA)

    assert set_once.status_code == changed.status_code == 302
    assert changed["Location"] == f"/reports/quotas/?period={period_key(quarter)}"
    quota = Quota.objects.get()
    assert (quota.user, quota.period_kind, quota.period_start, quota.amount) == (
        sam,
        "quarter",
        quarter.start,
        Decimal("15000.50"),
    )
    trail = AuditEntry.objects.filter(model="reports.quota", object_id=quota.pk).order_by("at")
    assert [(e.action, e.changes.get("amount"), e.actor) for e in trail] == [
        ("created", [None, "12000.00"], people["mona"]),
        ("updated", ["12000.00", "15000.50"], people["mona"]),
    ]
    assert b"15,000.50" in page.content
    # The people in the manager's reach are listed; the other team is not.
    assert b"Sam Seller" in page.content and b"Tom South" not in page.content


def test_bad_input_gets_field_errors(client, people):
    log_in(client, people["mona"])

    cases = {
        "negative": {"user": people["sam"].pk, "period": YEAR, "amount": "-1"},
        "not a number": {"user": people["sam"].pk, "period": YEAR, "amount": "lots"},
        "another team": {"user": people["tom"].pk, "period": YEAR, "amount": "5"},
        "no such period": {"user": people["sam"].pk, "period": f"{YEAR}-Q7", "amount": "5"},
        "nothing": {},
    }
    for case, data in cases.items():
        answer = client.post("/reports/quotas/", data, **ALPHA)
        assert answer.status_code == 200, case
        assert b'class="field-error"' in answer.content, case

    assert not Quota.objects.exists()
    page = client.get("/reports/quotas/?period=someday", **ALPHA)
    assert page.status_code == 200
    assert b"Period: someday is not one to choose" in page.content
    assert period_of("quarter", today()).label.encode() in page.content


def test_only_managers_and_admins_set_quotas(client, people):
    for who in ("sam", "mark"):
        log_in(client, people[who])
        assert client.get("/reports/quotas/", **ALPHA).status_code == 403
        answer = client.post(
            "/reports/quotas/", {"user": people["sam"].pk, "period": YEAR, "amount": "1"}, **ALPHA
        )
        assert answer.status_code == 403
    assert not Quota.objects.exists()


def test_an_admin_sets_anyones_quota_within_their_own_tenant(client, people, beta):
    client.post("/login/", {"username": "admin@alpha.test", "password": PASSWORD}, **ALPHA)
    answer = client.post(
        "/reports/quotas/",
        {"user": people["tom"].pk, "period": f"{YEAR}-05", "amount": "7"},
        **ALPHA,
    )
    assert answer.status_code == 302
    assert Quota.objects.get().period_start.isoformat() == f"{YEAR}-05-01"

    with schema_context(beta.schema_name):
        beta_admin = User.objects.get(email="admin@beta.test")
    client.logout()
    client.post("/login/", {"username": beta_admin.email, "password": PASSWORD}, **BETA)
    beta_page = client.get(f"/reports/quotas/?period={YEAR}-05", **BETA)
    refused = client.post(
        "/reports/quotas/",
        {"user": people["tom"].pk, "period": f"{YEAR}-05", "amount": "9"},
        **BETA,
    )

    assert b"Tom South" not in beta_page.content
    assert refused.status_code == 200 and b'class="field-error"' in refused.content
    with schema_context(beta.schema_name):
        assert not Quota.objects.exists()
