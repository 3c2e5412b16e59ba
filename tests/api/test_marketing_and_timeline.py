"""The API's marketing side (campaigns, campaign members, segments) and the timeline: read-only,
keyset pages, filters for syncing, roles and reach as in the browser, one tenant's records only,
and a schema that describes every field and parameter."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from django_tenants.utils import schema_context

from campaigns import services as campaign_services
from campaigns.models import CampaignMember
from campaigns.segments import segment_create
from contacts import services
from contacts.models import Contact
from crm.users.models import Role, Team, User
from crm.users.services import user_create
from tests.conftest import PASSWORD
from tracking.models import TimelineEntry
from tracking.services import timeline_add

pytestmark = pytest.mark.django_db

ALPHA = {"HTTP_HOST": "alpha.localhost"}
BETA = {"HTTP_HOST": "beta.localhost"}
NORTH = {"op": "and", "rules": [{"field": "territory", "operator": "eq", "value": "North"}]}


def person(email: str, role: str, **extra) -> User:
    return user_create(email=email, password=PASSWORD, full_name=email, role=role, **extra)


def session(user: User, host=ALPHA) -> Client:
    client = Client()
    assert client.post("/login/", {"username": user.email, "password": PASSWORD}, **host)
    return client


@pytest.fixture
def north(in_alpha):
    return Team.objects.create(name="North")


@pytest.fixture
def sales(north):
    return person("sally@alpha.test", Role.SALES, team=north)


@pytest.fixture
def rival(in_alpha):
    return person("rita@alpha.test", Role.SALES, team=Team.objects.create(name="South"))


@pytest.fixture
def ann(sales):
    account = services.account_create(actor=sales, name="Initech")
    return services.contact_create(
        actor=sales, first_name="Ann", last_name="Reader", account=account, territory="North"
    )


@pytest.fixture
def rivals_contact(rival):
    return services.contact_create(
        actor=rival, first_name="Rob", last_name="Other", territory="North"
    )


def ids(response) -> list[int]:
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


# --- the timeline -------------------------------------------------------------------------------


def test_the_timeline_is_the_contacts_page_newest_first_filtered_and_paged(sales, ann):
    now = timezone.now()
    # Only these four: not the lines the records' creation wrote.
    TimelineEntry.objects.filter(account=ann.account_id).delete()
    entries = [
        timeline_add(
            kind=kind, summary=f"{kind} {n}", contact=ann, occurred_at=now - timedelta(days=n)
        )
        for n, kind in enumerate(["page_view", "note", "page_view", "form"])
    ]
    api = session(sales)

    newest_first = api.get(f"/api/v1/timeline/?contact={ann.pk}&page_size=3", **ALPHA)
    assert ids(newest_first) == [e.pk for e in entries[:3]]
    rest = api.get(newest_first.json()["next"], **ALPHA)
    assert ids(rest) == [entries[3].pk]
    views = api.get(f"/api/v1/timeline/?contact={ann.pk}&kind=page_view", **ALPHA)
    assert ids(views) == [entries[0].pk, entries[2].pk]
    since = (now - timedelta(days=1, hours=1)).isoformat().replace("+", "%2B")
    recent = api.get(
        f"/api/v1/timeline/?account={ann.account_id}&occurred_since={since}&ordering=occurred_at",
        **ALPHA,
    )
    assert ids(recent) == [entries[1].pk, entries[0].pk]
    one = api.get(f"/api/v1/timeline/{entries[3].pk}/", **ALPHA).json()
    assert (one["kind"], one["summary"], one["contact"], one["account"], one["count"]) == (
        "form",
        "form 3",
        ann.pk,
        ann.account_id,
        1,
    )


def test_the_timeline_of_customers_out_of_reach_is_not_there(sales, ann, rivals_contact):
    theirs = timeline_add(kind="note", summary="Secret", contact=rivals_contact)
    mine = timeline_add(kind="note", summary="Mine", contact=ann)
    # About Ann's company, no contact: the account's page shows it, so the API does.
    company = timeline_add(kind="note", summary="Company news", account=ann.account)
    api = session(sales)

    listed = ids(api.get("/api/v1/timeline/?kind=note", **ALPHA))
    assert mine.pk in listed and company.pk in listed and theirs.pk not in listed
    assert api.get(f"/api/v1/timeline/{theirs.pk}/", **ALPHA).status_code == 404
    assert ids(api.get(f"/api/v1/timeline/?contact={rivals_contact.pk}", **ALPHA)) == []
    bad = api.get("/api/v1/timeline/?kind=gossip&occurred_since=yesterday", **ALPHA)
    assert bad.status_code == 400 and set(bad.json()) == {"kind", "occurred_since"}
    assert api.post("/api/v1/timeline/", {}, **ALPHA).status_code == 405


# --- campaigns, members, segments ---------------------------------------------------------------


@pytest.fixture
def spring(sales, ann, rivals_contact):
    """A campaign aimed at Ann (Sally's) and Rob (Rita's)."""
    marketer = person("mia@alpha.test", Role.MARKETING)
    segment = segment_create(actor=marketer, name="The North", rules=NORTH)
    campaign = campaign_services.campaign_create(
        actor=marketer, name="Spring", kind="email", budget=1000
    )
    campaign.segments.add(segment)
    campaign_services.campaign_members_add(
        actor=marketer, campaign=campaign, contacts=Contact.objects.all()
    )
    return campaign


def test_marketing_reads_campaigns_members_and_segments_and_syncs_members(spring):
    marketing = session(User.objects.get(email="mia@alpha.test"))

    campaign = marketing.get(f"/api/v1/campaigns/{spring.pk}/", **ALPHA).json()
    assert (campaign["name"], campaign["kind"], campaign["budget"]) == (
        "Spring",
        "email",
        "1000.00",
    )
    assert campaign["segments"] == list(spring.segments.values_list("pk", flat=True))
    assert ids(marketing.get("/api/v1/campaigns/?status=planned", **ALPHA)) == [spring.pk]
    assert ids(marketing.get("/api/v1/campaigns/?status=completed", **ALPHA)) == []
    segments = marketing.get("/api/v1/segments/", **ALPHA).json()["results"]
    assert [(s["name"], s["rules"]) for s in segments] == [("The North", NORTH)]

    members = marketing.get(f"/api/v1/campaign-members/?campaign={spring.pk}", **ALPHA)
    assert len(ids(members)) == 2
    rob = CampaignMember.objects.get(contact__first_name="Rob")
    later = timezone.now() + timedelta(hours=1)
    CampaignMember.objects.filter(pk=rob.pk).update(status="opened", updated_at=later)
    since = (later - timedelta(minutes=1)).isoformat().replace("+", "%2B")
    changed = marketing.get(f"/api/v1/campaign-members/?updated_since={since}", **ALPHA)
    assert [(m["contact"], m["status"]) for m in changed.json()["results"]] == [
        (rob.contact_id, "opened")
    ]
    assert marketing.patch(f"/api/v1/campaigns/{spring.pk}/", {}, **ALPHA).status_code == 405


def test_members_are_those_of_contacts_in_reach_and_roles_are_the_browsers(
    spring, sales, north, ann
):
    manager = session(person("max@alpha.test", Role.MANAGER, team=north))

    members = manager.get("/api/v1/campaign-members/", **ALPHA).json()["results"]
    assert [m["contact"] for m in members] == [ann.pk]
    rob = CampaignMember.objects.get(contact__first_name="Rob")
    assert manager.get(f"/api/v1/campaign-members/{rob.pk}/", **ALPHA).status_code == 404
    assert manager.get(f"/api/v1/campaigns/{spring.pk}/", **ALPHA).status_code == 200
    # Salespeople see no campaigns in the browser, and none here.
    for path in ("/api/v1/campaigns/", "/api/v1/campaign-members/", "/api/v1/segments/"):
        refused = session(sales).get(path, **ALPHA)
        assert refused.status_code == 403 and "detail" in refused.json()


def test_another_tenants_campaigns_segments_and_timeline_are_never_reached(spring, ann, beta):
    entry = timeline_add(kind="note", summary="Alpha only", contact=ann)
    member = CampaignMember.objects.filter(campaign=spring).first()
    alphas = (
        f"/api/v1/campaigns/{spring.pk}/",
        f"/api/v1/campaign-members/{member.pk}/",
        f"/api/v1/segments/{spring.segments.get().pk}/",
        f"/api/v1/timeline/{entry.pk}/",
    )
    with schema_context(beta.schema_name):
        beta_admin = User.objects.get(email="admin@beta.test")
    api = session(beta_admin, host=BETA)

    for path in alphas:
        assert api.get(path, **BETA).status_code == 404, path
    for path in ("/api/v1/campaigns/", "/api/v1/segments/", "/api/v1/timeline/"):
        assert ids(api.get(path, **BETA)) == [], path


def test_the_schema_describes_every_field_and_parameter(client, in_alpha):
    schema = client.get("/api/schema/?format=json", **ALPHA).json()
    undescribed = [
        f"{method.upper()} {path} ?{parameter['name']}"
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        for parameter in operation.get("parameters", [])
        if not parameter.get("description")
    ]
    undescribed += [
        f"{name}.{field}"
        for name, component in schema["components"]["schemas"].items()
        for field, spec in component.get("properties", {}).items()
        if not spec.get("description") and "$ref" not in spec and "allOf" not in spec
    ]

    assert "/api/v1/timeline/" in schema["paths"] and "/api/v1/campaign-members/" in schema["paths"]
    assert undescribed == []


def test_a_segments_contacts_are_paged_as_contacts_within_the_callers_reach(spring, north, ann):
    segment = spring.segments.get()
    services.contact_create(actor=ann.owner, first_name="Zed", territory="South")
    marketing = session(User.objects.get(email="mia@alpha.test"))

    first = marketing.get(f"/api/v1/segments/{segment.pk}/contacts/?page_size=1", **ALPHA)
    second = marketing.get(first.json()["next"], **ALPHA)
    everyone = {c["first_name"] for c in first.json()["results"] + second.json()["results"]}
    assert everyone == {"Ann", "Rob"} and second.json()["next"] is None
    # A manager of the North team sees the segment's contacts of the team only.
    manager = session(person("max@alpha.test", Role.MANAGER, team=north))
    listed = manager.get(f"/api/v1/segments/{segment.pk}/contacts/", **ALPHA).json()
    assert [c["id"] for c in listed["results"]] == [ann.pk]
    assert marketing.get("/api/v1/segments/999999/contacts/", **ALPHA).status_code == 404
    assert marketing.get("/api/v1/segments/x/contacts/", **ALPHA).status_code == 404
    # The segments' own filters do not apply to the list of one segment's contacts.
    kind = marketing.get(f"/api/v1/segments/{segment.pk}/contacts/?kind=static", **ALPHA)
    assert len(kind.json()["results"]) == 2
    bad = marketing.get(f"/api/v1/segments/{segment.pk}/contacts/?ordering=name", **ALPHA)
    assert bad.status_code == 400 and "ordering" in bad.json()
