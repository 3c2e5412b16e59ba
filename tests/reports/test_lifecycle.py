"""The customer life-cycle report: entered, moved on, conversion and days in each stage checked
against a few contacts' histories counted by hand, slices by source and territory, the
rollup's incremental refresh, roles, bad filters, the CSV and two tenants."""

from datetime import UTC, date, datetime, timedelta

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context

from contacts.models import Contact
from crm.users.models import Role, User
from reports.filters import period_of, periods
from reports.lifecycle import lifecycle_report, lifecycle_rollup_refresh
from reports.models import LifecycleStat
from tests.conftest import host
from tracking.models import LifecycleChange

URL = "/reports/life-cycle/"
HALF = {"period": "quarter", "start": "2025-01-01", "end": "2025-06-30"}
Q1, Q2 = period_of("quarter", date(2025, 1, 1)), period_of("quarter", date(2025, 4, 1))


def day(month: int, number: int, year: int = 2025) -> datetime:
    return datetime(year, month, number, tzinfo=UTC)


def contact(name, created, stage, *, moves=(), source="", territory="", first_stage=None):
    """A contact created at `created` in their first stage, then moved (days after the move
    before, to stage) as the ledger records it; `stage` is where they are now."""
    person = Contact.objects.create(
        first_name=name, lifecycle_stage=stage, source=source, territory=territory
    )
    Contact.objects.filter(pk=person.pk).update(created_at=created, updated_at=created)
    at, before = created, first_stage
    for days, to in moves:
        at += timedelta(days=days)
        LifecycleChange.objects.create(
            contact=person, from_stage=before or "", to_stage=to, at=at, cause="test"
        )
        before = to
    return person


@pytest.fixture
def histories(in_alpha):
    """Seven contacts; what each stay counts for is worked out in the tests below."""
    a = contact(
        "A",
        day(1, 1),
        "purchase",
        first_stage="awareness",
        moves=[(10, "education"), (30, "evaluation"), (60, "purchase")],
        source="Web",
        territory="North",
    )
    contact(
        "B",
        day(1, 5),
        "education",
        first_stage="awareness",
        moves=[(20, "education")],
        source="Web",
        territory="South",
    )
    # No ledger row: the contact is in the stage they were created in.
    contact("C", day(2, 1), "awareness", source="Fair", territory="North")
    # Created evaluating; a lost deal sent them back to education.
    contact(
        "D",
        day(2, 15),
        "education",
        first_stage="evaluation",
        moves=[(14, "education")],
        source="Fair",
        territory="South",
    )
    # An imported customer.
    contact("E", day(4, 5), "purchase", source="Import")
    contact(
        "F",
        day(12, 20, 2024),
        "reorder",
        first_stage="awareness",
        moves=[
            (15, "education"),
            (20, "evaluation"),
            (40, "purchase"),
            (60, "reorder"),
            (30, "reorder"),
        ],
        source="Web",
        territory="West",
    )
    # The ledger's first row has no from-stage: no stay before it.
    contact("G", day(1, 10), "evaluation", first_stage="", moves=[(0.5, "evaluation")])
    lifecycle_rollup_refresh(rebuild=True)
    return {"a": a}


def table(report) -> dict:
    """{(period label, group value, stage): (entered, moved on, left, median, p90)}, the
    stages nobody entered left out."""
    return {
        (group.period.label, group.value, row.stage): (
            row.entered,
            row.moved_on,
            row.left,
            row.median_days,
            row.p90_days,
        )
        for group in report.groups
        for row in group.stages
        if row.entered
    }


def test_each_stage_s_entries_moves_and_days_as_counted_by_hand(histories):
    report = lifecycle_report(periods=[Q1, Q2])

    assert table(report) == {
        # A (10 days), B (20 days) moved on; C is still there.
        ("Q1 2025", None, "awareness"): (3, 2, 2, 15.0, 19.0),
        # A (30 days) and F (20 days) moved on; B and D (back from evaluation) are still there.
        ("Q1 2025", None, "education"): (4, 2, 2, 25.0, 29.0),
        # A (60 days) and F (40 days) moved on; D went back after 14 days; G is still there.
        # The 90th percentile of 14, 40, 60 lies 0.8 of the way from 40 to 60.
        ("Q1 2025", None, "evaluation"): (4, 2, 3, 40.0, 56.0),
        # F ordered again 60 days later.
        ("Q1 2025", None, "purchase"): (1, 1, 1, 60.0, 60.0),
        # A (from evaluation) and E (imported as a customer) are still there.
        ("Q2 2025", None, "purchase"): (2, 0, 0, None, None),
        # F's first reorder cycle lasted 30 days (a new cycle is moving on); the second goes on.
        ("Q2 2025", None, "reorder"): (2, 1, 1, 30.0, 30.0),
    }
    assert report.entered == {
        "awareness": 3,
        "education": 4,
        "evaluation": 4,
        "purchase": 3,
        "reorder": 2,
    }
    q1_education = report.groups[0].stages[1]
    assert (q1_education.conversion, q1_education.still_there) == (50.0, 2)


def test_slices_by_source_and_territory(histories):
    web = lifecycle_report(periods=[Q1], filters={"source": "Web"})
    assert table(web) == {
        ("Q1 2025", None, "awareness"): (2, 2, 2, 15.0, 19.0),
        ("Q1 2025", None, "education"): (3, 2, 2, 25.0, 29.0),
        ("Q1 2025", None, "evaluation"): (2, 2, 2, 50.0, 58.0),
        ("Q1 2025", None, "purchase"): (1, 1, 1, 60.0, 60.0),
    }
    by_territory = lifecycle_report(periods=[Q1], group_by="territory", filters={"source": "Fair"})
    assert table(by_territory) == {
        ("Q1 2025", "North", "awareness"): (1, 0, 0, None, None),
        ("Q1 2025", "South", "education"): (1, 0, 0, None, None),
        ("Q1 2025", "South", "evaluation"): (1, 0, 1, 14.0, 14.0),
    }
    # The months: January's awareness is A's and B's.
    january = lifecycle_report(periods=[period_of("month", date(2025, 1, 1))])
    assert table(january)[("Jan 2025", None, "awareness")] == (2, 2, 2, 15.0, 19.0)


def test_the_refresh_rebuilds_the_contacts_that_moved_or_changed(histories):
    b = Contact.objects.get(first_name="B")
    # B moves on from education 50 days after entering it; C's source is corrected.
    LifecycleChange.objects.create(
        contact=b, from_stage="education", to_stage="evaluation", at=day(3, 16), cause="test"
    )
    Contact.objects.filter(pk=b.pk).update(lifecycle_stage="evaluation")
    c = Contact.objects.get(first_name="C")
    c.source = "Web"
    c.save()
    untouched = LifecycleStat.objects.get(
        period_kind="year", period_start=date(2024, 1, 1), stage="awareness", sliced_by=0
    ).pk

    # The refresh after this one reads again what changed up to a minute before this one.
    soon = timezone.now() + timedelta(minutes=2)
    assert lifecycle_rollup_refresh(now=soon) == 2

    report = table(lifecycle_report(periods=[Q1]))
    assert report[("Q1 2025", None, "education")] == (4, 3, 3, 30.0, 46.0)
    assert report[("Q1 2025", None, "evaluation")] == (5, 2, 3, 40.0, 56.0)
    web = table(lifecycle_report(periods=[Q1], filters={"source": "Web"}))
    assert web[("Q1 2025", None, "awareness")] == (3, 2, 2, 15.0, 19.0)
    # 2024 held none of the stays that changed: its numbers were not recounted.
    assert LifecycleStat.objects.filter(pk=untouched).exists()
    assert lifecycle_rollup_refresh(now=soon + timedelta(minutes=30)) == 0


def test_the_page_shows_the_funnel_and_the_table(histories, client, alpha):
    client.force_login(User.objects.get(email="admin@alpha.test"))
    response = client.get(URL, HALF, HTTP_HOST=host(alpha))

    assert response.status_code == 200
    page = response.content.decode()
    assert 'data-testid="report-chart"><svg' in page and "Counted at" in page
    assert response.context["funnel"] == [
        ("Awareness", 3),
        ("Education", 4),
        ("Evaluation", 4),
        ("Purchase", 3),
        ("Reorder", 2),
    ]
    assert 'data-period="Q1 2025" data-stage="evaluation"' in page
    assert '<option value="Web">Web</option>' in page


def test_grouped_by_source_the_rows_name_their_source(histories, client, alpha):
    client.force_login(User.objects.get(email="admin@alpha.test"))
    params = {**HALF, "group_by": "source", "territory": "North"}
    response = client.get(URL, params, HTTP_HOST=host(alpha))

    groups = [(g.period.label, g.value) for g in response.context["report"].groups]
    assert groups == [("Q1 2025", "Fair"), ("Q1 2025", "Web"), ("Q2 2025", "Web")]
    assert response.context["problems"] == []


@pytest.mark.parametrize(
    "params",
    [
        {"period": "decade"},
        {"start": "2025-06-01", "end": "2025-01-01"},
        {"start": "soon"},
        {"group_by": "owner"},
        {"source": "Nowhere"},
        {"customer_type": "alien"},
    ],
)
def test_bad_filters_are_named_and_the_default_shown(histories, client, alpha, params):
    client.force_login(User.objects.get(email="admin@alpha.test"))
    response = client.get(URL, params, HTTP_HOST=host(alpha))

    assert response.status_code == 200
    assert response.context["problems"]
    assert 'data-testid="report-problems"' in response.content.decode()
    # The filters show the defaults in use, not what was refused.
    assert not response.context["form"].is_bound


def test_the_default_is_the_last_four_quarters(in_alpha, client, alpha):
    client.force_login(User.objects.get(email="admin@alpha.test"))
    response = client.get(URL, HTTP_HOST=host(alpha))

    chosen = response.context["report"].periods
    assert [p.kind for p in chosen] == ["quarter"] * 4
    assert chosen[-1] == period_of("quarter", datetime.now(UTC).date())
    assert chosen == periods("quarter", chosen[0].start, chosen[-1].start)


def test_managers_and_admins_may_open_it_the_others_not(in_alpha, client, alpha):
    for role, status in [
        (Role.MANAGER, 200),
        (Role.SALES, 403),
        (Role.MARKETING, 403),
        (Role.PARTNER, 403),
    ]:
        user = User.objects.create(email=f"{role}@alpha.test", full_name=role, role=role)
        client.force_login(user)
        assert client.get(URL, HTTP_HOST=host(alpha)).status_code == status, role


def test_the_csv_has_a_row_per_period_group_and_stage(histories, client, alpha):
    client.force_login(User.objects.get(email="admin@alpha.test"))
    response = client.get(URL, {**HALF, "format": "csv"}, HTTP_HOST=host(alpha))

    lines = response.content.decode().splitlines()
    assert lines[0] == (
        "Period,Group,Stage,Entered,Moved on,Conversion %,Left,Still there,Median days,"
        "90th percentile days"
    )
    assert len(lines) == 1 + 2 * 5
    assert "Q1 2025,All,Evaluation,4,2,50.0,3,1,40.0,56.0" in lines
    assert "Q2 2025,All,Education,0,0,,0,0,," in lines


def test_a_tenant_sees_only_its_own_contacts(histories, client, beta):
    with schema_context(beta.schema_name):
        lifecycle_rollup_refresh(rebuild=True)
        client.force_login(User.objects.get(email="admin@beta.test"))
    response = client.get(URL, HALF, HTTP_HOST=host(beta))

    assert response.status_code == 200
    assert sum(response.context["report"].entered.values()) == 0
    assert 'data-testid="lifecycle-empty"' in response.content.decode()


def test_the_page_reads_a_few_queries(histories, client, alpha, django_assert_max_num_queries):
    client.force_login(User.objects.get(email="admin@alpha.test"))
    with django_assert_max_num_queries(12):
        assert client.get(URL, HALF, HTTP_HOST=host(alpha)).status_code == 200
