"""Browser test: on a server set up as `make run` sets it up (mail to the local catcher), a
marketer sends a test e-mail and reads it on the Caught mail page; another tenant's marketer
does not see it."""

import pytest
from aiosmtpd.controller import Controller
from django.db import connection
from django_tenants.utils import schema_context
from playwright.sync_api import expect

from campaigns.templating import email_template_create
from crm.embedded import free_port
from crm.mailcatcher import MaildirHandler
from crm.users.models import User
from tests.e2e.conftest import app_server, log_in

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def catcher_app(django_db_setup, tmp_path_factory):
    """A gunicorn whose mail goes to the catcher (a Maildir), with CRM_MAILCATCHER_DIR set as
    crm.run sets it."""
    folder = str(tmp_path_factory.mktemp("catcher") / "mail")
    catcher = Controller(MaildirHandler(folder), hostname="127.0.0.1", port=free_port())
    catcher.start()
    try:
        with app_server(
            EMAIL_URL=f"smtp://127.0.0.1:{catcher.port}", CRM_MAILCATCHER_DIR=folder
        ) as app:
            yield app
    finally:
        catcher.stop()


@pytest.fixture
def marketers(committed_tenant, add_user, django_db_blocker):
    """Two tenants with a marketer each; the first has an e-mail template."""
    made = []
    for prefix in ("mail", "other"):
        tenant = committed_tenant(prefix)
        made.append((tenant, add_user(tenant, "marketing")))
    tenant, email = made[0]
    with django_db_blocker.unblock(), schema_context(tenant.schema_name):
        template = email_template_create(
            actor=User.objects.get(email=email),
            name="Welcome",
            subject="Welcome aboard",
            html_body='<h1 class="title">Hello {{ contact.first_name }}</h1>',
            text_body="Hello {{ contact.first_name }}, in plain text.",
        )
    connection.set_schema_to_public()
    return made, template


def test_a_marketer_sends_a_test_and_reads_it_in_the_browser(
    page, context, browser, catcher_app, marketers
):
    (tenant, email), (other, other_email) = marketers[0]
    template = marketers[1]
    log_in(page, catcher_app, tenant.slug, email)
    page.goto(catcher_app.url_for(tenant.slug, f"/campaigns/templates/{template.pk}/preview/"))
    page.get_by_role("button", name=f"Send a test to {email}").click()
    expect(page.get_by_text(f"Test sent to {email}.")).to_be_visible()

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Caught mail").click()
    mail = page.get_by_test_id("caught-mail")
    expect(mail).to_contain_text(email)
    mail.get_by_role("link", name="Welcome aboard").click()

    expect(page.get_by_role("heading", name="Welcome aboard")).to_be_visible()
    expect(page.get_by_test_id("caught-to")).to_contain_text(email)
    frame = page.frame_locator("[data-testid=caught-html]")
    expect(frame.locator("h1.title")).to_have_text("Hello Jane")
    expect(page.get_by_test_id("caught-text")).to_contain_text("Hello Jane, in plain text.")

    # The other tenant's marketer sees none of it.
    elsewhere = browser.new_context()
    try:
        other_page = elsewhere.new_page()
        log_in(other_page, catcher_app, other.slug, other_email)
        other_page.goto(catcher_app.url_for(other.slug, "/mail/"))
        expect(other_page.get_by_test_id("caught-mail")).to_contain_text("No mail caught yet.")
    finally:
        elsewhere.close()
