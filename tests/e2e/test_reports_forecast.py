"""Browser flow: a manager opens the sales forecast from the reports, sees their team's commit,
changes the period to last quarter, and drills into a number to see exactly the deals behind it
(and none of another team's)."""

from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django_tenants.utils import schema_context
from playwright.sync_api import expect

from contacts import services as contact_services
from crm.demo import pipeline_ensure
from crm.users.models import Role, Team, User
from crm.users.services import user_create
from opportunities import services
from opportunities.models import Opportunity
from reports.filters import period_of, today
from reports.forecast import period_key
from tests.conftest import PASSWORD
from tests.e2e.conftest import log_in

pytestmark = pytest.mark.e2e


def test_a_manager_changes_the_period_and_drills_into_a_number(
    page, live_app, committed_tenant, django_db_blocker
):
    tenant = committed_tenant("fcst")
    this_quarter = period_of("quarter", today())
    last_quarter = this_quarter.previous()
    with django_db_blocker.unblock(), schema_context(tenant.schema_name):
        admin = User.objects.get(email=f"admin@{tenant.slug}.test")
        north, south = Team.objects.create(name="North"), Team.objects.create(name="South")

        def person(name, role, team):
            return user_create(
                email=f"{name.lower()}@{tenant.slug}.test",
                password=PASSWORD,
                full_name=name,
                role=role,
                team=team,
            )

        manager = person("Mona", Role.MANAGER, north)
        sam, sue, tom = (
            person("Sam", Role.SALES, north),
            person("Sue", Role.SALES, north),
            person("Tom", Role.SALES, south),
        )
        proposal = pipeline_ensure().stages.get(name="Proposal")
        account = contact_services.account_create(actor=admin, name="Initech")
        for name, owner, amount, close in (
            ("Renewal", sam, 1000, this_quarter.start),
            ("Upsell", sue, 250, this_quarter.end - timedelta(days=1)),
            ("Last quarter deal", sam, 4000, last_quarter.start + timedelta(days=40)),
            ("Expansion", sue, 600, last_quarter.end - timedelta(days=1)),
            ("Other team's deal", tom, 9999, last_quarter.start),
            ("Next quarter deal", sam, 77, this_quarter.end),
        ):
            services.opportunity_create(
                actor=admin,
                name=name,
                account=account,
                owner=owner,
                stage=proposal,
                amount=Decimal(amount),
                expected_close=close,
                forecast_category="commit",
            )
        won = services.opportunity_create(
            actor=admin,
            name="Won deal",
            account=account,
            owner=sue,
            stage=pipeline_ensure().stages.get(name="Closed won"),
            amount=Decimal(300),
        )
        Opportunity.objects.filter(pk=won.pk).update(
            closed_at=datetime.combine(last_quarter.start, time(12), tzinfo=UTC)
        )
    connection.set_schema_to_public()
    log_in(page, live_app, tenant.slug, manager.email)

    page.goto(live_app.url_for(tenant.slug, "/reports/"))
    page.get_by_role("link", name="Sales forecast").click()
    total = page.get_by_test_id("forecast-total")
    expect(page.get_by_test_id("forecast-period")).to_have_text(this_quarter.label)
    expect(total.locator('a[data-measure="commit"]')).to_have_text("1,250.00")
    expect(page.get_by_test_id("report-chart").locator("svg")).to_be_visible()

    filters = page.get_by_test_id("report-filters")
    filters.locator("#id_period").select_option(period_key(last_quarter))
    filters.get_by_role("button", name="Show").click()
    expect(page.get_by_test_id("forecast-period")).to_have_text(last_quarter.label)
    expect(total.locator('a[data-measure="commit"]')).to_have_text("4,600.00")
    expect(page.get_by_test_id("forecast-table")).not_to_contain_text("Tom")

    total.locator('a[data-measure="commit"]').click()
    expect(page.get_by_test_id("drill-count")).to_have_text("2")
    expect(page.get_by_test_id("drill-amount")).to_have_text("4,600.00")
    rows = page.get_by_test_id("drill-row")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("Last quarter deal")
    expect(rows.nth(1)).to_contain_text("Expansion")

    # One person's number drills into that person's deals only.
    page.go_back()
    sue_row = page.get_by_test_id("forecast-row").filter(has_text="Sue")
    sue_row.locator('a[data-measure="commit"]').click()
    expect(page.get_by_test_id("drill-row")).to_have_count(1)
    expect(page.get_by_test_id("drill-row")).to_contain_text("Expansion")

    # The manager sets Sue's quota for last quarter from the forecast (a bad amount is refused
    # on the field), and the forecast shows her attainment: 300 won of 1,200.
    page.go_back()
    page.get_by_test_id("set-quotas").click()
    form = page.get_by_test_id("quota-form")
    form.locator("#id_user").select_option(label="Sue")
    form.locator("#id_amount").fill("-5")
    form.get_by_role("button", name="Save quota").click()
    expect(page.locator(".field-error")).to_contain_text("greater than or equal to 0")
    form.locator("#id_amount").fill("1200")
    form.get_by_role("button", name="Save quota").click()
    expect(page.get_by_test_id("quota-table")).to_contain_text("1,200.00")
    page.get_by_role("link", name=f"Forecast for {last_quarter.label}").click()
    sue_row = page.get_by_test_id("forecast-row").filter(has_text="Sue")
    expect(sue_row).to_contain_text("25.0%")
