"""Campaign pages and members: type, budget and actual cost, goal, dates, owner, and members
whose status only moves forward."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import schema_context

from campaigns import services
from campaigns.models import Campaign, CampaignMember
from contacts import services as contact_services
from contacts.models import Contact
from crm.users.models import Role, User
from crm.users.services import user_create
from tests.conftest import PASSWORD
from tracking.models import AuditEntry, TimelineEntry

pytestmark = pytest.mark.django_db

ALPHA = {"HTTP_HOST": "alpha.localhost"}
BETA = {"HTTP_HOST": "beta.localhost"}


@pytest.fixture
def marketer(in_alpha):
    return user_create(
        email="mk@alpha.test", password=PASSWORD, full_name="Mia Marketing", role=Role.MARKETING
    )


@pytest.fixture
def marketer_client(client, marketer):
    client.post("/login/", {"username": marketer.email, "password": PASSWORD}, **ALPHA)
    return client


FORM = {
    "name": "Spring webinar",
    "kind": "event",
    "status": "planned",
    "goal": "200 sign-ups",
    "budget": "5000",
    "actual_cost": "1250.50",
    "starts_on": "2027-03-01",
    "ends_on": "2027-03-31",
}


def test_a_marketer_creates_and_edits_a_campaign_with_its_costs(marketer_client, marketer):
    bad = marketer_client.post(
        "/campaigns/new/",
        {**FORM, "actual_cost": "-5", "ends_on": "2027-02-01", "kind": "carrier pigeon"},
        **ALPHA,
    )
    assert bad.status_code == 200
    assert set(bad.context["form"].errors) == {"actual_cost", "ends_on", "kind"}
    assert not Campaign.objects.exists()

    made = marketer_client.post("/campaigns/new/", FORM, **ALPHA)

    campaign = Campaign.objects.get()
    assert made.url == f"/campaigns/{campaign.pk}/"
    assert (campaign.owner, str(campaign.actual_cost), campaign.goal) == (
        marketer,
        "1250.50",
        "200 sign-ups",
    )
    marketer_client.post(
        f"/campaigns/{campaign.pk}/edit/",
        {**FORM, "actual_cost": "1800", "owner": marketer.pk},
        **ALPHA,
    )
    campaign.refresh_from_db()
    assert str(campaign.actual_cost) == "1800.00"
    change = AuditEntry.objects.get(object_id=campaign.pk, action="updated").changes
    assert change == {"actual_cost": ["1250.50", "1800.00"]}
    page = marketer_client.get(f"/campaigns/{campaign.pk}/", **ALPHA)
    assert b"1,800.00" in page.content


def test_members_are_added_once_in_one_statement_and_their_timelines_say_so(marketer):
    campaign = services.campaign_create(actor=marketer, name="Launch", kind="email")
    people = [contact_services.contact_create(actor=marketer, first_name=f"P{i}") for i in range(5)]
    first_three = Contact.objects.filter(pk__in=[p.pk for p in people[:3]])

    with CaptureQueriesContext(connection) as captured:
        added = services.campaign_members_add(
            actor=marketer, campaign=campaign, contacts=first_three
        )
    again = services.campaign_members_add(
        actor=marketer, campaign=campaign, contacts=Contact.objects.all()
    )

    statements = [q["sql"] for q in captured if "SAVEPOINT" not in q["sql"]]
    assert len(statements) == 1
    assert (added, again) == (3, 2)
    assert CampaignMember.objects.filter(campaign=campaign).count() == 5
    entries = TimelineEntry.objects.filter(summary="Added to the campaign Launch")
    assert sorted(entries.values_list("contact__first_name", flat=True)) == [
        "P0",
        "P1",
        "P2",
        "P3",
        "P4",
    ]


def test_a_members_status_only_moves_forward(marketer):
    campaign = services.campaign_create(actor=marketer, name="Launch", kind="email")
    contact = contact_services.contact_create(actor=marketer, first_name="Ann")
    services.campaign_members_add(actor=marketer, campaign=campaign, contacts=Contact.objects.all())

    assert services.campaign_member_advance(campaign=campaign, contact=contact, status="clicked")
    assert not services.campaign_member_advance(campaign=campaign, contact=contact, status="opened")
    assert CampaignMember.objects.get().status == "clicked"


def test_campaign_pages_are_for_marketing_roles_and_never_cross_tenants(client, marketer, beta):
    campaign = services.campaign_create(actor=marketer, name="<b>Launch</b>", kind="email")
    sales = user_create(email="s@alpha.test", password=PASSWORD, full_name="S", role=Role.SALES)
    client.post("/login/", {"username": sales.email, "password": PASSWORD}, **ALPHA)
    assert client.get(f"/campaigns/{campaign.pk}/", **ALPHA).status_code == 403
    client.post("/logout/", **ALPHA)
    client.post("/login/", {"username": marketer.email, "password": PASSWORD}, **ALPHA)
    page = client.get(f"/campaigns/{campaign.pk}/", **ALPHA)
    assert b"&lt;b&gt;Launch&lt;/b&gt;" in page.content

    with schema_context(beta.schema_name):
        beta_admin = User.objects.get(email="admin@beta.test")
    client.post("/logout/", **ALPHA)
    client.post("/login/", {"username": beta_admin.email, "password": PASSWORD}, **BETA)
    assert client.get(f"/campaigns/{campaign.pk}/", **BETA).status_code == 404
    assert client.get(f"/campaigns/{campaign.pk}/edit/", **BETA).status_code == 404


def test_a_segment_s_contacts_become_members_from_the_campaign_page(marketer_client, marketer):
    from campaigns.models import Segment
    from campaigns.segments import segment_create

    campaign = services.campaign_create(actor=marketer, name="Launch", kind="email")
    for name, stage in (("Ann", "evaluation"), ("Bob", "evaluation"), ("Cid", "purchase")):
        contact_services.contact_create(actor=marketer, first_name=name, lifecycle_stage=stage)
    segment = segment_create(
        actor=marketer,
        name="Evaluating",
        rules={
            "op": "and",
            "rules": [{"field": "lifecycle_stage", "operator": "eq", "value": "evaluation"}],
        },
    )

    response = marketer_client.post(
        f"/campaigns/{campaign.pk}/members/", {"segment": segment.pk}, **ALPHA
    )
    nonsense = marketer_client.post(f"/campaigns/{campaign.pk}/members/", {"segment": "x"}, **ALPHA)

    assert response.status_code == nonsense.status_code == 302
    members = CampaignMember.objects.filter(campaign=campaign)
    assert sorted(members.values_list("contact__first_name", flat=True)) == ["Ann", "Bob"]
    assert Segment.objects.count() == 1


def test_the_campaign_list_leads_to_segments_templates_and_blocks(marketer_client):
    page = marketer_client.get("/campaigns/", **ALPHA).content.decode()

    for path in ("/campaigns/segments/", "/campaigns/templates/", "/campaigns/blocks/"):
        assert f'href="{path}"' in page
        assert marketer_client.get(path, **ALPHA).status_code == 200
