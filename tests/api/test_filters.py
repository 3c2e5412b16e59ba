"""The filters, search and sort orders a sync uses, on contacts, accounts, opportunities, tasks
and appointments: each keeps exactly the records it names and leaves the others out (browser
session auth here, as in test_resources)."""

from datetime import timedelta
from urllib.parse import quote

import pytest
from django.utils import timezone

from contacts import services
from contacts.models import Account, Appointment, Contact, Task
from crm.demo import pipeline_ensure
from crm.users.models import Role, Team
from crm.users.services import user_create
from opportunities import services as opportunity_services
from opportunities.models import Opportunity

pytestmark = pytest.mark.django_db

ALPHA = {"HTTP_HOST": "alpha.localhost"}


@pytest.fixture
def book(client, in_alpha):
    """A salesperson, logged in, and a teammate (whose records the salesperson sees too); three
    accounts, three contacts and three deals between them, each kind created in the order
    listed, the middle one changed an hour from now: so "changed since" picks it, and "newest
    change first" differs from "newest first". Returns the ids (and the time) queries name."""
    team = Team.objects.create(name="North")
    sales, mate = (
        user_create(
            email=f"{name}@alpha.test", password=None, full_name=name, role=Role.SALES, team=team
        )
        for name in ("sales", "mate")
    )
    initech = services.account_create(
        actor=sales, name="Initech", domain="initech.test", phone="555-0100", external_id="acc-1"
    )
    globex = services.account_create(
        actor=sales, name="Globex", domain="globex.test", phone="555-0199", owner=mate
    )
    umbrella = services.account_create(
        actor=sales, name="Umbrella", domain="umbrella-corp.test", phone="555-0300"
    )
    services.contact_create(
        actor=sales,
        first_name="Peter",
        last_name="Gibbons",
        email="peter@initech.test",
        lifecycle_stage="evaluation",
        external_id="c-1",
        account=initech,
    )
    services.contact_create(actor=sales, first_name="Samir", account=initech, owner=mate)
    services.contact_create(
        actor=sales, first_name="Hank", email="hank@example.test", account=globex
    )
    stages = {s.name: s for s in pipeline_ensure().stages.all()}
    for name, account, stage, owner in (
        ("Printers", initech, "Qualification", sales),
        ("Merger", globex, "Proposal", mate),
        ("Copiers", umbrella, "Qualification", sales),
    ):
        opportunity_services.opportunity_create(
            actor=sales, name=name, account=account, stage=stages[stage], owner=owner
        )
    for title in ("Call", "Quote", "Visit"):
        services.task_create(actor=sales, title=title, account=initech)
        start = timezone.now() + timedelta(days=1)
        services.appointment_create(
            actor=sales, title=title, starts_at=start, ends_at=start + timedelta(hours=1)
        )
    an_hour_on = timezone.now() + timedelta(hours=1)
    Task.objects.filter(title="Quote").update(updated_at=an_hour_on)
    Appointment.objects.filter(title="Quote").update(updated_at=an_hour_on)
    Account.objects.filter(name="Globex").update(updated_at=an_hour_on)
    Contact.objects.filter(first_name="Samir").update(updated_at=an_hour_on)
    Opportunity.objects.filter(name="Merger").update(updated_at=an_hour_on)
    client.force_login(sales)
    return {
        "mate": mate.pk,
        "initech": initech.pk,
        "globex": globex.pk,
        "qualification": stages["Qualification"].pk,
        "later": quote((timezone.now() + timedelta(minutes=30)).isoformat()),
    }


# (resource, query with the book's ids filled in, the names listed: a set, or a list when the
# order is what is tested).
CASES = [
    ("contacts", "", {"Peter", "Samir", "Hank"}),
    ("contacts", "updated_since={later}", {"Samir"}),
    ("contacts", "owner={mate}", {"Samir"}),
    ("contacts", "account={globex}", {"Hank"}),
    ("contacts", "lifecycle_stage=evaluation", {"Peter"}),
    ("contacts", "email=PETER@Initech.test", {"Peter"}),
    ("contacts", "external_id=c-1", {"Peter"}),
    ("contacts", "search=gibb", {"Peter"}),
    ("contacts", "search=globex", {"Hank"}),
    ("contacts", "", ["Peter", "Hank", "Samir"]),
    ("contacts", "ordering=-updated_at", ["Samir", "Hank", "Peter"]),
    ("contacts", "ordering=-id", ["Hank", "Samir", "Peter"]),
    ("accounts", "", {"Initech", "Globex", "Umbrella"}),
    ("accounts", "updated_since={later}", {"Globex"}),
    ("accounts", "owner={mate}", {"Globex"}),
    ("accounts", "external_id=acc-1", {"Initech"}),
    ("accounts", "search=INIT", {"Initech"}),
    ("accounts", "search=corp", {"Umbrella"}),
    ("accounts", "search=0199", {"Globex"}),
    ("accounts", "ordering=-updated_at", ["Globex", "Umbrella", "Initech"]),
    ("accounts", "ordering=-id", ["Umbrella", "Globex", "Initech"]),
    ("opportunities", "", {"Printers", "Merger", "Copiers"}),
    ("opportunities", "updated_since={later}", {"Merger"}),
    ("opportunities", "owner={mate}", {"Merger"}),
    ("opportunities", "account={initech}", {"Printers"}),
    ("opportunities", "stage={qualification}", {"Printers", "Copiers"}),
    ("opportunities", "search=copi", {"Copiers"}),
    ("opportunities", "search=globex", {"Merger"}),
    ("opportunities", "stage={qualification}&search=initech", {"Printers"}),
    ("opportunities", "ordering=-updated_at", ["Merger", "Copiers", "Printers"]),
    ("opportunities", "ordering=-id", ["Copiers", "Merger", "Printers"]),
    ("tasks", "", ["Call", "Quote", "Visit"]),
    ("tasks", "updated_since={later}", {"Quote"}),
    ("tasks", "ordering=-updated_at", ["Quote", "Visit", "Call"]),
    ("appointments", "updated_since={later}", {"Quote"}),
    ("appointments", "ordering=-updated_at", ["Quote", "Visit", "Call"]),
]


@pytest.mark.parametrize(("resource", "query", "expected"), CASES)
def test_a_filter_lists_exactly_the_records_it_names(client, book, resource, query, expected):
    response = client.get(f"/api/v1/{resource}/?{query.format(**book)}", **ALPHA)

    assert response.status_code == 200, response.content
    name = {"contacts": "first_name", "tasks": "title", "appointments": "title"}.get(
        resource, "name"
    )
    names = [record[name] for record in response.json()["results"]]
    assert (set(names) if isinstance(expected, set) else names) == expected
