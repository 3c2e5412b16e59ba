"""Browser test: a recipient opens a campaign e-mail and follows its link; the marketer sees the
open and the click on the campaign's page and the contact's timeline."""

import re

import pytest
from django.db import connection
from django_tenants.utils import schema_context
from playwright.sync_api import expect

from campaigns import sending
from campaigns.models import Campaign
from campaigns.services import campaign_create, campaign_members_add
from campaigns.templating import email_template_create
from contacts.models import Contact
from contacts.services import contact_create
from crm.users.models import User
from tests.e2e.conftest import log_in

pytestmark = pytest.mark.e2e


@pytest.fixture
def sent(committed_tenant, add_user, django_db_blocker, mailbox, live_app):
    """A tenant with a marketer and a campaign e-mail sent to Ann; returns the tenant, the
    marketer's e-mail, the campaign, Ann and the HTML body she received."""
    tenant = committed_tenant("engage")
    email = add_user(tenant, "marketing")
    address = f"ann@{tenant.slug}.example"
    # The link leads back to the live app: the browser cannot reach another site.
    offer = live_app.url_for(tenant.slug, "/login/?from=offer")
    with django_db_blocker.unblock(), schema_context(tenant.schema_name):
        marketer = User.objects.get(email=email)
        ann = contact_create(actor=marketer, first_name="Ann", email=address)
        template = email_template_create(
            actor=marketer,
            name="Offer",
            subject="Our offer",
            html_body=f'<html><body><p>Hi!</p><a href="{offer}">See the offer</a></body></html>',
        )
        campaign = campaign_create(
            actor=marketer, name="Offer", kind="email", email_template=template
        )
        # Sent here rather than through the worker: this test is about what happens after.
        contacts = Contact.objects.filter(pk=ann.pk)
        sending.audience_freeze(campaign=campaign, contacts=contacts)
        campaign_members_add(actor=marketer, campaign=campaign, contacts=contacts)
        Campaign.objects.filter(pk=campaign.pk).update(send_state=Campaign.SendState.SENDING)
        for first, last in sending.dispatch_ranges(campaign_id=campaign.pk):
            sending.chunk_send(campaign_id=campaign.pk, first_id=first, last_id=last)
    connection.set_schema_to_public()
    html = mailbox.wait_for(address).get_payload(1).get_payload(decode=True).decode()
    return tenant, email, campaign, ann, html, offer


def _path(url: str) -> str:
    return "/" + url.split("/", 3)[3]


def test_an_open_and_a_click_show_on_the_campaign_and_the_timeline(page, live_app, sent):
    tenant, email, campaign, ann, html, offer = sent
    click = re.search(r'href="([^"]+/c/[^"]+)"', html).group(1)
    pixel = re.search(r'<img src="([^"]+)"', html).group(1)

    page.goto(live_app.url_for(tenant.slug, _path(pixel)))
    page.goto(live_app.url_for(tenant.slug, _path(click)))
    expect(page).to_have_url(offer)

    # A changed link shows the error page and goes nowhere.
    page.goto(live_app.url_for(tenant.slug, _path(click).replace("/c/", "/c/x")))
    expect(page.locator("h1")).to_have_text("This link is not valid")

    log_in(page, live_app, tenant.slug, email)
    page.goto(live_app.url_for(tenant.slug, f"/campaigns/{campaign.pk}/"))
    counts = page.get_by_test_id("engagement-counts")
    expect(counts).to_contain_text("Sent1")
    expect(counts).to_contain_text("Opened1")
    expect(counts).to_contain_text("Clicked1")
    expect(page.get_by_test_id("link-clicks")).to_contain_text(f"{offer}1")
    page.goto(live_app.url_for(tenant.slug, f"/contacts/{ann.pk}/"))
    expect(page.get_by_test_id("timeline")).to_contain_text("Clicked a link in the e-mail")
    expect(page.get_by_test_id("timeline")).to_contain_text("Opened the e-mail")
