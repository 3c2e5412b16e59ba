"""The sales activity report: counts per salesperson and week checked against a small data set
counted by hand, the rollup's incremental refresh, who sees whom, bad filters, the CSV, two
tenants, and beat's tasks through a worker (the life-cycle rollup's too)."""

from datetime import UTC, date, datetime

import pytest
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.utils import timezone
from django_tenants.utils import schema_context

from contacts.models import Account, Activity, Contact, Task
from contacts.services import task_set_done
from crm.users.models import Role, Team, User
from opportunities.models import Opportunity, Stage
from reports.activity import Counts, activity_report, activity_rollup_refresh, monday
from reports.charts import line_chart
from reports.models import ActivityWeek, LifecycleStat
from reports.rollup_tasks import activity_rollup, lifecycle_rollup
from reports.rollups import chart_drawn_once
from tests.conftest import host

# Week 1 runs Monday 2 March to Sunday 8 March 2026, week 2 from Monday 9 March.
WEEK1, WEEK2 = date(2026, 3, 2), date(2026, 3, 9)
URL = "/reports/activity/"
RANGE = {"start": "2026-03-04", "end": "2026-03-10"}


def at(day: int, hour: int = 10, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=UTC)


def person(name: str, role: str, team: Team | None) -> User:
    email = name.lower().replace(" ", ".") + "@alpha.test"
    return User.objects.create(email=email, full_name=name, role=role, team=team)


@pytest.fixture
def work(in_alpha):
    """Two teams' work in weeks 1 and 2 (and around them), with what each item should count
    for written next to it."""
    team_a, team_b = Team.objects.create(name="A"), Team.objects.create(name="B")
    ann = person("Ann Manager", Role.MANAGER, team_a)
    bob = person("Bob Seller", Role.SALES, team_a)
    cy = person("Cy Seller", Role.SALES, team_a)
    dee = person("Dee Other", Role.SALES, team_b)
    person("Kim Marketer", Role.MARKETING, None)
    account = Account.objects.create(name="Acme")
    contact = Contact.objects.create(first_name="Carla", account=account)
    won, lost = Stage.objects.get(is_won=True), Stage.objects.get(is_lost=True)
    deal = Opportunity.objects.create(
        name="Big deal", account=account, owner=cy, stage=won, closed_at=at(11)
    )
    lost_deal = Opportunity.objects.create(
        name="Lost deal", account=account, owner=cy, stage=lost, closed_at=at(11)
    )
    Opportunity.objects.create(
        name="Quick win", account=account, owner=dee, stage=won, closed_at=at(4)
    )

    def log(user, kind, when, opportunity=None):
        Activity.objects.create(
            kind=kind,
            subject=kind,
            occurred_at=when,
            user=user,
            contact=None if opportunity else contact,
            opportunity=opportunity,
        )

    log(bob, "call", at(2, 9))  # Bob, week 1
    log(bob, "call", at(8, 23, 30))  # Bob, week 1 (its last half hour)
    log(bob, "meeting", at(4))  # Bob, week 1
    log(bob, "note", at(4))  # notes are not counted
    log(bob, "email", at(9, 0))  # Bob, week 2 (its first minute)
    log(bob, "letter", at(12))  # Bob, week 2
    log(cy, "call", at(3))  # Cy, week 1
    log(cy, "call", at(5), deal)  # Cy, week 1; on the won deal
    log(cy, "call", at(6), deal)  # Cy, week 1; on the won deal
    log(bob, "email", at(10), deal)  # Bob, week 2; on the won deal
    log(cy, "note", at(10), deal)  # not counted, not even on the won deal
    log(cy, "meeting", datetime(2026, 2, 20, tzinfo=UTC), deal)  # before: only on the deal
    log(cy, "call", at(11), lost_deal)  # Cy, week 2; a lost deal has no per-won share
    for _ in range(4):
        log(dee, "call", at(3))  # Dee, week 1
    log(bob, "call", at(16))  # after week 2

    def task(user, done_at):
        Task.objects.create(title="Do", assignee=user, contact=contact, done_at=done_at)

    task(bob, at(10))  # Bob, week 2
    task(bob, None)  # not done
    task(cy, datetime(2026, 3, 1, 18, tzinfo=UTC))  # done the Sunday before week 1
    task(ann, at(3))  # Ann, week 1
    activity_rollup_refresh(rebuild=True)
    return {
        "ann": ann,
        "bob": bob,
        "cy": cy,
        "dee": dee,
        "team_b": team_b,
        "deal": deal,
        "contact": contact,
    }


def numbers(counts: Counts) -> tuple:
    return (
        counts.calls,
        counts.meetings,
        counts.emails,
        counts.letters,
        counts.tasks_done,
        counts.won,
        counts.won_activities,
    )


def test_each_salesperson_s_weeks_are_counted_as_by_hand(work):
    report = activity_report(
        people=User.objects.all(), start=date(2026, 3, 4), end=date(2026, 3, 10)
    )

    assert report.weeks == [WEEK1, WEEK2]
    # calls, meetings, e-mails, letters, tasks done, won, activities on the won
    assert {row.name: numbers(row.counts) for row in report.people} == {
        "Ann Manager": (0, 0, 0, 0, 1, 0, 0),
        "Bob Seller": (2, 1, 2, 1, 1, 0, 0),
        "Cy Seller": (4, 0, 0, 0, 0, 1, 4),
        "Dee Other": (4, 0, 0, 0, 0, 1, 0),
    }
    per_won = {row.name: row.counts.per_won for row in report.people}
    assert per_won == {"Ann Manager": None, "Bob Seller": None, "Cy Seller": 4.0, "Dee Other": 0.0}
    assert numbers(report.total) == (10, 1, 2, 1, 2, 2, 4)
    assert report.total.per_won == 2.0
    assert numbers(report.by_week[WEEK1]) == (9, 1, 0, 0, 1, 1, 0)
    assert numbers(report.by_week[WEEK2]) == (1, 0, 2, 1, 1, 1, 4)
    bob = next(row for row in report.people if row.name == "Bob Seller")
    assert (bob.counts.total, bob.per_week) == (7, 3.5)


def test_the_refresh_recounts_the_weeks_that_changed(work):
    bob, dee, deal = work["bob"], work["dee"], work["deal"]
    contact = work["contact"]
    # Logged today but about week 1; and a call on the deal won in week 2, made in week 3.
    Activity.objects.create(
        kind="call", subject="Late entry", occurred_at=at(3), user=bob, contact=contact
    )
    Activity.objects.create(
        kind="call", subject="After", occurred_at=at(18), user=dee, opportunity=deal
    )
    task = Task.objects.create(title="Now", assignee=bob, contact=contact)
    task_set_done(actor=bob, task=task, done=True)

    recounted = activity_rollup_refresh()

    row = ActivityWeek.objects.get(user=bob, week=WEEK1)
    assert row.calls == 3
    assert ActivityWeek.objects.get(user=work["cy"], week=WEEK2).won_activities == 5
    this_week = monday(task.done_at.date())
    assert ActivityWeek.objects.get(user=bob, week=this_week).tasks_done == 1
    # Weeks 1, 2 and 3 (the call's own) and the current one; nothing else.
    assert recounted == len({WEEK1, WEEK2, date(2026, 3, 16), this_week})
    assert activity_rollup_refresh() == 1  # only the current week, always


def test_the_page_shows_the_numbers_a_chart_and_how_fresh_they_are(work, client, alpha):
    client.force_login(User.objects.get(email="admin@alpha.test"))
    response = client.get(URL, RANGE, HTTP_HOST=host(alpha))

    assert response.status_code == 200
    page = response.content.decode()
    assert 'data-testid="report-chart"><svg' in page
    assert "Counted at" in page and 'data-testid="report-problems"' not in page
    names = [row.name for row in response.context["report"].people]
    assert names == ["Ann Manager", "Bob Seller", "Cy Seller", "Dee Other"]
    assert "Kim Marketer" not in page


def test_a_manager_sees_their_team_and_a_team_not_theirs_is_refused(work, client, alpha):
    client.force_login(work["ann"])
    response = client.get(URL, {**RANGE, "team": work["team_b"].pk}, HTTP_HOST=host(alpha))

    assert response.status_code == 200
    report = response.context["report"]
    assert [row.name for row in report.people] == ["Ann Manager", "Bob Seller", "Cy Seller"]
    assert numbers(report.total) == (6, 1, 2, 1, 2, 1, 4)
    assert response.context["problems"] == [
        f"Team: Select a valid choice. {work['team_b'].pk} is not one of the available choices."
    ]
    assert "Dee Other" not in response.content.decode()

    response = client.get(URL, {**RANGE, "user": work["bob"].pk}, HTTP_HOST=host(alpha))
    assert [row.name for row in response.context["report"].people] == ["Bob Seller"]


@pytest.mark.parametrize("role", [Role.SALES, Role.MARKETING, Role.PARTNER])
def test_other_roles_may_not_open_it(in_alpha, client, alpha, role):
    client.force_login(person("Someone Else", role, None))
    assert client.get(URL, HTTP_HOST=host(alpha)).status_code == 403


@pytest.mark.parametrize(
    "params",
    [
        {"start": "last tuesday"},
        {"start": "2026-03-10", "end": "2026-03-01"},
        {"start": "2010-01-01", "end": "2026-01-01"},
        {"team": "x", "user": "99999"},
    ],
)
def test_bad_filters_are_named_and_the_default_shown(in_alpha, client, alpha, params):
    client.force_login(User.objects.get(email="admin@alpha.test"))
    response = client.get(URL, params, HTTP_HOST=host(alpha))

    assert response.status_code == 200
    assert 'data-testid="report-problems"' in response.content.decode()
    assert response.context["problems"]
    # The filters show the defaults in use, not what was refused.
    assert not response.context["form"].is_bound
    assert len(response.context["report"].weeks) == 12


def test_the_csv_has_each_salesperson_week_by_week(work, client, alpha):
    client.force_login(User.objects.get(email="admin@alpha.test"))
    response = client.get(URL, {**RANGE, "format": "csv"}, HTTP_HOST=host(alpha))

    assert response["Content-Type"].startswith("text/csv")
    lines = response.content.decode().splitlines()
    assert lines[0] == (
        "Week,Salesperson,Calls,Meetings,E-mails,Letters,Tasks done,Opportunities won,"
        "Activities on won opportunities"
    )
    assert len(lines) == 1 + 4 * 2
    assert "2026-03-02,Bob Seller,2,1,0,0,0,0,0" in lines
    assert "2026-03-09,Cy Seller,1,0,0,0,0,1,4" in lines


def test_a_tenant_sees_only_its_own_work(work, client, beta):
    with schema_context(beta.schema_name):
        activity_rollup_refresh(rebuild=True)
        client.force_login(User.objects.get(email="admin@beta.test"))
    response = client.get(URL, RANGE, HTTP_HOST=host(beta))

    assert response.status_code == 200
    assert response.context["report"].people == []
    assert "Bob Seller" not in response.content.decode()


def test_the_page_reads_a_few_queries(work, client, alpha, django_assert_max_num_queries):
    client.force_login(User.objects.get(email="admin@alpha.test"))
    with django_assert_max_num_queries(12):
        assert client.get(URL, RANGE, HTTP_HOST=host(alpha)).status_code == 200


def test_a_tenant_never_counted_is_told_so_and_a_first_count_is_queued_once(
    client, beta, django_capture_on_commit_callbacks
):
    with schema_context(beta.schema_name):
        cache.delete("reports:rollup-queued:reports.rollup_tasks.activity_rollup")
        client.force_login(User.objects.get(email="admin@beta.test"))
    with django_capture_on_commit_callbacks() as queued:
        page = client.get(URL, HTTP_HOST=host(beta)).content.decode()
        client.get(URL, HTTP_HOST=host(beta))

    assert "counted for the first time" in page
    assert len(queued) == 1


def test_beat_s_tasks_count_in_the_tenant_that_queued_them(committed_tenant, celery_worker):
    tenant = committed_tenant("rollups")
    with schema_context(tenant.schema_name):
        admin = User.objects.get()
        contact = Contact.objects.create(first_name="Ida")
        Activity.objects.create(
            kind="call", subject="Hello", occurred_at=timezone.now(), user=admin, contact=contact
        )
        results = [activity_rollup.delay(), lifecycle_rollup.delay()]
    connection.set_schema_to_public()

    assert [result.get(timeout=60) for result in results] == [0, 1]
    with schema_context(tenant.schema_name):
        assert ActivityWeek.objects.get().calls == 1
        stats = LifecycleStat.objects.filter(period_kind="year", sliced_by=0)
        assert [(s.stage, s.entered) for s in stats] == [("awareness", 1)]
    connection.set_schema_to_public()
    for name in ("activity", "lifecycle"):
        entry = settings.CELERY_BEAT_SCHEDULE[f"{name}-rollup"]
        assert entry["args"] == [f"reports.rollup_tasks.{name}_rollup"]
    assert "reports.rollup_tasks" in settings.CELERY_IMPORTS


def test_a_chart_is_drawn_once_for_the_same_numbers(in_alpha):
    numbers = {"labels": ["02 Mar", "09 Mar"], "series": {"Calls": [9, 1]}}

    first = chart_drawn_once(line_chart, **numbers)
    again = chart_drawn_once(line_chart, **numbers)
    other = chart_drawn_once(line_chart, **{**numbers, "series": {"Calls": [9, 2]}})

    # Each drawing has an id of its own: the same string is the kept drawing.
    assert first == again and first.startswith("<svg")
    assert other != first and "<script" not in other
