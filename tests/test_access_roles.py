"""Each role on every page that shows customers' records: the list and its search, the detail
page, the shell's search box and the CSV exports show what crm.access gives the role, and
nothing else. Who owns what, what is shared, and EXPECTED (which owners' records each role sees)
come from test_access: every owner has "<Owner> Account", "<Owner> Contact" and "<Owner> Deal"."""

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from contacts import services
from contacts.models import Account, Contact
from crm.users.models import User
from opportunities.models import Opportunity
from tests.test_access import ALL, EXPECTED, world  # noqa: F401 (the records, as a fixture)
from tracking.models import TimelineEntry

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("world")]

ALPHA = {"HTTP_HOST": "alpha.localhost"}


@dataclass(frozen=True)
class Kind:
    suffix: str
    url: str
    get: Callable[[str], object]
    deals: bool = False


KINDS = {
    "contacts": Kind("Contact", "/contacts/", lambda owner: Contact.objects.get(first_name=owner)),
    "accounts": Kind(
        "Account", "/accounts/", lambda owner: Account.objects.get(name=f"{owner} Account")
    ),
    "opportunities": Kind(
        "Deal",
        "/opportunities/",
        lambda owner: Opportunity.objects.get(name=f"{owner} Deal"),
        deals=True,
    ),
}
# Marketing works on the whole base of people and companies, but not on deals.
FORBIDDEN = {("marketing", "opportunities")}


def visible(who: str, kind: str) -> set[str]:
    return EXPECTED[who][1 if KINDS[kind].deals else 0]


def named(kind: str, text: str) -> set[str]:
    """The owners whose record of this kind the text names ("Rival Contact" names Rival's)."""
    return {owner for owner in ALL if f"{owner} {KINDS[kind].suffix}" in text}


def log_in(client, who: str):
    client.force_login(User.objects.get(email=f"{who}@alpha.test"))


@pytest.fixture(autouse=True)
def quick_passwords(settings):
    """The world's users are made with passwords; hashing them the slow, safe way is not what
    these tests are about."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


# What a search asks for, and whose records match it: "{suffix}" stands for the kind's name,
# which every record of the kind has ("contact" matches every "<Owner> Contact").
UNSEARCHED = pytest.param("", ALL, id="unsearched")
SEARCHED_ALL = pytest.param("{suffix}", ALL, id="searched-all")
SEARCHED_RIVAL = pytest.param("rival", {"Rival"}, id="searched-rival")


@pytest.mark.parametrize(("query", "matches"), [UNSEARCHED, SEARCHED_ALL, SEARCHED_RIVAL])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("who", EXPECTED)
def test_the_list_and_its_search_show_exactly_the_role_s_records(client, who, kind, query, matches):
    log_in(client, who)

    response = client.get(
        KINDS[kind].url, {"q": query.format(suffix=KINDS[kind].suffix.lower())}, **ALPHA
    )

    shown = named(kind, response.content.decode())
    if (who, kind) in FORBIDDEN:
        assert (response.status_code, shown) == (403, set())
    else:
        assert (response.status_code, shown) == (200, visible(who, kind) & matches)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("who", EXPECTED)
def test_detail_pages_open_for_the_role_s_records_and_are_404_for_the_rest(client, who, kind):
    log_in(client, who)

    answers = {}
    for owner in ALL:
        response = client.get(f"{KINDS[kind].url}{KINDS[kind].get(owner).pk}/", **ALPHA)
        answers[owner] = (response.status_code, owner in named(kind, response.content.decode()))

    if (who, kind) in FORBIDDEN:
        assert answers == dict.fromkeys(ALL, (403, False))
    else:
        opens = visible(who, kind)
        assert answers == {o: (200, True) if o in opens else (404, False) for o in ALL}


@pytest.mark.parametrize("dropdown", [True, False], ids=["dropdown", "page"])
@pytest.mark.parametrize(("query", "matches"), [SEARCHED_ALL, SEARCHED_RIVAL])
@pytest.mark.parametrize("who", EXPECTED)
def test_the_shell_search_finds_only_the_role_s_records(client, who, query, matches, dropdown):
    log_in(client, who)
    headers = {"HTTP_HX_REQUEST": "true"} if dropdown else {}

    # Every record is at its owner's "<Owner> Account", so "account" finds all three kinds.
    response = client.get("/search/", {"q": query.format(suffix="account")}, **headers, **ALPHA)

    results = response.context["results"]
    found = {
        "contacts": {c.first_name for c in results.contacts},
        "accounts": {a.name.removesuffix(" Account") for a in results.accounts},
        "opportunities": {o.name.removesuffix(" Deal") for o in results.opportunities},
    }
    html = response.content.decode()
    expected = {kind: visible(who, kind) & matches for kind in KINDS}
    assert found == expected
    assert {kind: named(kind, html) for kind in KINDS} == expected


@pytest.mark.parametrize(
    ("kind", "column"),
    [("contacts", "first_name"), ("accounts", "name")],
)
@pytest.mark.parametrize(("query", "matches"), [UNSEARCHED, SEARCHED_RIVAL])
@pytest.mark.parametrize("who", EXPECTED)
def test_the_csv_export_holds_only_the_role_s_records(client, who, kind, column, query, matches):
    log_in(client, who)

    response = client.get(f"{KINDS[kind].url}export.csv", {"q": query}, **ALPHA)

    rows = csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode()))
    exported = [row[column].removesuffix(" Account") for row in rows]
    assert sorted(exported) == sorted(visible(who, kind) & matches)


@pytest.mark.parametrize(
    ("who", "status"),
    [
        ("sales", 302),
        ("teammate", 302),
        ("manager", 302),
        ("admin", 302),
        ("rival", 404),
        ("loner", 404),
        ("partner", 404),
        ("marketing", 404),
    ],
)
def test_a_task_on_a_deal_alone_is_ticked_off_only_by_who_may_see_the_deal(client, who, status):
    deal = Opportunity.objects.get(name="Sales Deal")
    task = services.task_create(
        actor=User.objects.get(email="sales@alpha.test"),
        opportunity=deal,
        title="Send the contract",
    )
    log_in(client, who)

    response = client.post(f"/tasks/{task.pk}/done/", {"next": "/opportunities/"}, **ALPHA)

    task.refresh_from_db()
    completed = TimelineEntry.objects.filter(summary__contains="completed the task").exists()
    assert (response.status_code, task.is_done, completed) == (status, status == 302, status == 302)
