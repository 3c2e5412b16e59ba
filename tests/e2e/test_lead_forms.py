"""Browser test: a marketer builds a lead form; a visitor fills its hosted page, another fills
the embed snippet on a page of another origin (posting cross-origin); both become contacts with
a follow-up action item for the round-robin owner."""

import functools
import http.server
import threading

import pytest
from django.db import connection
from django_tenants.utils import schema_context
from playwright.sync_api import expect

from contacts.models import Contact, Task
from crm.embedded import free_port
from leads.models import FormSubmission
from tests.e2e.conftest import log_in

pytestmark = pytest.mark.e2e


@pytest.fixture
def customer_site(tmp_path):
    """The tenant's own website: static pages served from `tmp_path` on another port, so on
    another origin than the CRM."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield tmp_path, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_marketer_builds_a_form_and_visitors_fill_it_hosted_and_embedded(
    page, context, live_app, committed_tenant, add_user, customer_site, django_db_blocker
):
    tenant = committed_tenant("lead")
    marketer = add_user(tenant, "marketing")
    add_user(tenant, "sales")
    log_in(page, live_app, tenant.slug, marketer)

    page.goto(live_app.url_for(tenant.slug, "/campaigns/"))
    page.get_by_role("link", name="Lead forms").click()
    page.get_by_role("link", name="New form").click()
    page.get_by_label("Name", exact=True).fill("Spring webinar")
    asked = page.get_by_role("group", name="Fields to ask for")
    asked.get_by_label("First name").check()
    asked.get_by_label("Company").check()
    page.get_by_role("group", name="Required fields").get_by_label("First name").check()
    page.get_by_label("Interest checkboxes").fill("Analytics\nAI")
    page.get_by_label("Button text").fill("Register")
    page.get_by_role("group", name="Round-robin among").get_by_label("Sales Person").check()
    page.get_by_label("Fallback owner").select_option(label="Marketing Person")
    page.get_by_role("button", name="Save").click()

    expect(page.locator("h1")).to_have_text("Spring webinar")
    expect(page.get_by_test_id("assignment")).to_contain_text("Sales Person")
    hosted_url = page.get_by_test_id("hosted-url").get_attribute("href")
    snippet = page.get_by_test_id("embed-snippet").input_value()
    assert hosted_url.startswith(live_app.url_for(tenant.slug, "/f/"))

    # A visitor fills the hosted page (no login: a context of its own).
    visitor = context.browser.new_context()
    hosted = visitor.new_page()
    hosted.goto(hosted_url)
    hosted.get_by_label("E-mail").fill("vera@visitor.test")
    hosted.get_by_role("button", name="Register").click()
    expect(hosted.get_by_text("This field is required.")).to_be_visible()
    hosted.get_by_label("First name").fill("Vera")
    hosted.get_by_label("Company").fill("Initech")
    hosted.get_by_label("AI", exact=True).check()
    hosted.get_by_role("button", name="Register").click()
    expect(hosted.get_by_test_id("thanks")).to_have_text("Thank you! We will be in touch soon.")

    # Another visitor fills the embedded form on the tenant's own site (another origin).
    folder, site = customer_site
    (folder / "webinar.html").write_text(
        f"<!doctype html><html><head><title>Our webinar</title></head>"
        f"<body><h1>Join our webinar</h1>{snippet}</body></html>"
    )
    embedded = visitor.new_page()
    embedded.goto(f"{site}/webinar.html")
    # The script has drawn the form as it is set up now (its status line is the script's).
    expect(embedded.locator("form[data-crm-ready] .crm-form-status")).to_be_attached()
    embedded.get_by_label("E-mail").fill("walt@visitor.test")
    embedded.get_by_label("First name").fill("Walt")
    embedded.get_by_label("Analytics").check()
    embedded.get_by_role("button", name="Register").click()
    expect(embedded.get_by_role("status")).to_have_text("Thank you! We will be in touch soon.")
    assert embedded.url == f"{site}/webinar.html"
    visitor.close()

    # The marketer sees both on the form's page; the contact has its follow-up action item.
    page.reload()
    submissions = page.get_by_test_id("submissions")
    expect(submissions).to_contain_text("walt@visitor.test")
    expect(submissions).to_contain_text(site)
    submissions.get_by_role("link", name="Vera").click()
    expect(page.get_by_test_id("open-tasks")).to_contain_text(
        "Follow up: Vera filled the form Spring webinar"
    )
    expect(page.get_by_test_id("open-tasks")).to_contain_text("Sales Person")
    expect(page.get_by_text("Filled the form Spring webinar", exact=True)).to_be_visible()

    with django_db_blocker.unblock(), schema_context(tenant.schema_name):
        walt = Contact.objects.get(email="walt@visitor.test")
        assert (walt.first_name, walt.interests, walt.owner.full_name) == (
            "Walt",
            ["Analytics"],
            "Sales Person",
        )
        assert Task.objects.get(contact=walt).assignee == walt.owner
        assert Contact.objects.get(email="vera@visitor.test").account.name == "Initech"
        assert FormSubmission.objects.count() == 2
    connection.set_schema_to_public()
