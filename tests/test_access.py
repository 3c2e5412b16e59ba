"""Which records each role sees, through the one access module, on every list page."""

import pytest

from contacts.models import Account, Contact, Task
from crm import access
from crm.users.models import PartnerOrganization, Role, Team, User
from crm.users.services import user_create
from opportunities.models import Opportunity
from opportunities.selectors import pipeline_board
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

ALPHA = {"HTTP_HOST": "alpha.localhost"}


@pytest.fixture
def world(in_alpha):
    """Two teams, a marketer, a partner organisation, and one account per owner."""
    north, south = Team.objects.create(name="North"), Team.objects.create(name="South")
    reseller = PartnerOrganization.objects.create(name="Reseller Ltd")

    def person(key, role, **kwargs):
        return user_create(
            email=f"{key}@alpha.test", password=PASSWORD, full_name=key.title(), role=role, **kwargs
        )

    people = {
        "admin": User.objects.get(email="admin@alpha.test"),
        "manager": person("manager", Role.MANAGER, team=north),
        "sales": person("sales", Role.SALES, team=north),
        "teammate": person("teammate", Role.SALES, team=north),
        "rival": person("rival", Role.SALES, team=south),
        "loner": person("loner", Role.SALES),
        "marketing": person("marketing", Role.MARKETING),
        "partner": person("partner", Role.PARTNER),
    }
    people["partner"].partner_organization = reseller
    people["partner"].save()
    stage = _stage()
    for key in ("manager", "sales", "teammate", "rival", "loner"):
        account = Account.objects.create(name=f"{key.title()} Account", owner=people[key])
        Contact.objects.create(
            first_name=key.title(), last_name="Contact", account=account, owner=people[key]
        )
        Opportunity.objects.create(
            name=f"{key.title()} Deal",
            account=account,
            stage=stage,
            owner=people[key],
            amount=AMOUNTS[key.title()],
        )
    Account.objects.get(name="Rival Account").shared_with.add(reseller)
    return people


def _stage():
    from opportunities.models import Stage

    return Stage.objects.get(pipeline__name="Sales", name="Proposal")


ALL = {"Manager", "Sales", "Teammate", "Rival", "Loner"}
AMOUNTS = {"Manager": 100, "Sales": 200, "Teammate": 400, "Rival": 800, "Loner": 1600}
EXPECTED = {
    "admin": (ALL, ALL),
    "marketing": (ALL, set()),
    "manager": ({"Manager", "Sales", "Teammate"},) * 2,
    "sales": ({"Manager", "Sales", "Teammate"},) * 2,
    "rival": ({"Rival"},) * 2,
    "loner": ({"Loner"},) * 2,
    "partner": ({"Rival"},) * 2,
}


@pytest.mark.parametrize("who", list(EXPECTED))
def test_each_role_sees_exactly_its_records(world, who):
    user = world[who]
    records, deals = EXPECTED[who]

    assert {a.name.removesuffix(" Account") for a in access.accounts_for(user)} == records
    assert {c.first_name for c in access.contacts_for(user)} == records
    assert {o.name.removesuffix(" Deal") for o in access.opportunities_for(user)} == deals


@pytest.mark.parametrize("who", list(EXPECTED))
def test_each_role_sees_the_tasks_on_its_records_and_those_given_to_it(world, who):
    """A task on each owner's contact, on each owner's deal alone, and one on the rival's deal
    that the loner was given to do: the loner sees that one, marketing no deal's task."""
    for key in ("manager", "sales", "teammate", "rival", "loner"):
        name = key.title()
        Task.objects.create(
            title=f"{name} call", contact=Contact.objects.get(first_name=name), assignee=world[key]
        )
        Task.objects.create(
            title=f"{name} quote",
            opportunity=Opportunity.objects.get(name=f"{name} Deal"),
            assignee=world[key],
        )
    Task.objects.create(
        title="Loner help",
        opportunity=Opportunity.objects.get(name="Rival Deal"),
        assignee=world["loner"],
    )
    records, deals = EXPECTED[who]
    expected = {f"{name} call" for name in records} | {f"{name} quote" for name in deals}
    if who in ("admin", "loner") or "Rival" in deals:
        expected.add("Loner help")

    assert {task.title for task in access.tasks_for(world[who])} == expected


@pytest.mark.parametrize("who", list(EXPECTED))
def test_staff_invite_staff_and_partners_only_their_own_organisation(world, who):
    outsider = user_create(
        email="other@alpha.test", password=None, full_name="Other", role=Role.PARTNER
    )
    outsider.partner_organization = PartnerOrganization.objects.create(name="Other Ltd")
    outsider.save()
    staff = {key for key in world if key != "partner"}

    invitable = {user.email.split("@")[0] for user in access.colleagues_for(world[who])}

    assert invitable == ({"partner"} if who == "partner" else staff)


@pytest.mark.parametrize("who", ["admin", "sales", "rival", "partner"])
def test_list_pages_show_only_the_records_the_user_may_see(client, world, who):
    client.post("/login/", {"username": f"{who}@alpha.test", "password": PASSWORD}, **ALPHA)
    records, deals = EXPECTED[who]

    accounts = client.get("/accounts/", **ALPHA)
    contacts = client.get("/contacts/", **ALPHA)
    opportunities = client.get("/opportunities/", **ALPHA)

    assert {a.name.removesuffix(" Account") for a in accounts.context["page"].rows} == records
    assert {c.first_name for c in contacts.context["page"].rows} == records
    assert {o.name.removesuffix(" Deal") for o in opportunities.context["page"].rows} == deals


def test_a_partner_without_an_organisation_sees_nothing(world):
    orphan = user_create(
        email="orphan@alpha.test", password=PASSWORD, full_name="Orphan", role=Role.PARTNER
    )

    assert not access.accounts_for(orphan).exists()
    assert not access.contacts_for(orphan).exists()


@pytest.mark.parametrize(
    ("who", "shown"),
    [("sales", {"import", "find-duplicates"}), ("marketing", {"import"}), ("partner", set())],
)
def test_list_pages_offer_only_the_actions_the_role_may_take(client, world, who, shown):
    client.post("/login/", {"username": f"{who}@alpha.test", "password": PASSWORD}, **ALPHA)

    page = client.get("/contacts/", **ALPHA).content.decode()

    offered = {action for action in ("import", "find-duplicates") if f'"{action}"' in page}
    assert offered == shown
    assert access.Allowed(world[who])["records"]["merge"] == ("find-duplicates" in shown)


@pytest.mark.parametrize("who", list(EXPECTED))
def test_each_role_s_board_counts_exactly_its_deals(world, who):
    """The board's totals come from the stage totals the database keeps per owner, except for
    partners, whose deals are the shared ones: each role's column counts just what it sees."""
    stage = _stage()
    column = next(c for c in pipeline_board(world[who], stage.pipeline) if c.stage == stage)
    deals = EXPECTED[who][1]

    assert column.count == len(deals)
    assert {card.name.removesuffix(" Deal") for card in column.cards} == deals
    assert column.total == sum(AMOUNTS[name] for name in deals)
    assert column.weighted == column.total * stage.probability / 100
