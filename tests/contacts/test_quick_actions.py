"""Quick actions on the account and opportunity pages: log an activity or add a task against
the record, shown on its page; a record the user may not see is a 404 and nothing is written."""

from decimal import Decimal

import pytest

from contacts import services
from contacts.models import Activity, Task
from crm import access
from crm.demo import pipeline_ensure
from crm.users.models import Role
from crm.users.services import user_create
from opportunities import services as opportunity_services
from tests.conftest import PASSWORD
from tracking.models import TimelineEntry

pytestmark = pytest.mark.django_db

ALPHA = {"HTTP_HOST": "alpha.localhost"}
CALL = {"kind": "call", "subject": "Budget call", "outcome": "Approved", "notes": ""}
TASK = {"title": "Send the contract", "due_on": "2027-01-15", "priority": "3"}


@pytest.fixture
def account(sales):
    return services.account_create(actor=sales, name="Initech")


@pytest.fixture
def deal(sales, account):
    return opportunity_services.opportunity_create(
        actor=sales,
        name="Initech renewal",
        account=account,
        stage=pipeline_ensure().stages.get(name="Proposal"),
        amount=Decimal("1000"),
    )


def log_in(client, user):
    client.post("/login/", {"username": user.email, "password": PASSWORD}, **ALPHA)
    return client


def test_the_account_page_logs_a_call_and_adds_a_task_to_the_account(client, sales, account):
    log_in(client, sales)

    logged = client.post(f"/accounts/{account.pk}/activities/", CALL, **ALPHA)
    tasked = client.post(f"/accounts/{account.pk}/tasks/", TASK, **ALPHA)

    assert logged.url == tasked.url == f"/accounts/{account.pk}/"
    activity = Activity.objects.get()
    assert (activity.account, activity.contact, activity.user) == (account, None, sales)
    task = Task.objects.get()
    assert (task.account, task.title, task.priority, task.assignee) == (
        account,
        "Send the contract",
        3,
        sales,
    )
    page = client.get(f"/accounts/{account.pk}/", **ALPHA)
    summaries = [entry.summary for entry in page.context["timeline"]]
    assert "Call: Budget call (Approved)" in summaries
    assert "Task for Sally Sales: Send the contract, due 15 Jan 2027" in summaries
    assert [t.title for t in page.context["tasks"]] == ["Send the contract"]
    assert 'data-testid="log-activity"' in page.content.decode()


def test_the_opportunity_page_logs_a_call_and_adds_a_task_to_the_deal(client, sales, account, deal):
    log_in(client, sales)

    logged = client.post(f"/opportunities/{deal.pk}/activities/", CALL, **ALPHA)
    tasked = client.post(f"/opportunities/{deal.pk}/tasks/", TASK, **ALPHA)

    assert logged.url == tasked.url == f"/opportunities/{deal.pk}/"
    # Filed on the deal alone: only who may see the deal sees them, not all who see its account.
    activity = Activity.objects.get()
    assert (activity.opportunity, activity.account, activity.contact) == (deal, None, None)
    task = Task.objects.get()
    assert (task.opportunity, task.account) == (deal, None)
    marketer = user_create(
        email="mk@alpha.test", password=None, full_name="Mk", role=Role.MARKETING
    )
    assert not access.tasks_for(marketer).exists()
    assert not access.activities_for(marketer).exists()
    page = client.get(f"/opportunities/{deal.pk}/", **ALPHA)
    assert [a.subject for a in page.context["activities"]] == ["Budget call"]
    assert [t.title for t in page.context["tasks"]] == ["Send the contract"]
    html = page.content.decode()
    assert 'id="activity_outcome"' in html and 'id="id_outcome"' in html  # no clash
    # The account's timeline tells it too, as it tells the deal's other news.
    entries = TimelineEntry.objects.filter(account=account).values_list("summary", flat=True)
    assert "Call: Budget call (Approved)" in entries


def test_bad_input_is_reported_on_the_record_page_and_nothing_is_written(
    client, sales, account, deal
):
    log_in(client, sales)

    on_deal = client.post(
        f"/opportunities/{deal.pk}/tasks/", {"title": "", "due_on": "soon"}, **ALPHA, follow=True
    )
    on_account = client.post(
        f"/accounts/{account.pk}/activities/", {"kind": "<b>", "subject": "x"}, **ALPHA, follow=True
    )

    assert on_deal.request["PATH_INFO"] == f"/opportunities/{deal.pk}/"
    assert "Title: This field is required." in on_deal.content.decode()
    assert "Enter a valid date." in on_deal.content.decode()
    assert "Select a valid choice. &lt;b&gt; is not one of" in on_account.content.decode()
    assert not Activity.objects.exists() and not Task.objects.exists()


def test_a_record_the_user_may_not_see_is_404_and_nothing_is_written(
    client, account, deal, in_alpha
):
    rival = user_create(
        email="rival@alpha.test", password=PASSWORD, full_name="Rival", role=Role.SALES
    )
    log_in(client, rival)
    entries = TimelineEntry.objects.count()

    paths = [
        (f"/accounts/{account.pk}/activities/", CALL),
        (f"/accounts/{account.pk}/tasks/", TASK),
        (f"/opportunities/{deal.pk}/activities/", CALL),
        (f"/opportunities/{deal.pk}/tasks/", TASK),
        ("/opportunities/999999/tasks/", TASK),
    ]
    statuses = [client.post(path, data, **ALPHA).status_code for path, data in paths]

    assert statuses == [404] * 5
    assert not Activity.objects.exists() and not Task.objects.exists()
    assert TimelineEntry.objects.count() == entries
