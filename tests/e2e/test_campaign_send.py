"""Browser test: a marketer sends an e-mail campaign to a segment and watches it finish."""

import pytest
from django.db import connection
from django_tenants.utils import schema_context
from playwright.sync_api import expect

from campaigns.segments import segment_create
from campaigns.services import campaign_create
from campaigns.templating import email_template_create
from contacts.services import contact_create
from crm.users.models import User
from tests.e2e.conftest import log_in

pytestmark = pytest.mark.e2e


@pytest.fixture
def launch(committed_tenant, add_user, django_db_blocker):
    """A tenant with a marketer, three evaluating contacts (one unsubscribed), a template, a
    segment and an e-mail campaign not sent yet."""
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
        email_template_create(
            actor=marketer,
            name="Launch mail",
            subject="Hello {{ contact.first_name }}",
            html_body="<html><body><p>Hi {{ contact.first_name }}!</p></body></html>",
        )
        segment_create(
            actor=marketer,
            name="Evaluating",
            rules={
                "op": "and",
                "rules": [{"field": "lifecycle_stage", "operator": "eq", "value": "evaluation"}],
            },
        )
        campaign = campaign_create(actor=marketer, name="Spring launch", kind="email")
    connection.set_schema_to_public()
    return tenant, email, campaign


def test_a_marketer_sends_a_campaign_and_watches_the_progress(
    page, live_app, launch, celery_worker, mailbox
):
    tenant, email, campaign = launch
    log_in(page, live_app, tenant.slug, email)

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
    mailbox.wait_for(f"ann@{tenant.slug}.example")
    mailbox.wait_for(f"bob@{tenant.slug}.example")
    assert not mailbox.to(f"cid@{tenant.slug}.example")
