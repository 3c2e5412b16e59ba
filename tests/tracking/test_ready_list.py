"""The ready-to-talk list: whose contacts each role sees, highest score now first, without
contacts whose score has decayed below the re-arm level, in a bounded number of queries, and
each tenant's own."""

from datetime import timedelta

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context

from contacts.models import Contact
from crm.users.models import Role, Team, User
from crm.users.services import user_create
from tests.conftest import PASSWORD
from tracking.models import Engagement
from tracking.scoring import Scale, tracking_settings

pytestmark = pytest.mark.django_db

ALPHA = {"HTTP_HOST": "alpha.localhost"}
BETA = {"HTTP_HOST": "beta.localhost"}


def ready(contact, score, *, ago=timedelta(0), sales_ready=True):
    scale = Scale.of(tracking_settings())
    at = timezone.now() - ago
    return Engagement.objects.create(
        contact=contact,
        value=score,
        at=at,
        rank=scale.rank(score, at),
        sales_ready=sales_ready,
        ready_since=at if sales_ready else None,
        last_crossed_at=at if sales_ready else None,
    )


@pytest.fixture
def world(in_alpha):
    """Sam and Tia sell in team North under Max; Ray sells in South. Each owns contacts."""
    north, south = Team.objects.create(name="North"), Team.objects.create(name="South")

    def person(key, role, team=None):
        return user_create(
            email=f"{key}@alpha.test",
            password=PASSWORD,
            full_name=key.title(),
            role=role,
            team=team,
        )

    people = {
        "admin": User.objects.get(email="admin@alpha.test"),
        "max": person("max", Role.MANAGER, north),
        "sam": person("sam", Role.SALES, north),
        "tia": person("tia", Role.SALES, north),
        "ray": person("ray", Role.SALES, south),
        "mia": person("mia", Role.MARKETING),
    }
    settings = tracking_settings()
    settings.threshold, settings.rearm_below, settings.half_life_days = 50, 0.6, 10
    settings.save()
    for owner, name, score, kwargs in [
        ("sam", "Sam Hot", 90, {}),
        ("sam", "Sam Warm", 60, {}),
        ("sam", "Sam Faded", 80, {"ago": timedelta(days=20)}),  # 20 now: below 30
        ("sam", "Sam Cold", 70, {"sales_ready": False}),
        ("tia", "Tia Hot", 75, {}),
        ("ray", "Ray Hot", 99, {}),
    ]:
        first, last = name.split()
        contact = Contact.objects.create(first_name=first, last_name=last, owner=people[owner])
        ready(contact, score, **kwargs)
    return people


def login(client, who):
    client.post("/login/", {"username": f"{who}@alpha.test", "password": PASSWORD}, **ALPHA)


def listed(client):
    page = client.get("/ready/", **ALPHA)
    assert page.status_code == 200
    return [row.contact.full_name for row in page.context["page"].rows]


@pytest.mark.parametrize(
    ("who", "expected"),
    [
        ("sam", ["Sam Hot", "Sam Warm"]),
        ("tia", ["Tia Hot"]),
        ("max", ["Sam Hot", "Tia Hot", "Sam Warm"]),
        ("admin", ["Ray Hot", "Sam Hot", "Tia Hot", "Sam Warm"]),
    ],
)
def test_each_role_sees_its_sales_ready_contacts_by_score_now(client, world, who, expected):
    login(client, who)

    assert listed(client) == expected


def test_marketing_may_not_see_the_list(client, world):
    login(client, "mia")

    assert client.get("/ready/", **ALPHA).status_code == 403


def test_the_list_reads_in_a_fixed_number_of_queries(client, world, django_assert_max_num_queries):
    login(client, "admin")
    for n in range(30):
        ready(Contact.objects.create(first_name=f"More{n}", owner=world["sam"]), 55 + n)

    with django_assert_max_num_queries(8):
        page = client.get("/ready/", **ALPHA)

    assert len(page.context["page"].rows) == 34
    assert b"More29" in page.content


def test_the_list_pages_on_by_rank(client, world):
    login(client, "admin")
    for n in range(60):
        ready(Contact.objects.create(first_name=f"P{n:02}", owner=world["sam"]), 100 + n)

    first = client.get("/ready/", **ALPHA).context["page"]
    second = client.get(f"/ready/?after={first.next_cursor}", **ALPHA).context["page"]

    names = [r.contact.full_name for r in first.rows + second.rows]
    assert len(first.rows) == 50 and not second.next_cursor
    assert names[:2] == ["P59", "P58"] and names[-1] == "Sam Warm"
    assert len(names) == len(set(names)) == 64
    assert client.get("/ready/?after=garbage", **ALPHA).status_code == 200


def test_another_tenants_ready_contacts_never_show(client, world, beta):
    with schema_context(beta.schema_name):
        ready(Contact.objects.create(first_name="Beta", last_name="Hot"), 500)
    login(client, "admin")

    assert "Beta Hot" not in listed(client)
    with schema_context(beta.schema_name):
        client.post("/login/", {"username": "admin@beta.test", "password": PASSWORD}, **BETA)
        page = client.get("/ready/", **BETA)
        assert [r.contact.full_name for r in page.context["page"].rows] == ["Beta Hot"]
