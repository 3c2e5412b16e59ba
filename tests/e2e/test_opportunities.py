"""Browser flow: a manager sets up a product and a stage; a deal is created from its account's
page, gets the product as a line item, and is closed as won with a reason."""

import pytest
from django.db import connection
from django_tenants.utils import schema_context
from playwright.sync_api import expect

from contacts import services as contact_services
from crm.users.models import User
from tests.e2e.conftest import log_in

pytestmark = pytest.mark.e2e


def test_a_manager_sets_up_the_pipeline_and_a_deal_is_won_with_products(
    page, live_app, committed_tenant, django_db_blocker
):
    tenant = committed_tenant("deals")
    admin_email = f"admin@{tenant.slug}.test"
    with django_db_blocker.unblock(), schema_context(tenant.schema_name):
        admin = User.objects.get(email=admin_email)
        account = contact_services.account_create(actor=admin, name="Initech")
        contact_services.contact_create(actor=admin, first_name="Peter", account=account)
    connection.set_schema_to_public()
    log_in(page, live_app, tenant.slug, admin_email)

    # A product for the catalogue, from the board's set-up link.
    page.goto(live_app.url_for(tenant.slug, "/opportunities/board/"))
    page.get_by_role("link", name="Pipelines and products").click()
    page.get_by_role("link", name="Products").click()
    page.get_by_role("link", name="New product").click()
    page.fill("#id_name", "Widget")
    page.fill("#id_unit_price", "-5")
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".field-error")).to_contain_text("greater than or equal to 0")
    page.fill("#id_unit_price", "250")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("link", name="Widget")).to_be_visible()

    # Rename a stage of the Sales pipeline.
    page.goto(live_app.url_for(tenant.slug, "/opportunities/pipelines/"))
    page.get_by_role("link", name="Edit stages").click()
    page.locator("input[value='Needs analysis']").fill("Discovery")
    page.get_by_role("button", name="Save pipeline").click()
    expect(page.locator(".stages")).to_contain_text("Discovery")

    # A new contact at Initech, the account picked from the suggestions while typing.
    page.goto(live_app.url_for(tenant.slug, "/contacts/new/"))
    page.fill("#id_first_name", "Michael")
    page.locator("#id_account").press_sequentially("init")
    suggestion = page.locator("#id_account-options option")
    expect(suggestion).to_have_count(1)
    page.fill("#id_account", suggestion.get_attribute("value"))
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".sub")).to_contain_text("Initech")

    # A deal from the account page, with the product on it, then won.
    page.goto(live_app.url_for(tenant.slug, f"/accounts/{account.pk}/"))
    page.get_by_role("link", name="New opportunity").click()
    form = page.get_by_test_id("opportunity-form")
    form.locator("#id_name").fill("Initech widgets")
    form.locator("#id_primary_contact").select_option(label="Peter")
    form.locator("#id_stage").select_option(label="Sales: Discovery (25%)")
    form.locator("#id_amount").fill("1")
    form.get_by_role("button", name="Save").click()
    expect(page.locator("h1")).to_have_text("Initech widgets")

    items = page.get_by_test_id("add-line-item")
    items.locator("#id_product").select_option(label="Widget")
    items.locator("#id_quantity").fill("4")
    items.locator("#id_discount_percent").fill("25")
    items.get_by_role("button", name="Add").click()
    expect(page.get_by_test_id("amount")).to_have_text("750.00 USD")

    close = page.get_by_test_id("close")
    close.locator("#id_outcome").select_option("won")
    close.locator("#id_reason").fill("Best price & support")
    close.get_by_role("button", name="Close the deal").click()
    expect(page.get_by_test_id("closed")).to_contain_text("Best price & support")
    expect(page.get_by_test_id("stage-history")).to_contain_text("Discovery → Closed won")
