import re

import pytest
from django.db import connection
from django_tenants.utils import schema_context
from playwright.sync_api import expect

from contacts import services as contact_services
from crm.users.models import User
from tests.e2e.conftest import log_in

pytestmark = pytest.mark.e2e

HTML = """<style>.hello { color: #123456; }</style>
<p class="hello">Hi {{ contact.first_name|default("there") }},</p>
{% if "analytics" in contact.interests %}<p>Join our analytics webinar.</p>{% endif %}"""


@pytest.fixture
def marketing(committed_tenant, add_user, django_db_blocker):
    """A tenant with a marketer and a contact interested in analytics, with HTML in a name."""
    tenant = committed_tenant("mkt")
    email = add_user(tenant, "marketing")
    with django_db_blocker.unblock(), schema_context(tenant.schema_name):
        contact_services.contact_create(
            actor=User.objects.get(email=email),
            first_name="<b>Peter</b>",
            last_name="Gibbons",
            email="peter@initech.test",
            interests=["analytics"],
        )
    connection.set_schema_to_public()
    return tenant, email


def test_a_marketer_writes_a_template_previews_it_as_a_contact_and_sends_a_test(
    page, live_app, marketing, smtp_server
):
    tenant, email = marketing
    _controller, mailbox = smtp_server
    log_in(page, live_app, tenant.slug, email)

    page.goto(live_app.url_for(tenant.slug, "/campaigns/templates/new/"))
    form = page.get_by_test_id("email-template-form")
    form.get_by_label("Name").fill("Webinar invite")
    form.get_by_label("Subject").fill("Hi {{ contact.first_name|default('there') }}")
    # A syntax error first: the editor names the line and keeps what was typed.
    form.get_by_label("HTML body").fill(HTML + "\n{% if contact.email %}")
    form.get_by_role("button", name="Save").click()
    expect(page.get_by_text(re.compile(r"syntax error \(line 4\)"))).to_be_visible()
    page.get_by_label("HTML body").fill(HTML)
    page.get_by_role("button", name="Save").click()

    # Preview as a sample contact first (no interests), then pick Peter.
    expect(page.get_by_test_id("preview-subject")).to_have_text("Hi Jane")
    page.get_by_label("Preview as").fill("gibbons")
    page.get_by_role("button", name="Find").click()
    page.get_by_test_id("preview-matches").get_by_role("link", name="Gibbons").click()
    expect(page.get_by_test_id("preview-subject")).to_have_text("Hi <b>Peter</b>")
    frame = page.frame_locator("[data-testid=preview-html]")
    expect(frame.locator("p.hello")).to_have_text("Hi <b>Peter</b>,")
    expect(frame.locator("p.hello")).to_have_attribute("style", re.compile("color: #123456"))
    expect(frame.get_by_text("Join our analytics webinar.")).to_be_visible()
    expect(page.get_by_test_id("preview-text")).to_contain_text("Unsubscribe: http")

    page.get_by_role("button", name=f"Send a test to {email}").click()
    expect(page.get_by_text(f"Test sent to {email}.")).to_be_visible()
    message = mailbox.wait_for(email)
    assert message["Subject"] == "Hi <b>Peter</b>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
