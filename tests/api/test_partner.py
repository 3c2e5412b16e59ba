"""A partner plays the API end to end, over HTTP with `Authorization: Bearer`: gets a key (made
with `create_api_key`), syncs contacts out and in with `updated_since`, retries a POST with the
same Idempotency-Key, upserts by external id, hits the rate limit, and is refused what is not
shared with its organisation and anything of another tenant."""

import io
import json
from datetime import timedelta
from urllib.parse import urlencode

import pytest
import redis
from django.conf import settings
from django.core.management import call_command
from django.utils import timezone
from django_tenants.utils import schema_context

from contacts import services
from contacts.models import Contact
from crm.users.models import PartnerOrganization, Role, User
from crm.users.services import user_create
from integrations.ratelimit import api_rate_limit_set
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

ALPHA = "alpha.localhost"
BETA = "beta.localhost"


@pytest.fixture(autouse=True)
def fresh_counters():
    """Rate counters live in Redis, outside the test's transaction; each test starts with none."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    for name in client.scan_iter(match="*api-rate:*"):
        client.delete(name)


@pytest.fixture
def book(alpha):
    """Alpha's partner organisation with one account shared with it and one not, each with a
    contact; a partner user of the organisation."""
    with schema_context(alpha.schema_name):
        admin = User.objects.get(email="admin@alpha.test")
        reseller = PartnerOrganization.objects.create(name="Reseller GmbH")
        partner = user_create(
            email="partner@alpha.test",
            password=PASSWORD,
            full_name="Pat Partner",
            role=Role.PARTNER,
        )
        partner.partner_organization = reseller
        partner.save(update_fields=["partner_organization"])
        shared = services.account_create(actor=admin, name="Shared Co", external_id="acc-shared")
        shared.shared_with.add(reseller)
        private = services.account_create(actor=admin, name="Private Co")
        return {
            "admin": admin,
            "partner": partner,
            "shared": shared,
            "private": private,
            "shared_contact": services.contact_create(
                actor=admin, first_name="Sam", last_name="Shared", account=shared
            ),
            "private_contact": services.contact_create(
                actor=admin, first_name="Pia", last_name="Private", account=private
            ),
        }


def make_key(slug: str, email: str) -> str:
    out = io.StringIO()
    call_command("create_api_key", slug, "--user", email, "--name", "Partner sync", stdout=out)
    return out.getvalue().strip()


@pytest.fixture
def partner_api(client, book):
    key = make_key("alpha", book["partner"].email)

    def call(method, path, body=None, *, host=ALPHA, key=key, **headers):
        kwargs = {"HTTP_HOST": host, "HTTP_AUTHORIZATION": f"Bearer {key}"}
        kwargs.update({f"HTTP_{name.upper().replace('-', '_')}": v for name, v in headers.items()})
        if body is not None:
            kwargs["data"] = json.dumps(body)
            kwargs["content_type"] = "application/json"
        return getattr(client, method)(path, **kwargs)

    return call


def names(response) -> list[str]:
    assert response.status_code == 200, response.content
    return sorted(r.get("last_name") or r.get("name") for r in response.json()["results"])


def test_a_partner_syncs_contacts_both_ways_with_a_key(partner_api, book, alpha):
    # Out: the partner's key sees only what is shared with its organisation.
    assert names(partner_api("get", "/api/v1/accounts/")) == ["Shared Co"]
    assert names(partner_api("get", "/api/v1/contacts/")) == ["Shared"]

    # Out, incrementally: only what changed since the last sync.
    since = timezone.now()
    with schema_context(alpha.schema_name):
        services.contact_update(actor=book["admin"], contact=book["shared_contact"], title="Buyer")
        services.contact_update(actor=book["admin"], contact=book["private_contact"], title="Buyer")
    changed = partner_api(
        "get", f"/api/v1/contacts/?{urlencode({'updated_since': since.isoformat()})}"
    )
    assert [r["title"] for r in changed.json()["results"]] == ["Buyer"]
    assert names(changed) == ["Shared"]
    later = urlencode({"updated_since": (timezone.now() + timedelta(seconds=1)).isoformat()})
    assert names(partner_api("get", f"/api/v1/contacts/?{later}")) == []

    # In: a POST retried with the same Idempotency-Key creates the contact once.
    new = {"first_name": "Nina", "last_name": "New", "account": book["shared"].pk}
    first = partner_api("post", "/api/v1/contacts/", new, idempotency_key="sync-42")
    again = partner_api("post", "/api/v1/contacts/", new, idempotency_key="sync-42")
    assert (first.status_code, again.status_code) == (201, 201), first.content
    assert again.json()["id"] == first.json()["id"]
    assert again["Idempotent-Replayed"] == "true"
    with schema_context(alpha.schema_name):
        assert Contact.objects.filter(last_name="New").count() == 1
    # The same key for another request is refused, not silently answered with the first result.
    other = partner_api(
        "post", "/api/v1/contacts/", {**new, "last_name": "Else"}, idempotency_key="sync-42"
    )
    assert other.status_code == 422

    # In, by the partner's own ids: upsert one, then a batch, then update with If-Match.
    upserted = partner_api(
        "put",
        "/api/v1/contacts/external/crm-7/",
        {"first_name": "Otto", "last_name": "Upsert", "account": book["shared"].pk},
    )
    assert upserted.status_code == 201, upserted.content
    bulk = partner_api(
        "post",
        "/api/v1/contacts/bulk/",
        {
            "records": [
                {"external_id": "crm-7", "title": "CTO"},
                {
                    "external_id": "crm-8",
                    "first_name": "Bea",
                    "last_name": "Bulk",
                    "account": book["shared"].pk,
                },
            ]
        },
    )
    assert bulk.status_code == 200, bulk.content
    assert (bulk.json()["created"], bulk.json()["updated"]) == (1, 1)
    otto = partner_api("get", f"/api/v1/contacts/{upserted.json()['id']}/")
    assert otto.json()["title"] == "CTO"
    stale = upserted["ETag"]
    fresh = partner_api(
        "patch", f"/api/v1/contacts/{otto.json()['id']}/", {"title": "CEO"}, if_match=otto["ETag"]
    )
    assert fresh.status_code == 200, fresh.content
    refused = partner_api(
        "patch", f"/api/v1/contacts/{otto.json()['id']}/", {"title": "Intern"}, if_match=stale
    )
    assert refused.status_code == 412
    assert names(partner_api("get", "/api/v1/contacts/?ordering=id")) == [
        "Bulk",
        "New",
        "Shared",
        "Upsert",
    ]


def test_a_partner_is_refused_what_is_not_shared_and_other_tenants_data(
    partner_api, book, alpha, beta
):
    private, contact = book["private"], book["private_contact"]
    assert partner_api("get", f"/api/v1/contacts/{contact.pk}/").status_code == 404
    assert partner_api("get", f"/api/v1/accounts/{private.pk}/").status_code == 404
    assert (
        partner_api("patch", f"/api/v1/contacts/{contact.pk}/", {"title": "x"}).status_code == 404
    )
    assert names(partner_api("get", f"/api/v1/contacts/?account={private.pk}")) == []
    at_private = partner_api(
        "post", "/api/v1/contacts/", {"first_name": "Eve", "account": private.pk}
    )
    assert at_private.status_code == 400
    assert "account" in at_private.json()

    # Alpha's key on beta's host is unknown there; beta's records are never reached.
    with schema_context(beta.schema_name):
        beta_admin = User.objects.get(email="admin@beta.test")
        services.account_create(actor=beta_admin, name="Beta Secret")
    for path in ("/api/v1/contacts/", "/api/v1/accounts/", f"/api/v1/contacts/{contact.pk}/"):
        answer = partner_api("get", path, host=BETA)
        assert answer.status_code == 401, path
        assert "detail" in answer.json()
    beta_key = make_key("beta", "admin@beta.test")
    assert partner_api("get", "/api/v1/accounts/", key=beta_key).status_code == 401


def test_a_partner_over_its_rate_limit_gets_429_until_the_window_ends(partner_api, alpha):
    api_rate_limit_set(tenant=alpha, limit=2)

    answers = [partner_api("get", "/api/v1/contacts/") for _ in range(3)]

    assert [a.status_code for a in answers] == [200, 200, 429]
    assert [a["X-RateLimit-Remaining"] for a in answers] == ["1", "0", "0"]
    assert 0 < int(answers[-1]["Retry-After"]) <= 60
    assert "detail" in answers[-1].json()
