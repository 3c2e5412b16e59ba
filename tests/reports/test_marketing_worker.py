"""The marketing rollups are refreshed by a real Celery worker, in the schema of the tenant
that queued the refresh (beat queues it in every tenant)."""

from django.db import connection
from django_tenants.utils import schema_context

from reports.models import RollupState


def test_the_worker_refreshes_the_rollups_in_the_tenant_that_queued_it(
    committed_tenant, celery_worker, settings
):
    from reports.marketing_tasks import marketing_rollup

    assert settings.CELERY_BEAT_SCHEDULE["marketing-rollup"]["args"] == [marketing_rollup.name]
    tenant = committed_tenant("mkt")
    with schema_context(tenant.schema_name):
        assert marketing_rollup.delay().get(timeout=30)["rebuilt"] == 1
        state = RollupState.objects.get(name="marketing")
    connection.set_schema_to_public()
    assert state.refreshed_at is not None and state.rebuilt_at is not None
