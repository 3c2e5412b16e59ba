"""The REST API's resources: CRUD through the services, keyset cursors, filters for syncing,
upserts and bulk upserts by external id, idempotent POSTs, ETag / If-Match, bad input as JSON
4xx, and access by role and tenant (browser session auth here; API keys in
tests/integrations)."""

import json
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from django_tenants.utils import schema_context

from contacts import services
from contacts.models import Account, Contact, Task
from crm.demo import pipeline_ensure
from crm.users.models import Role, User
from crm.users.services import user_create
from integrations.models import IdempotentRequest
from integrations.tasks import idempotency_keys_purge
from opportunities import services as opportunity_services
from opportunities.models import Opportunity, StageChange
from tests.conftest import PASSWORD
from tracking.models import AuditEntry

pytestmark = pytest.mark.django_db

ALPHA = {"HTTP_HOST": "alpha.localhost"}
BETA = {"HTTP_HOST": "beta.localhost"}


@pytest.fixture
def api(client, sales):
    """A client logged in as the salesperson, speaking JSON."""
    client.post("/login/", {"username": sales.email, "password": PASSWORD}, **ALPHA)

    def call(method, path, body=None, **headers):
        kwargs = {**ALPHA, **headers}
        if body is not None:
            kwargs["data"] = body if isinstance(body, str) else json.dumps(body)
            kwargs["content_type"] = "application/json"
        return getattr(client, method)(path, **kwargs)

    return call


@pytest.fixture
def initech(sales):
    return services.account_create(actor=sales, name="Initech", external_id="acc-1")


def test_contacts_crud_goes_through_the_services(api, sales, initech):
    made = api(
        "post",
        "/api/v1/contacts/",
        {
            "first_name": "Peter",
            "last_name": "Gibbons",
            "email": "peter@initech.test",
            "account": initech.pk,
            "interests": ["printers"],
        },
    )
    assert made.status_code == 201, made.json()
    body = made.json()
    assert made["Location"].endswith(f"/api/v1/contacts/{body['id']}/")
    assert (body["owner"], body["account"], body["interests"]) == (
        sales.pk,
        initech.pk,
        ["printers"],
    )
    got = api("get", f"/api/v1/contacts/{body['id']}/")
    assert got.json()["email"] == "peter@initech.test"
    assert got["ETag"] == f'"{body["version"]}"'

    patched = api("patch", f"/api/v1/contacts/{body['id']}/", {"title": "Engineer"})
    assert patched.status_code == 200 and patched.json()["title"] == "Engineer"
    assert AuditEntry.objects.filter(object_id=body["id"], action="updated").exists()

    assert api("delete", f"/api/v1/contacts/{body['id']}/").status_code == 204
    assert not Contact.objects.filter(pk=body["id"]).exists()
    assert AuditEntry.objects.filter(object_id=body["id"], action="deleted").exists()


def test_cursor_pages_go_forward_and_back_and_sync_by_updated_since(api, sales):
    for i in range(7):
        services.contact_create(actor=sales, first_name=f"P{i}")
    first = api("get", "/api/v1/contacts/?page_size=3").json()
    second = api("get", first["next"]).json()
    third = api("get", second["next"]).json()
    back = api("get", third["previous"]).json()

    names = [c["first_name"] for page in (first, second, third) for c in page["results"]]
    assert names == [f"P{i}" for i in range(7)]
    assert first["previous"] is None and third["next"] is None
    assert [c["first_name"] for c in back["results"]] == ["P3", "P4", "P5"]

    Contact.objects.filter(first_name="P2").update(updated_at=timezone.now() + timedelta(hours=1))
    since = (timezone.now() + timedelta(minutes=30)).isoformat()
    changed = api("get", f"/api/v1/contacts/?updated_since={since.replace('+', '%2B')}").json()
    assert [c["first_name"] for c in changed["results"]] == ["P2"]
    newest = api("get", "/api/v1/contacts/?ordering=-updated_at&page_size=1").json()
    assert newest["results"][0]["first_name"] == "P2"


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("cursor=forged", "cursor"),
        ("page_size=100000", "page_size"),
        ("page_size=-1", "page_size"),
        ("ordering=password", "ordering"),
        ("updated_since=yesterday", "updated_since"),
        ("lifecycle_stage=%3Cscript%3E", "lifecycle_stage"),
    ],
)
def test_bad_query_parameters_are_400_naming_the_parameter(api, query, field):
    response = api("get", f"/api/v1/contacts/?{query}")

    assert response.status_code == 400
    assert field in response.json()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"first_name": "A", "favourite_colour": "blue"}, "favourite_colour"),
        ({"first_name": ["not", "a", "string"]}, "first_name"),
        ({"first_name": "A", "email": "not-an-e-mail"}, "email"),
        ({"first_name": "A\x00B"}, "first_name"),
        ({"first_name": "A" * 500}, "first_name"),
        ({"first_name": "A", "account": 999999}, "account"),
        ({"first_name": "A", "lifecycle_stage": "'; DROP TABLE contacts; --"}, "lifecycle_stage"),
    ],
)
def test_bad_bodies_are_400_naming_the_field_and_write_nothing(api, body, field):
    response = api("post", "/api/v1/contacts/", body)

    assert response.status_code == 400, response.content
    assert field in response.json()
    assert not Contact.objects.exists()


def test_malformed_json_and_other_media_types_are_refused_as_json(api):
    broken = api("post", "/api/v1/contacts/", '{"first_name": ')
    assert broken.status_code == 400 and "detail" in broken.json()
    assert api("post", "/api/v1/contacts/", "[1, 2]").status_code == 400
    form = api("post", "/api/v1/contacts/", "first_name=A", CONTENT_TYPE="text/plain")
    assert form.status_code == 415 and "detail" in form.json()


def test_a_stale_if_match_gets_412_and_changes_nothing(api, sales):
    contact = services.contact_create(actor=sales, first_name="Ann")
    version = api("get", f"/api/v1/contacts/{contact.pk}/").json()["version"]
    ok = api(
        "patch", f"/api/v1/contacts/{contact.pk}/", {"title": "CEO"}, HTTP_IF_MATCH=f'"{version}"'
    )
    assert ok.status_code == 200

    stale = api(
        "patch", f"/api/v1/contacts/{contact.pk}/", {"title": "CTO"}, HTTP_IF_MATCH=f'"{version}"'
    )

    assert stale.status_code == 412
    assert stale.json()["version"] == ok.json()["version"]
    contact.refresh_from_db()
    assert contact.title == "CEO"
    gone = api("delete", f"/api/v1/contacts/{contact.pk}/", HTTP_IF_MATCH=f'"{version}"')
    assert gone.status_code == 412 and Contact.objects.filter(pk=contact.pk).exists()


def test_a_retried_post_with_the_same_idempotency_key_creates_nothing_twice(api):
    body = {"first_name": "Once", "email": "once@x.test"}
    first = api("post", "/api/v1/contacts/", body, HTTP_IDEMPOTENCY_KEY="k-1")
    again = api("post", "/api/v1/contacts/", body, HTTP_IDEMPOTENCY_KEY="k-1")
    other = api("post", "/api/v1/contacts/", {"first_name": "Twice"}, HTTP_IDEMPOTENCY_KEY="k-1")

    assert first.status_code == again.status_code == 201
    assert first.json() == again.json() and again["Idempotent-Replayed"] == "true"
    assert other.status_code == 422 and "Idempotency-Key" in other.json()
    assert Contact.objects.filter(first_name="Once").count() == 1
    # A request that failed validation is not remembered: fixed, it can be sent again.
    bad = api("post", "/api/v1/contacts/", {"email": "x"}, HTTP_IDEMPOTENCY_KEY="k-2")
    assert bad.status_code == 400
    good = api("post", "/api/v1/contacts/", {"first_name": "Fixed"}, HTTP_IDEMPOTENCY_KEY="k-3")
    assert good.status_code == 201


def test_keys_are_forgotten_after_a_day_by_the_hourly_purge(api, sales):
    api("post", "/api/v1/contacts/", {"first_name": "Old"}, HTTP_IDEMPOTENCY_KEY="old")
    api("post", "/api/v1/contacts/", {"first_name": "New"}, HTTP_IDEMPOTENCY_KEY="new")
    IdempotentRequest.objects.filter(key="old").update(
        created_at=timezone.now() - timedelta(hours=25)
    )

    assert idempotency_keys_purge() == 1
    assert list(IdempotentRequest.objects.values_list("key", flat=True)) == ["new"]
    again = api("post", "/api/v1/contacts/", {"first_name": "Old"}, HTTP_IDEMPOTENCY_KEY="old")
    assert again.status_code == 201 and Contact.objects.filter(first_name="Old").count() == 2


def test_upsert_by_external_id_creates_then_updates(api, sales):
    created = api("put", "/api/v1/contacts/external/crm-77/", {"first_name": "Zed"})
    updated = api("put", "/api/v1/contacts/external/crm-77/", {"title": "Boss"})

    assert (created.status_code, updated.status_code) == (201, 200)
    contact = Contact.objects.get(external_id="crm-77")
    assert (contact.first_name, contact.title) == ("Zed", "Boss")
    outsider = User.objects.create(email="o@alpha.test", full_name="O", role=Role.SALES)
    services.contact_create(actor=outsider, first_name="Hidden", external_id="theirs")
    refused = api("put", "/api/v1/contacts/external/theirs/", {"first_name": "Mine now"})
    assert refused.status_code == 404
    assert Contact.objects.get(external_id="theirs").first_name == "Hidden"


def test_bulk_upsert_is_all_or_nothing_and_says_which_records_failed(api, sales, initech):
    services.contact_create(actor=sales, first_name="Old", external_id="c-1")
    records = [
        {"external_id": "c-1", "title": "Updated"},
        {"external_id": "c-2", "first_name": "New", "account": initech.pk},
        {"external_id": "c-3", "first_name": "Bad", "email": "nope"},
        {"external_id": "c-2", "first_name": "Again"},
        "not an object",
    ]
    refused = api("post", "/api/v1/contacts/bulk/", {"records": records})

    assert refused.status_code == 400
    assert {e["index"]: set(e["errors"]) for e in refused.json()["errors"]} == {
        2: {"email"},
        3: {"external_id"},
        4: {"detail"},
    }
    assert Contact.objects.count() == 1 and Contact.objects.get().title == ""

    applied = api("post", "/api/v1/contacts/bulk/", {"records": records[:2]})

    assert applied.status_code == 200, applied.json()
    assert (applied.json()["created"], applied.json()["updated"]) == (1, 1)
    assert Contact.objects.get(external_id="c-1").title == "Updated"
    new = Contact.objects.get(external_id="c-2")
    assert applied.json()["ids"][1] == new.pk and new.owner == sales
    too_many = api("post", "/api/v1/contacts/bulk/", {"records": [{"first_name": "x"}] * 1001})
    assert too_many.status_code == 400 and "records" in too_many.json()


def test_opportunities_keep_their_stage_history_through_the_api(api, sales, initech):
    stages = {s.name: s for s in pipeline_ensure().stages.all()}
    made = api(
        "post",
        "/api/v1/opportunities/",
        {
            "name": "Deal",
            "account": initech.pk,
            "stage": stages["Qualification"].pk,
            "amount": "1200.50",
        },
    ).json()

    moved = api("patch", f"/api/v1/opportunities/{made['id']}/", {"stage": stages["Proposal"].pk})

    assert moved.status_code == 200
    history = moved.json()["stage_history"]
    assert [(h["from_stage"], h["to_stage"]) for h in history] == [
        (None, stages["Qualification"].pk),
        (stages["Qualification"].pk, stages["Proposal"].pk),
    ]
    assert StageChange.objects.filter(opportunity_id=made["id"]).count() == 2
    pipelines = api("get", "/api/v1/pipelines/").json()["results"]
    assert [s["name"] for s in pipelines[0]["stages"]][:2] == ["Qualification", "Needs analysis"]


def test_tasks_and_activities_must_be_about_a_record_the_caller_may_see(api, sales):
    contact = services.contact_create(actor=sales, first_name="Ann")
    outsider = User.objects.create(email="o@alpha.test", full_name="O", role=Role.SALES)
    hidden = services.contact_create(actor=outsider, first_name="Hidden", owner=outsider)

    nothing = api("post", "/api/v1/activities/", {"kind": "call", "subject": "Hi"})
    theirs = api(
        "post", "/api/v1/activities/", {"kind": "call", "subject": "Hi", "contact": hidden.pk}
    )
    logged = api(
        "post", "/api/v1/activities/", {"kind": "call", "subject": "Hi", "contact": contact.pk}
    )
    task = api("post", "/api/v1/tasks/", {"title": "Call back", "contact": contact.pk}).json()
    done = api("patch", f"/api/v1/tasks/{task['id']}/", {"done": True})

    assert nothing.status_code == 400 and "contact" in nothing.json()
    assert theirs.status_code == 400 and "contact" in theirs.json()
    assert logged.status_code == 201
    assert done.json()["done"] is True and Task.objects.get().done_at is not None


def test_a_task_carries_a_version_and_a_stale_if_match_gets_412(api, sales):
    contact = services.contact_create(actor=sales, first_name="Ann")
    made = api("post", "/api/v1/tasks/", {"title": "Call back", "contact": contact.pk})
    version = made.json()["version"]
    assert made["ETag"] == f'"{version}"'

    done = api("patch", made["Location"], {"done": True}, HTTP_IF_MATCH=f'"{version}"')
    stale = api("patch", made["Location"], {"title": "Overwrite"}, HTTP_IF_MATCH=f'"{version}"')

    assert done.status_code == 200 and done.json()["version"] != version
    assert stale.status_code == 412
    assert Task.objects.get().title == "Call back"


def test_records_out_of_reach_are_404_and_roles_are_the_browsers(client, api, sales, initech):
    outsider = User.objects.create(email="o@alpha.test", full_name="O", role=Role.SALES)
    hidden = services.account_create(actor=outsider, name="Theirs", owner=outsider)
    assert api("get", f"/api/v1/accounts/{hidden.pk}/").status_code == 404
    assert api("patch", f"/api/v1/accounts/{hidden.pk}/", {"name": "x"}).status_code == 404
    listed = api("get", "/api/v1/accounts/").json()["results"]
    assert [a["name"] for a in listed] == ["Initech"]

    user_create(email="mk@alpha.test", password=PASSWORD, full_name="Mk", role=Role.MARKETING)
    client.post("/logout/", **ALPHA)
    client.post("/login/", {"username": "mk@alpha.test", "password": PASSWORD}, **ALPHA)
    assert client.get("/api/v1/opportunities/", **ALPHA).status_code == 403
    assert client.get("/api/v1/contacts/", **ALPHA).status_code == 200


def test_another_tenants_records_are_never_reached(client, api, sales, initech, beta, alpha):
    deal = opportunity_services.opportunity_create(
        actor=sales,
        name="Alpha deal",
        account=initech,
        stage=pipeline_ensure().stages.first(),
    )
    with schema_context(beta.schema_name):
        beta_admin = User.objects.get(email="admin@beta.test")
    client.post("/logout/", **ALPHA)
    client.post("/login/", {"username": beta_admin.email, "password": PASSWORD}, **BETA)

    for path in (f"/api/v1/accounts/{initech.pk}/", f"/api/v1/opportunities/{deal.pk}/"):
        assert client.get(path, **BETA).status_code == 404
    assert client.get("/api/v1/accounts/", **BETA).json()["results"] == []
    assert (
        client.put(
            "/api/v1/accounts/external/acc-1/",
            data=json.dumps({"name": "Hijack"}),
            content_type="application/json",
            **BETA,
        ).status_code
        == 201
    )  # a new account in beta, nothing to do with alpha's
    with schema_context(alpha.schema_name):
        assert Opportunity.objects.get(pk=deal.pk).name == "Alpha deal"
        assert Account.objects.get(external_id="acc-1").name == "Initech"


def test_without_credentials_the_api_answers_401_and_the_schema_is_open(client, in_alpha):
    assert client.get("/api/v1/contacts/", **ALPHA).status_code == 401
    schema = client.get("/api/schema/", **ALPHA)
    assert schema.status_code == 200 and b"/api/v1/contacts/bulk/" in schema.content
    docs = client.get("/api/docs/", **ALPHA)
    assert docs.status_code == 200 and b"cdn" not in docs.content.lower()


def test_an_oversized_body_is_413_as_json_and_writes_nothing(api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000

    response = api("post", "/api/v1/contacts/bulk/", {"records": [{"first_name": "x" * 50}] * 500})

    assert response.status_code == 413
    assert response.json() == {"detail": "The request body is too large."}
    assert not Contact.objects.exists()


def test_an_external_id_held_by_a_record_out_of_reach_is_never_updated_nor_shown(api, sales):
    outsider = User.objects.create(email="o@alpha.test", full_name="O", role=Role.SALES)
    services.contact_create(actor=outsider, first_name="Theirs", owner=outsider, external_id="x-1")
    services.contact_create(actor=sales, first_name="Mine", external_id="x-2")

    upsert = api("put", "/api/v1/contacts/external/x-1/", {"first_name": "Hijack"})
    records = [{"external_id": "x-2", "title": "Boss"}, {"external_id": "x-1", "title": "Boss"}]
    bulk = api("post", "/api/v1/contacts/bulk/", {"records": records})

    assert upsert.status_code == 404
    assert bulk.status_code == 400 and bulk.json()["errors"] == [
        {"index": 1, "errors": {"external_id": ["Taken by a record you cannot see."]}}
    ]
    assert list(Contact.objects.order_by("id").values_list("first_name", "title")) == [
        ("Theirs", ""),
        ("Mine", ""),
    ]


def test_null_characters_in_external_ids_are_400_in_bulk_and_upsert(api):
    bulk = api(
        "post",
        "/api/v1/contacts/bulk/",
        {"records": [{"first_name": "A", "external_id": "x\x00y"}]},
    )
    upsert = api("put", "/api/v1/contacts/external/x%00y/", {"first_name": "A"})

    assert bulk.status_code == 400 and bulk.json()["errors"][0]["index"] == 0
    assert upsert.status_code == 400 and "external_id" in upsert.json()
    assert not Contact.objects.exists()


def test_a_retried_bulk_upsert_with_the_same_idempotency_key_creates_nothing_twice(api):
    # No external ids: only the key keeps a retry from creating every record again.
    body = {"records": [{"first_name": "Ada"}, {"first_name": "Alan"}]}
    first = api("post", "/api/v1/contacts/bulk/", body, HTTP_IDEMPOTENCY_KEY="bulk-1")
    again = api("post", "/api/v1/contacts/bulk/", body, HTTP_IDEMPOTENCY_KEY="bulk-1")
    other = api(
        "post",
        "/api/v1/contacts/bulk/",
        {"records": [{"first_name": "Eve"}]},
        HTTP_IDEMPOTENCY_KEY="bulk-1",
    )

    assert first.status_code == again.status_code == 200, first.json()
    assert first.json() == again.json() and again["Idempotent-Replayed"] == "true"
    assert other.status_code == 422 and "Idempotency-Key" in other.json()
    assert sorted(Contact.objects.values_list("first_name", flat=True)) == ["Ada", "Alan"]
    # A refused batch is not remembered: corrected, it goes through with the same key.
    bad = {"records": [{"name": "Hooli", "employees": -1}]}
    refused = api("post", "/api/v1/accounts/bulk/", bad, HTTP_IDEMPOTENCY_KEY="bulk-2")
    fixed = api(
        "post",
        "/api/v1/accounts/bulk/",
        {"records": [{"name": "Hooli"}]},
        HTTP_IDEMPOTENCY_KEY="bulk-2",
    )
    assert refused.status_code == 400 and fixed.status_code == 200, fixed.json()
    assert list(Account.objects.values_list("name", flat=True)) == ["Hooli"]


def test_a_replayed_bulk_of_a_thousand_records_keeps_only_their_ids(api):
    body = {"records": [{"name": f"Company {n}"} for n in range(1000)]}
    first = api("post", "/api/v1/accounts/bulk/", body, HTTP_IDEMPOTENCY_KEY="big")
    again = api("post", "/api/v1/accounts/bulk/", body, HTTP_IDEMPOTENCY_KEY="big")

    assert first.status_code == again.status_code == 200
    assert again.json() == first.json() and first.json()["created"] == 1000
    assert Account.objects.count() == 1000
    stored = IdempotentRequest.objects.get(key="big")
    assert len(json.dumps(stored.response_body)) < 16_000


def test_a_browser_session_calls_the_api_with_its_csrf_token(sales):
    browser = Client(enforce_csrf_checks=True, **ALPHA)
    browser.force_login(sales)
    body = json.dumps({"first_name": "Peter"})

    listed = browser.get("/api/v1/contacts/")
    forged = browser.post("/api/v1/contacts/", body, content_type="application/json")
    browser.get("/")  # any page of the CRM gives the browser its CSRF cookie
    token = browser.cookies["csrftoken"].value
    made = browser.post(
        "/api/v1/contacts/", body, content_type="application/json", HTTP_X_CSRFTOKEN=token
    )

    assert listed.status_code == 200 and listed.json()["results"] == []
    assert forged.status_code == 403 and "CSRF" in forged.json()["detail"]
    assert made.status_code == 201, made.json()
    assert list(Contact.objects.values_list("first_name", flat=True)) == ["Peter"]


def test_accounts_upsert_by_external_id_creates_then_updates(api, sales):
    created = api("put", "/api/v1/accounts/external/erp-9/", {"name": "Hooli"})
    updated = api("put", "/api/v1/accounts/external/erp-9/", {"industry": "Software"})

    assert (created.status_code, updated.status_code) == (201, 200)
    assert created.json()["id"] == updated.json()["id"]
    account = Account.objects.get(external_id="erp-9")
    assert (account.name, account.industry, account.owner) == ("Hooli", "Software", sales)


def test_accounts_bulk_upsert_is_all_or_nothing_and_says_which_records_failed(api, initech):
    records = [
        {"external_id": "acc-1", "industry": "Printers"},
        {"external_id": "acc-2", "name": "Hooli", "parent": initech.pk},
        {"external_id": "acc-3", "industry": "No name"},
        {"name": "Pied Piper", "employees": -5},
    ]
    refused = api("post", "/api/v1/accounts/bulk/", {"records": records})

    assert refused.status_code == 400
    assert {e["index"]: set(e["errors"]) for e in refused.json()["errors"]} == {
        2: {"name"},
        3: {"employees"},
    }
    assert list(Account.objects.values_list("name", "industry")) == [("Initech", "")]

    applied = api("post", "/api/v1/accounts/bulk/", {"records": records[:2]})

    assert applied.status_code == 200, applied.json()
    assert (applied.json()["created"], applied.json()["updated"]) == (1, 1)
    assert Account.objects.get(external_id="acc-1").industry == "Printers"
    assert Account.objects.get(external_id="acc-2").parent == initech
