"""Browser test, the whole marketing flow: a marketer builds a segment, writes a template, sends
a campaign to it and watches it finish; a recipient opens the message and follows its link; the
marketer sees the open and the click on that contact's 360 page."""

import re

import pytest
from django.db import connection
from django_tenants.utils import schema_context
from playwright.sync_api import expect

from campaigns.services import campaign_create
from contacts.services import contact_create
from crm.users.models import User
from tests.e2e.conftest import log_in

pytestmark = pytest.mark.e2e


@pytest.fixture
def launch(committed_tenant, add_user, django_db_blocker):
    """A tenant with a marketer, three evaluating contacts (one unsubscribed) and an e-mail
    campaign not sent yet."""
    from campaigns.models import Suppression

    tenant = committed_tenant("send")
    email = add_user(tenant, "marketing")
    with django_db_blocker.unblock(), schema_context(tenant.schema_name):
        marketer = User.objects.get(email=email)
        for name in ("Ann", "Bob", "Cid"):
            contact_create(
                actor=marketer,
                first_name=name,
                email=f"{name.lower()}@{tenant.slug}.example",
                lifecycle_stage="evaluation",
            )
        Suppression.objects.create(email=f"cid@{tenant.slug}.example", reason="unsubscribed")
        campaign = campaign_create(actor=marketer, name="Spring launch", kind="email")
    connection.set_schema_to_public()
    return tenant, email, campaign


def _path(url: str) -> str:
    return "/" + url.split("/", 3)[3]


def test_a_marketer_builds_a_segment_writes_a_template_sends_and_sees_the_open_and_click(
    page, live_app, launch, celery_worker, mailbox
):
    tenant, email, campaign = launch
    # The link leads back to the live app: the browser cannot reach another site.
    offer = live_app.url_for(tenant.slug, "/login/?from=offer")
    log_in(page, live_app, tenant.slug, email)

    page.goto(live_app.url_for(tenant.slug, "/campaigns/segments/new/"))
    page.get_by_label("Name").fill("Evaluating")
    page.get_by_role("button", name="Add condition", exact=True).click()
    rule = page.get_by_test_id("rule-row").nth(0)
    rule.get_by_label("Field").select_option("lifecycle_stage")
    rule.get_by_label("Operator").select_option("eq")
    rule.get_by_label("Value").select_option("evaluation")
    expect(page.get_by_test_id("segment-preview").get_by_test_id("segment-count")).to_have_text("3")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("h1")).to_have_text("Evaluating")

    page.goto(live_app.url_for(tenant.slug, "/campaigns/templates/new/"))
    form = page.get_by_test_id("email-template-form")
    form.get_by_label("Name").fill("Launch mail")
    form.get_by_label("Subject").fill("Hello {{ contact.first_name }}")
    form.get_by_label("HTML body").fill(
        f'<html><body><p>Hi {{{{ contact.first_name }}}}!</p><a href="{offer}">See the offer</a>'
        "</body></html>"
    )
    form.get_by_role("button", name="Save").click()
    expect(page.get_by_test_id("preview-subject")).to_be_visible()

    page.goto(live_app.url_for(tenant.slug, f"/campaigns/{campaign.pk}/"))
    page.get_by_test_id("send-link").click()
    form = page.get_by_test_id("send-form")
    expect(page.get_by_test_id("audience")).to_contain_text("0 recipients")
    form.get_by_label("Template").select_option(label="Launch mail")
    form.get_by_label("Evaluating").check()
    expect(page.get_by_test_id("audience")).to_contain_text("2 recipients")
    form.get_by_role("button", name="Send").click()

    expect(page.get_by_test_id("send-state")).to_have_text("Sent", timeout=30_000)
    expect(page.get_by_test_id("send-counts")).to_contain_text("Sent2")
    message = mailbox.wait_for(f"ann@{tenant.slug}.example")
    mailbox.wait_for(f"bob@{tenant.slug}.example")
    assert not mailbox.to(f"cid@{tenant.slug}.example")
    assert message["Subject"] == "Hello Ann"

    # Ann opens the message (its pixel loads) and follows the link.
    html = message.get_payload(1).get_payload(decode=True).decode()
    pixel = re.search(r'<img src="([^"]+/o/[^"]+)"', html).group(1)
    click = re.search(r'href="([^"]+/c/[^"]+)"', html).group(1)
    visitor = page.context.browser.new_page()
    visitor.goto(live_app.url_for(tenant.slug, _path(pixel)))
    visitor.goto(live_app.url_for(tenant.slug, _path(click)))
    expect(visitor).to_have_url(offer)
    visitor.close()

    page.goto(live_app.url_for(tenant.slug, "/contacts/?q=Ann"))
    page.get_by_role("link", name=re.compile("Ann")).first.click()
    timeline = page.get_by_test_id("timeline")
    expect(timeline).to_contain_text("Opened the e-mail")
    expect(timeline).to_contain_text("Clicked a link in the e-mail")
