"""The weekly forecast snapshot: per owner, for the current and next month, quarter and year; safe
to run twice; run by the real Celery worker in the tenant that queued it; on the beat schedule
for every tenant."""

from decimal import Decimal

import pytest
from celery.schedules import crontab
from django.conf import settings
from django.db import connection
from django_tenants.utils import schema_context

from contacts import services as contact_services
from crm.celery import app
from crm.demo import pipeline_ensure
from crm.users.models import Role, User
from crm.users.services import user_create
from opportunities import services
from reports.filters import period_of, today
from reports.forecast import forecast_snapshots_take
from reports.models import ForecastSnapshot
from reports.tasks import forecast_snapshots
from tests.conftest import PASSWORD


def _deals():
    """Sam: commit 1,000 at Proposal (50%) closing today, and a best case of 400 at Negotiation
    (75%) closing in the next quarter's first day; the admin: 300 won today."""
    admin = User.objects.get(role=Role.ADMIN)
    sam = user_create(email="sam@x.test", password=PASSWORD, full_name="Sam", role=Role.SALES)
    stages = {s.name: s for s in pipeline_ensure().stages.all()}
    account = contact_services.account_create(actor=admin, name="Initech")
    for owner, stage, amount, close, category in (
        (sam, "Proposal", 1000, today(), "commit"),
        (sam, "Negotiation", 400, period_of("quarter", today()).end, "best_case"),
        (admin, "Closed won", 300, today(), "closed"),
    ):
        services.opportunity_create(
            actor=admin,
            name=f"{owner} {amount}",
            account=account,
            owner=owner,
            stage=stages[stage],
            amount=Decimal(amount),
            expected_close=close,
            forecast_category=category,
        )
    return admin, sam


def key(period) -> tuple[str, str]:
    return (period.kind, period.start.isoformat())


def _by_period(owner) -> dict[tuple[str, str], tuple]:
    return {
        (s.period_kind, s.period_start.isoformat()): (
            s.pipeline,
            s.best_case,
            s.commit,
            s.closed_won,
            s.weighted,
        )
        for s in ForecastSnapshot.objects.filter(owner=owner)
    }


@pytest.mark.django_db
def test_a_snapshot_keeps_each_owners_forecast_for_this_and_the_next_periods(in_alpha):
    admin, sam = _deals()
    this = {kind: period_of(kind, today()) for kind in ("month", "quarter", "year")}
    next_quarter = this["quarter"].next()
    zero = Decimal("0")

    written = forecast_snapshots_take()
    again = forecast_snapshots_take()

    assert again == 0
    assert ForecastSnapshot.objects.count() == written
    assert len({s.taken_at for s in ForecastSnapshot.objects.all()}) == 1
    commit = (zero, zero, Decimal("1000"), zero, Decimal("500"))
    best = (zero, Decimal("400"), zero, zero, Decimal("300"))
    expected_sam = {
        key(this["month"]): commit,
        key(this["quarter"]): commit,
        key(next_quarter): best,
    }
    # The best case closes on the next quarter's first day: in the next month when this month
    # ends the quarter, in this year or in the next.
    if this["month"].next().start == next_quarter.start:
        expected_sam[key(this["month"].next())] = best
    if next_quarter.start.year == today().year:
        expected_sam[key(this["year"])] = (
            zero,
            Decimal("400"),
            Decimal("1000"),
            zero,
            Decimal("800"),
        )
    else:
        expected_sam[key(this["year"])] = commit
        expected_sam[key(this["year"].next())] = best
    assert _by_period(sam) == expected_sam
    won = (zero, zero, zero, Decimal("300"), zero)
    assert _by_period(admin) == {key(period): won for period in this.values()}


def test_the_worker_takes_the_snapshot_in_the_tenant_that_queued_it(
    committed_tenant, celery_worker
):
    tenant = committed_tenant("snap")
    with schema_context(tenant.schema_name):
        _deals()
        written = forecast_snapshots.delay().get(timeout=30)
        again = forecast_snapshots.delay().get(timeout=30)
        stored = ForecastSnapshot.objects.count()
    connection.set_schema_to_public()

    # Sam in this month, quarter and year and the next quarter (and next month or year when
    # the best case falls in them); the admin's won deal in this month, quarter and year.
    assert written == stored >= 7
    assert again == 0


def test_the_beat_takes_snapshots_weekly_in_every_tenant():
    entry = settings.CELERY_BEAT_SCHEDULE["forecast-snapshots"]

    assert entry["task"] == "crm.tenants.tasks.for_each_tenant"
    assert entry["args"] == ["reports.tasks.forecast_snapshots"]
    assert entry["schedule"] == crontab(minute=0, hour=5, day_of_week="mon")
    assert "reports.tasks.forecast_snapshots" in app.tasks
