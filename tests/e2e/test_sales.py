from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone
from django_tenants.utils import schema_context
from playwright.sync_api import expect

from contacts import services as contact_services
from crm.demo import pipeline_ensure
from crm.users.models import User
from opportunities import services as opportunity_services
from tests.e2e.conftest import log_in
from tracking.models import TimelineEntry

pytestmark = pytest.mark.e2e


@pytest.fixture
def book(committed_tenant, add_user, django_db_blocker):
    """A tenant with a salesperson who owns Initech, Peter Gibbons and Michael Bolton there, and
    a deal."""
    tenant = committed_tenant("sales")
    email = add_user(tenant, "sales")
    with django_db_blocker.unblock(), schema_context(tenant.schema_name):
        sales = User.objects.get(email=email)
        account = contact_services.account_create(actor=sales, name="Initech")
        contact_services.contact_create(
            actor=sales,
            first_name="Peter",
            last_name="Gibbons",
            email="peter@initech.test",
            account=account,
        )
        contact_services.contact_create(
            actor=sales, first_name="Michael", last_name="Bolton", account=account
        )
        stage = pipeline_ensure().stages.get(name="Qualification")
        deal = opportunity_services.opportunity_create(
            actor=sales,
            name="Initech renewal",
            account=account,
            stage=stage,
            primary_contact=account.contacts.get(first_name="Peter"),
            amount=Decimal("12000"),
        )
    connection.set_schema_to_public()
    return tenant, email, deal


def test_a_salesperson_finds_a_contact_logs_a_call_adds_a_task_and_moves_the_deal(
    page, live_app, book
):
    tenant, email, deal = book
    log_in(page, live_app, tenant.slug, email)

    # Find the contact from the search box (with a typo in the name).
    page.get_by_role("searchbox", name="Search").fill("Gibons")
    page.get_by_test_id("search-results").get_by_role("link", name="Peter Gibbons").click()
    expect(page.locator("h1")).to_have_text("Peter Gibbons")

    # Log a call.
    log = page.get_by_test_id("log-activity")
    log.locator("#id_kind").select_option("call")
    log.locator("#id_subject").fill("Talked about the renewal")
    log.locator("#id_outcome").fill("Wants a quote")
    log.get_by_role("button", name="Log").click()
    expect(page.get_by_test_id("timeline")).to_contain_text(
        "Call: Talked about the renewal (Wants a quote)"
    )

    # Add a task.
    task = page.get_by_test_id("add-task")
    task.locator("#id_title").fill("Send the quote")
    task.locator("#id_due_on").fill("2026-12-01")
    task.get_by_role("button", name="Add task").click()
    expect(page.get_by_test_id("open-tasks")).to_contain_text("Send the quote")

    # Drag the deal to the next stage on the pipeline board.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Pipeline").click()
    card = page.get_by_test_id(f"deal-{deal.pk}")
    expect(page.get_by_test_id("column-qualification")).to_contain_text("Initech renewal")
    card.drag_to(page.get_by_test_id("column-needs-analysis"))
    expect(page.get_by_test_id("column-needs-analysis")).to_contain_text("Initech renewal")
    expect(page.get_by_test_id("column-needs-analysis").get_by_test_id("weighted")).to_have_text(
        "3,000"
    )

    # Everything is on the 360-degree page, newest first.
    page.get_by_role("searchbox", name="Search").fill("peter@initech")
    page.get_by_test_id("search-results").get_by_role("link", name="Peter Gibbons").click()
    entries = page.get_by_test_id("timeline").locator("li .entry-summary")
    expect(entries.nth(0)).to_have_text(
        "Initech renewal moved from Qualification to Needs analysis"
    )
    expect(entries.nth(1)).to_contain_text("Send the quote")
    expect(entries.nth(2)).to_have_text("Call: Talked about the renewal (Wants a quote)")

    page.get_by_role("link", name="Call", exact=True).click()
    expect(entries).to_have_count(1)

    # An appointment with Michael too, picked from the suggestions while typing.
    booking = page.get_by_test_id("book-appointment")
    booking.locator("#id_title").fill("Renewal meeting")
    booking.locator("#id_starts_at").fill("2027-01-12T10:00")
    booking.locator("#id_ends_at").fill("2027-01-12T11:00")
    booking.locator("#id_contacts_0").press_sequentially("bolt")
    suggestion = booking.locator("#id_contacts_0-options option")
    expect(suggestion).to_have_count(1)
    booking.locator("#id_contacts_0").fill(suggestion.get_attribute("value"))
    booking.get_by_role("button", name="Book").click()
    expect(page.get_by_test_id("appointments")).to_contain_text("Renewal meeting")
    expect(page.get_by_test_id("attendees")).to_contain_text("Michael Bolton")

    # A meeting logged on the deal's page, a task added on the account's page.
    page.goto(live_app.url_for(tenant.slug, f"/opportunities/{deal.pk}/"))
    log = page.get_by_test_id("log-activity")
    log.locator("#activity_kind").select_option("meeting")
    log.locator("#activity_subject").fill("Pricing workshop")
    log.get_by_role("button", name="Log").click()
    expect(page.get_by_test_id("activities")).to_contain_text("Meeting: Pricing workshop")
    page.locator(".sub").get_by_role("link", name="Initech").click()
    task = page.get_by_test_id("add-task")
    task.locator("#id_title").fill("Renewal paperwork")
    task.get_by_role("button", name="Add task").click()
    expect(page.get_by_test_id("open-tasks")).to_contain_text("Renewal paperwork")
    expect(page.get_by_test_id("timeline")).to_contain_text("Meeting: Pricing workshop")


def test_a_salesperson_pages_back_through_a_long_timeline(page, live_app, book, django_db_blocker):
    tenant, email, deal = book
    with django_db_blocker.unblock(), schema_context(tenant.schema_name):
        peter = deal.primary_contact
        now = timezone.now()
        TimelineEntry.objects.bulk_create(
            TimelineEntry(
                contact=peter,
                account=peter.account,
                kind="note",
                occurred_at=now - timedelta(days=n),
                summary=f"Note {n}",
            )
            for n in range(1, 61)
        )
    connection.set_schema_to_public()
    log_in(page, live_app, tenant.slug, email)
    page.goto(live_app.url_for(tenant.slug, f"/contacts/{deal.primary_contact_id}/"))

    page.get_by_role("link", name="Note", exact=True).click()
    entries = page.get_by_test_id("timeline").locator("li .entry-summary")
    expect(entries).to_have_count(50)
    expect(entries.nth(0)).to_have_text("Note 1")
    page.get_by_test_id("older").click()
    expect(entries).to_have_count(10)
    expect(entries.nth(9)).to_have_text("Note 60")
    expect(page.get_by_test_id("older")).to_have_count(0)
    page.get_by_test_id("newest").click()
    expect(entries.nth(0)).to_have_text("Note 1")
