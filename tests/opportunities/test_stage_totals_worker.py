"""The stage totals' folding run by a real Celery worker in the tenant that queued it, and beat's
schedule for it."""

from django.conf import settings
from django.db import connection
from django_tenants.utils import schema_context

from contacts.models import Account
from crm.celery import app
from crm.demo import pipeline_ensure
from opportunities.models import Opportunity, StageTotal
from opportunities.tasks import stage_totals_compact_run


def test_the_beat_folds_the_rows_in_every_tenant_with_a_worker(committed_tenant, celery_worker):
    tenant = committed_tenant("fold")
    with schema_context(tenant.schema_name):
        stage = pipeline_ensure().stages.get(name="Proposal")
        account = Account.objects.create(name="Acme")
        for amount in (10, 20, 30):
            Opportunity.objects.create(name="Deal", account=account, stage=stage, amount=amount)
        assert StageTotal.objects.count() == 3

        assert stage_totals_compact_run.delay().get(timeout=30) == 1
        assert list(StageTotal.objects.values_list("count", "amount")) == [(3, 60)]
    connection.set_schema_to_public()

    entry = settings.CELERY_BEAT_SCHEDULE["stage-totals-compact"]
    assert entry["task"] == "crm.tenants.tasks.for_each_tenant"
    assert entry["args"] == ["opportunities.tasks.stage_totals_compact_run"]
    assert "opportunities.tasks.stage_totals_compact_run" in app.tasks
