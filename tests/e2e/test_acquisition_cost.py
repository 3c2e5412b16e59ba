"""Browser flow: a marketer reads what a trade fair's customer cost, enters the fair's cost by
month from its actual cost (a bad amount is refused on its field), tags a month with the
territory it was spent on, and slices acquisition cost by territory."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone
from django_tenants.utils import schema_context
from playwright.sync_api import expect

from campaigns.models import Campaign
from campaigns.services import campaign_create
from contacts.models import Contact
from contacts.services import account_create, contact_create
from crm.users.models import User
from opportunities.models import Opportunity, Stage
from opportunities.services import opportunity_create
from reports.attribution import marketing_rollup_refresh
from tests.e2e.conftest import log_in

pytestmark = pytest.mark.e2e


def test_a_marketer_enters_a_campaigns_cost_and_slices_acquisition_cost(
    page, live_app, committed_tenant, add_user, django_db_blocker
):
    tenant = committed_tenant("cac")
    today = timezone.localdate()
    now = timezone.now()
    with django_db_blocker.unblock(), schema_context(tenant.schema_name):
        admin = User.objects.get(email=f"admin@{tenant.slug}.test")
        campaign_create(
            actor=admin,
            name="Trade fair",
            kind=Campaign.Kind.EVENT,
            starts_on=today - timedelta(days=75),
            ends_on=today - timedelta(days=20),
            actual_cost=Decimal(900),
        )
        acme = account_create(actor=admin, name="Acme", territory="North")
        visitor = contact_create(actor=admin, first_name="Vera", account=acme, source="Trade fair")
        Contact.objects.filter(pk=visitor.pk).update(created_at=now - timedelta(days=60))
        deal = opportunity_create(
            actor=admin,
            name="Acme order",
            account=acme,
            primary_contact=visitor,
            stage=Stage.objects.get(name="Closed won"),
            amount=Decimal(4000),
        )
        Opportunity.objects.filter(pk=deal.pk).update(
            created_at=now - timedelta(days=30), closed_at=now - timedelta(days=10)
        )
        marketing_rollup_refresh()
    connection.set_schema_to_public()
    log_in(page, live_app, tenant.slug, add_user(tenant, "marketing"))

    # Without cost entries, the fair counts its actual cost: 900 for its one customer.
    page.get_by_role("link", name="Reports").click()
    page.get_by_role("link", name="Acquisition cost").click()
    row = page.get_by_test_id("cost-row").filter(has_text="Event / trade show")
    expect(row).to_contain_text("900.00")
    expect(page.get_by_test_id("report-freshness")).to_contain_text("Figures as of")

    # Enter the fair's cost from its actual cost, split by month.
    page.get_by_test_id("cost-entries-link").click()
    page.get_by_test_id("cost-campaign").filter(has_text="Trade fair").get_by_role(
        "link", name="Enter cost"
    ).click()
    page.get_by_test_id("cost-split").click()
    expect(page.get_by_test_id("cost-split-shown")).to_contain_text("900.00")
    first = page.get_by_test_id("cost-entry-row").first
    split_amount = first.locator("input[name$='-amount']").input_value()
    first.locator("input[name$='-amount']").fill("-1")
    page.get_by_role("button", name="Save cost entries").click()
    expect(page.locator(".field-error")).to_contain_text("greater than or equal to 0")
    first = page.get_by_test_id("cost-entry-row").first
    first.locator("input[name$='-amount']").fill(split_amount)
    first.locator("input[name$='-territory']").fill("North")
    page.get_by_role("button", name="Save cost entries").click()
    expect(page.get_by_test_id("cost-campaign").filter(has_text="Trade fair")).to_contain_text(
        "Edit entries"
    )

    # Sliced by territory: the North month against Acme, the rest untagged; 900 in all.
    page.get_by_role("link", name="Acquisition cost").click()
    page.uncheck("input[name=dimensions][value=tool]")
    page.check("input[name=dimensions][value=territory]")
    page.get_by_role("button", name="Show").click()
    north = page.get_by_test_id("cost-row").filter(has_text="North")
    expect(north).to_contain_text(f"{Decimal(split_amount):,.2f}")
    expect(north.locator("td").nth(2)).to_have_text("1")
    expect(page.get_by_test_id("cost-total")).to_contain_text("900.00")
