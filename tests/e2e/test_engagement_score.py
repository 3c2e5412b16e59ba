"""Browser test: the admin tunes scoring (a bad value gets a field error first); a stranger
browses the tenant's website with the tracking snippet, looks at pricing, and fills a lead form;
the contact crosses the threshold, so the owner finds them on the ready-to-talk list with an
e-mail saying why, and their 360-degree page shows the earlier page views, the score with its
sparkline and reasons, and the stage history."""

import pytest
from django.db import connection
from django.urls import reverse
from django_tenants.utils import schema_context
from playwright.sync_api import expect

from contacts.models import Contact
from crm.users.models import User
from leads.services import lead_form_create
from tests.conftest import PASSWORD
from tests.e2e.conftest import SNIPPET_PAGE, accepted_events, eventually, ingest_counters, log_in
from tracking.models import Visitor
from tracking.selectors import tracking_settings
from tracking.tasks import tracking_drains_dispatch

pytestmark = pytest.mark.e2e


def test_a_prospect_who_reads_pricing_and_fills_a_form_is_ready_to_talk(
    committed_tenant, live_app, celery_worker, smtp_server, django_db_blocker, website, browser
):
    _, mailbox = smtp_server
    tenant = committed_tenant("score")
    crm = live_app.url_for(tenant.slug, "").rstrip("/")
    folder, site = website
    with django_db_blocker.unblock(), schema_context(tenant.schema_name):
        admin = User.objects.get()
        settings = tracking_settings()
        settings.site_origins = [site]
        settings.save()
        form = lead_form_create(actor=admin, name="Demo request", fallback_owner=admin)
        api_url = crm + reverse("leads:form_api", args=[form.key])
    connection.set_schema_to_public()
    (folder / "index.html").write_text(
        SNIPPET_PAGE.format(title="Home", crm=crm, body='<a href="/pricing.html">Pricing</a>')
    )
    (folder / "pricing.html").write_text(
        SNIPPET_PAGE.format(
            title="Pricing", crm=crm, body='<a href="/demo.html">Ask for a demo</a>'
        )
    )
    (folder / "demo.html").write_text(
        SNIPPET_PAGE.format(
            title="Demo",
            crm=crm,
            body=f'<form data-crm-form="{api_url}" method="post"></form>'
            f'<script src="{crm}/static/leads/embed.js" async></script>',
        )
    )

    # The admin sets the threshold: a zero half-life first gets a field error, then it saves.
    page = browser.new_page()
    log_in(page, live_app, tenant.slug, admin.email, PASSWORD)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Scoring").click()
    page.fill("#id_threshold", "15")
    page.fill("#id_half_life_days", "0")
    page.click("[data-testid=scoring-settings] button[type=submit]")
    expect(page.locator(".field.has-error")).to_contain_text("greater than or equal to 0.1")
    page.fill("#id_half_life_days", "14")
    page.fill("#id_weight_pricing_view", "6")
    page.fill("#id_weight_form", "10")
    page.click("[data-testid=scoring-settings] button[type=submit]")
    expect(page.get_by_text("Saved")).to_be_visible()

    # A stranger browses the website anonymously: home, pricing, the demo page.
    visitor_context = browser.new_context()
    visit = visitor_context.new_page()
    visit.goto(site + "/index.html")
    visit.click("text=Pricing")
    expect(visit.locator("h1")).to_have_text("Pricing")
    # The snippet loads async, and the load event waits for it: a click before then could
    # leave the page before the snippet has seen it, if the CRM serves the script slowly.
    visit.wait_for_load_state("load")
    visit.click("text=Ask for a demo")
    assert eventually(lambda: accepted_events(tenant) >= 3), ingest_counters(tenant)
    with django_db_blocker.unblock():
        assert tracking_drains_dispatch.delay().get(timeout=30) >= 1
    vid = {c["name"]: c["value"] for c in visitor_context.cookies(site)}["crm_vid"]
    with django_db_blocker.unblock(), schema_context(tenant.schema_name):
        assert eventually(lambda: Visitor.objects.filter(pk=vid).exists())
    connection.set_schema_to_public()

    # Then fills the lead form: two page views (1 each) + pricing (6) + form (10) = 18 > 15.
    visit.fill("input[name=email]", "dana@example.test")
    visit.click("form[data-crm-form] button[type=submit]")
    expect(visit.get_by_role("status")).to_be_visible()
    visitor_context.close()
    with django_db_blocker.unblock(), schema_context(tenant.schema_name):
        dana = Contact.objects.get(email="dana@example.test")
    connection.set_schema_to_public()

    # The owner is told, with the reasons.
    mail = mailbox.wait_for(admin.email)
    assert "Ready to talk" in mail["Subject"]
    assert "Viewed /pricing.html" in mail.get_payload()

    # Dana is on the ready-to-talk list; her page shows score, reasons, views and stages.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Ready to talk").click()
    row = page.get_by_test_id("ready-row").filter(has_text="dana")
    expect(row.get_by_test_id("ready-score")).to_have_text("18")
    row.get_by_role("link").click()
    expect(page).to_have_url(live_app.url_for(tenant.slug, f"/contacts/{dana.pk}/"))
    engagement = page.get_by_test_id("engagement")
    expect(engagement.get_by_test_id("score-now")).to_have_text("18")
    expect(engagement.get_by_test_id("sales-ready")).to_contain_text("Yes")
    expect(engagement.get_by_test_id("sparkline")).to_be_visible()
    expect(engagement.get_by_test_id("score-reasons")).to_contain_text("Viewed /pricing.html")
    expect(engagement.get_by_test_id("score-reasons")).to_contain_text("Filled form 'Demo request'")
    expect(engagement.get_by_test_id("viewed")).to_contain_text("Pricing")
    expect(engagement.get_by_test_id("stage-history")).to_contain_text("Evaluation")
    expect(page.get_by_test_id("timeline").locator("[data-kind=page_view]")).to_contain_text(
        "Viewed 3 pages in one visit"
    )
    page.close()
