import pytest

from contacts.models import Account, Contact
from crm import pagination
from crm.users.models import User
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

ALPHA = {"HTTP_HOST": "alpha.localhost"}


@pytest.fixture
def admin_client(client, in_alpha):
    client.post("/login/", {"username": "admin@alpha.test", "password": PASSWORD}, **ALPHA)
    return client


@pytest.fixture
def people(in_alpha):
    admin = User.objects.get(email="admin@alpha.test")
    north = Account.objects.create(name="North Co", tags=["vip"], territory="North")
    Account.objects.create(name="South Co", territory="South")
    Contact.objects.bulk_create(
        Contact(
            first_name=f"P{i:03d}",
            last_name=f"Person{i % 7}",
            owner=admin,
            account=north if i % 2 else None,
            lifecycle_stage="evaluation" if i % 3 else "awareness",
            territory="North" if i % 2 else "South",
        )
        for i in range(120)
    )
    return admin


def walk(client, url, **params):
    """Follow 'next page' links to the end; return every row's name and the pages seen."""
    names, pages, after = [], 0, None
    while True:
        query = dict(params, **({"after": after} if after else {}))
        page = client.get(url, query, **ALPHA).context["page"]
        names += [getattr(row, "first_name", None) or row.name for row in page.rows]
        pages += 1
        after = page.next_cursor
        if not after:
            return names, pages


def test_keyset_pages_cover_every_row_once_in_order(admin_client, people):
    names, pages = walk(admin_client, "/contacts/")

    expected = list(
        Contact.objects.order_by("last_name", "first_name", "id").values_list(
            "first_name", flat=True
        )
    )
    assert names == expected and pages == 3


def test_a_descending_sort_pages_through_as_well(admin_client, people):
    names, _ = walk(admin_client, "/contacts/", sort="newest")

    assert names == list(
        Contact.objects.order_by("-created_at", "-id").values_list("first_name", flat=True)
    )


def test_filters_narrow_the_list_and_its_count(admin_client, people):
    response = admin_client.get(
        "/contacts/", {"territory": "north", "lifecycle_stage": "awareness", "tag": "vip"}, **ALPHA
    )

    page = response.context["page"]
    expected = Contact.objects.filter(territory="North", lifecycle_stage="awareness")
    assert {c.pk for c in page.rows} == set(expected.values_list("pk", flat=True))
    assert page.total == expected.count() and "20 contacts" in response.content.decode()


def test_a_bad_filter_or_a_forged_cursor_is_reported_and_shows_the_first_page(admin_client, people):
    bad_filter = admin_client.get("/contacts/", {"lifecycle_stage": "nonsense"}, **ALPHA)
    forged = admin_client.get("/contacts/", {"after": "eyJ4IjoxfQ:forged:sig"}, **ALPHA)

    assert bad_filter.status_code == forged.status_code == 200
    assert "not understood" in bad_filter.content.decode()
    assert len(bad_filter.context["page"].rows) == 50
    assert "not valid" in forged.content.decode()
    assert (
        forged.context["page"].rows[0]
        == Contact.objects.order_by("last_name", "first_name", "id").first()
    )


def test_large_totals_are_capped_instead_of_counted(admin_client, people, monkeypatch):
    monkeypatch.setattr(pagination, "COUNT_CAP", 100)

    page = admin_client.get("/contacts/", **ALPHA).context["page"]

    assert page.total_capped and page.total_label == "100+"


def test_the_account_list_filters_by_tag_and_territory(admin_client, people):
    page = admin_client.get("/accounts/", {"tag": "vip"}, **ALPHA).context["page"]
    assert [a.name for a in page.rows] == ["North Co"]
    page = admin_client.get("/accounts/", {"territory": "SOUTH"}, **ALPHA).context["page"]
    assert [a.name for a in page.rows] == ["South Co"]


def test_export_streams_the_filtered_list_as_csv(admin_client, people):
    import csv
    import io

    Contact.objects.filter(first_name="P001").update(email='=HYPERLINK("http://x")')

    response = admin_client.get("/contacts/export.csv", {"territory": "north"}, **ALPHA)

    assert response.streaming and response["Content-Type"] == "text/csv"
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0][:4] == ["id", "first_name", "last_name", "email"]
    assert len(rows) - 1 == Contact.objects.filter(territory="North").count()
    injected = next(r for r in rows if r[1] == "P001")
    assert injected[3].startswith("'=")


def test_export_holds_only_what_the_user_may_see(client, people, in_alpha):
    from crm.users.models import Role
    from crm.users.services import user_create

    rival = user_create(
        email="rival@alpha.test", password=PASSWORD, full_name="Rival", role=Role.SALES
    )
    Contact.objects.create(first_name="Rivals", owner=rival)
    client.post("/login/", {"username": rival.email, "password": PASSWORD}, **ALPHA)

    body = b"".join(client.get("/contacts/export.csv", **ALPHA).streaming_content).decode()

    assert body.count("\n") == 2 and "Rivals" in body


def test_the_account_export_streams_the_filtered_accounts_the_user_may_see(client, people):
    import csv
    import io

    from crm.users.models import Role
    from crm.users.services import user_create

    sales = user_create(
        email="sales@alpha.test", password=PASSWORD, full_name="Sally", role=Role.SALES
    )
    Account.objects.create(name="@SUM(A1:A9)", territory="North", owner=sales)
    Account.objects.create(name="Sally South", territory="South", owner=sales)
    client.post("/login/", {"username": sales.email, "password": PASSWORD}, **ALPHA)

    response = client.get("/accounts/export.csv", {"territory": "north"}, **ALPHA)

    assert response.streaming and response["Content-Type"] == "text/csv"
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0][:3] == ["id", "name", "domain"]
    # Only Sally's northern account: not the admin's North Co, not her southern one.
    assert [row[1] for row in rows[1:]] == ["'@SUM(A1:A9)"]
