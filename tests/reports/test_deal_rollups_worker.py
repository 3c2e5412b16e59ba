"""The pipeline-movement rollup counted by a real Celery worker in the tenant that queued it,
and beat's schedule for it."""

from decimal import Decimal

from django.conf import settings
from django.db import connection
from django_tenants.utils import schema_context

from contacts import services as contact_services
from crm.celery import app
from crm.demo import pipeline_ensure
from crm.users.models import User
from opportunities import services
from reports import forecast
from reports.deal_rollups import movement_counted
from reports.filters import period_of, today
from reports.rollup_tasks import deal_rollups


def test_the_worker_counts_in_the_tenant_that_queued_it(committed_tenant, celery_worker):
    tenant = committed_tenant("move")
    with schema_context(tenant.schema_name):
        admin = User.objects.get(email=f"admin@{tenant.slug}.test")
        services.opportunity_create(
            actor=admin,
            name="Counted",
            account=contact_services.account_create(actor=admin, name="Acme"),
            stage=pipeline_ensure().stages.get(name="Proposal"),
            amount=Decimal("42"),
        )
        recounted = deal_rollups.delay().get(timeout=30)
        rows = movement_counted(admin, forecast.Scope(), period_of("month", today()))
    connection.set_schema_to_public()

    # This month, quarter and year.
    assert recounted == 3
    assert rows[0].measure == "entered"
    assert (rows[0].count, rows[0].amount) == (1, Decimal("42.00"))


def test_the_beat_recounts_every_five_minutes_in_every_tenant():
    entry = settings.CELERY_BEAT_SCHEDULE["deal-rollups"]

    assert entry["task"] == "crm.tenants.tasks.for_each_tenant"
    assert entry["args"] == ["reports.rollup_tasks.deal_rollups"]
    assert entry["schedule"] == 300.0
    assert "reports.rollup_tasks.deal_rollups" in app.tasks
