"""Browser flow: a manager opens the customer life-cycle report, sees its funnel drawn, breaks
the numbers down by source, and a made-up period kind in the address is named and replaced by
the default."""

from datetime import UTC, datetime

import pytest
from django.db import connection
from django_tenants.utils import schema_context
from playwright.sync_api import expect

from contacts.models import Contact
from reports.lifecycle import lifecycle_rollup_refresh
from tests.e2e.conftest import log_in
from tracking.models import LifecycleChange

pytestmark = pytest.mark.e2e


def test_a_manager_reads_the_funnel_and_breaks_it_down_by_source(
    page, live_app, committed_tenant, add_user, django_db_blocker
):
    tenant = committed_tenant("cycle")
    email = add_user(tenant, "manager")
    with django_db_blocker.unblock(), schema_context(tenant.schema_name):
        for name, source, moved in (("Ada", "Web", True), ("Bo", "Fair", False)):
            person = Contact.objects.create(first_name=name, source=source)
            Contact.objects.filter(pk=person.pk).update(created_at=datetime(2025, 2, 1, tzinfo=UTC))
            if moved:
                LifecycleChange.objects.create(
                    contact=person,
                    from_stage="awareness",
                    to_stage="education",
                    at=datetime(2025, 2, 11, tzinfo=UTC),
                    cause="Form",
                )
        lifecycle_rollup_refresh(rebuild=True)
    connection.set_schema_to_public()
    log_in(page, live_app, tenant.slug, email)

    page.goto(live_app.url_for(tenant.slug, "/reports/"))
    page.get_by_role("link", name="Customer life cycle").click()
    page.fill("#id_start", "2025-01-01")
    page.fill("#id_end", "2025-03-31")
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_test_id("report-chart").locator("svg")).to_be_visible()
    expect(page.get_by_test_id("report-freshness")).to_contain_text("Counted at")
    awareness = page.locator('[data-testid=lifecycle-row][data-stage="awareness"]')
    expect(awareness).to_contain_text("2")

    page.select_option("#id_group_by", "source")
    page.get_by_role("button", name="Show").click()
    expect(page.locator('[data-testid=lifecycle-row][data-group="Web"]')).to_have_count(5)
    web_awareness = page.locator('[data-group="Web"][data-stage="awareness"]')
    expect(web_awareness).to_contain_text("100.0%")

    page.goto(live_app.url_for(tenant.slug, "/reports/life-cycle/?period=decade"))
    expect(page.get_by_test_id("report-problems")).to_contain_text("Periods")
    expect(page.locator("#id_period")).to_have_value("quarter")
