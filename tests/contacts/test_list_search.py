"""The contact list's text search on both sides of the count cap: few matches are gathered and
sorted, many are walked in name order; either way the page and its total are those of the
search, after the other filters and within the user's reach."""

import pytest

from contacts.models import Account, Contact
from crm import pagination
from crm.users.models import Role, User
from crm.users.services import user_create
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

ALPHA = {"HTTP_HOST": "alpha.localhost"}


@pytest.fixture
def smiths(in_alpha):
    """Twelve contacts match "smith": by last name, e-mail, company, or "first last"; eight do
    not. Half of each belong to a salesperson, half to the admin."""
    admin = User.objects.get(email="admin@alpha.test")
    seller = user_create(
        email="seller@alpha.test", password=PASSWORD, full_name="Seller", role=Role.SALES
    )
    smithy = Account.objects.create(name="Smithy Works")
    other = Account.objects.create(name="Other Ltd")
    rows = [
        *(dict(last_name=f"Smith{i}") for i in range(4)),
        *(dict(last_name="Doe", email=f"j{i}.smith@example.com") for i in range(4)),
        *(dict(last_name="Roe", account=smithy) for _ in range(3)),
        dict(first_name="Anna", last_name="Blacksmith"),
        *(dict(last_name="Jones", account=other) for _ in range(8)),
    ]
    Contact.objects.bulk_create(
        Contact(
            **{"first_name": f"P{i:02d}", **row},
            owner=seller if i % 2 else admin,
            territory="North" if i % 4 < 2 else "South",
        )
        for i, row in enumerate(rows)
    )
    return admin, seller


def logged_in(client, user):
    client.post("/login/", {"username": user.email, "password": PASSWORD}, **ALPHA)
    return client


def matching(queryset):
    return queryset.exclude(last_name="Jones").order_by("last_name", "first_name", "id")


@pytest.mark.parametrize("cap", [50, 5])
def test_a_search_lists_and_counts_its_matches_below_and_above_the_cap(
    client, smiths, monkeypatch, cap
):
    monkeypatch.setattr(pagination, "COUNT_CAP", cap)
    admin, _ = smiths

    page = logged_in(client, admin).get("/contacts/", {"q": "SMITH"}, **ALPHA).context["page"]

    assert page.rows == list(matching(Contact.objects.all()))
    assert (page.total_label, page.total_capped) == (("12", False) if cap == 50 else ("5+", True))


def test_a_first_and_last_name_finds_the_person(client, smiths):
    admin, _ = smiths

    page = logged_in(client, admin).get("/contacts/", {"q": "anna black"}, **ALPHA)

    assert [c.last_name for c in page.context["page"].rows] == ["Blacksmith"]


@pytest.mark.parametrize("cap", [50, 5])
def test_a_search_counts_only_what_the_other_filters_and_the_users_reach_leave(
    client, smiths, monkeypatch, cap
):
    monkeypatch.setattr(pagination, "COUNT_CAP", cap)
    _, seller = smiths

    response = logged_in(client, seller).get(
        "/contacts/", {"q": "smith", "territory": "north"}, **ALPHA
    )

    page = response.context["page"]
    expected = list(matching(Contact.objects.filter(owner=seller, territory="North")))
    assert page.rows == expected and page.total == len(expected) == 3
    assert "3 contacts" in response.content.decode()
