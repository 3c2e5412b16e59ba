"""Browser test: a visitor browses the tenant's own website (another origin, with the tracking
snippet) anonymously, then fills a lead form embedded there; the contact's 360-degree page then
shows the page views from before the form, the score they made and the stage."""

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
from tracking import buffer
from tracking.models import Visitor
from tracking.tasks import tracking_drains_dispatch

pytestmark = pytest.mark.e2e


def test_page_views_before_a_lead_form_show_on_the_contacts_page(
    committed_tenant, live_app, celery_worker, django_db_blocker, website, browser
):
    tenant = committed_tenant("track")
    crm = live_app.url_for(tenant.slug, "").rstrip("/")
    folder, site = website
    with django_db_blocker.unblock(), schema_context(tenant.schema_name):
        admin = User.objects.get()
        lead_form = lead_form_create(actor=admin, name="Demo request", fallback_owner=admin)
        api_url = crm + reverse("leads:form_api", args=[lead_form.key])
    connection.set_schema_to_public()
    (folder / "index.html").write_text(
        SNIPPET_PAGE.format(title="Home", crm=crm, body='<a href="/pricing.html">Pricing</a>')
    )
    (folder / "pricing.html").write_text(
        SNIPPET_PAGE.format(
            title="Pricing",
            crm=crm,
            body='<p data-crm-product-sku="PRO-1" data-crm-product-name="Pro plan">Pro</p>'
            '<a href="/demo.html">Ask for a demo</a>',
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

    # The admin registers the website on the tracking page.
    admin_page = browser.new_page()
    log_in(admin_page, live_app, tenant.slug, admin.email, PASSWORD)
    admin_page.goto(live_app.url_for(tenant.slug, "/tracking/"))
    admin_page.fill("#id_site_origins", site)
    admin_page.click("[data-testid=site-origins] button[type=submit]")
    expect(admin_page.get_by_text("Saved")).to_be_visible()

    # A stranger browses the website: home, then pricing (a page view and a product view).
    visitor_context = browser.new_context()
    visit = visitor_context.new_page()
    visit.goto(site + "/index.html")
    visit.click("text=Pricing")
    expect(visit.locator("h1")).to_have_text("Pricing")
    # The snippet loads async, and the load event waits for it: a click before then could
    # leave the page before the snippet has seen it, if the CRM serves the script slowly.
    visit.wait_for_load_state("load")
    visit.click("text=Ask for a demo")
    assert eventually(lambda: accepted_events(tenant) >= 4), ingest_counters(tenant)
    with django_db_blocker.unblock():
        assert tracking_drains_dispatch.delay().get(timeout=30) >= 1
    cookies = {c["name"]: c["value"] for c in visitor_context.cookies(site)}
    with django_db_blocker.unblock(), schema_context(tenant.schema_name):
        assert eventually(lambda: Visitor.objects.filter(pk=cookies["crm_vid"]).exists())
        assert Visitor.objects.get(pk=cookies["crm_vid"]).contact is None
    connection.set_schema_to_public()

    # Then fills the lead form embedded on the demo page.
    visit.fill("input[name=email]", "dana@example.test")
    visit.click("form[data-crm-form] button[type=submit]")
    expect(visit.get_by_role("status")).to_be_visible()
    with django_db_blocker.unblock(), schema_context(tenant.schema_name):
        dana = Contact.objects.get(email="dana@example.test")
        assert Visitor.objects.get(pk=cookies["crm_vid"]).contact == dana
    connection.set_schema_to_public()
    visitor_context.close()

    # The contact's 360-degree page shows what Dana looked at before the form.
    admin_page.goto(live_app.url_for(tenant.slug, f"/contacts/{dana.pk}/"))
    timeline = admin_page.get_by_test_id("timeline")
    expect(timeline.locator("[data-kind=page_view]")).to_contain_text("Viewed 3 pages in one visit")
    expect(timeline.locator("[data-kind=page_view]")).to_contain_text(f"Pricing — {site}/pricing")
    expect(timeline.locator("[data-kind=product_view]")).to_contain_text("Pro plan")
    expect(timeline.locator("[data-kind=form]")).to_contain_text("Demo request")
    # Scored and staged by the same roll-up (default weights: two page views, a pricing view,
    # a product view and a form make 1 + 1 + 5 + 3 + 10).
    engagement = admin_page.get_by_test_id("engagement")
    expect(engagement.get_by_test_id("score-now")).to_have_text("20")
    expect(engagement.get_by_test_id("stage-history")).to_contain_text("Evaluation")
    admin_page.close()


SHOP = """<script>
crm('purchase', {order_id: 'A-1', amount: 42.5, currency: 'eur',
                 items: [{sku: 'K-1', name: 'Kettle', quantity: 2}]});
crm('event', 'video_played', {seconds: 30});
</script>"""


def test_an_email_click_token_and_the_pages_own_calls_reach_the_contact(
    committed_tenant, live_app, celery_worker, django_db_blocker, website, browser
):
    from contacts.services import contact_create
    from tracking.identity import visitor_token
    from tracking.ingest import identify_signature
    from tracking.models import Event, TimelineEntry
    from tracking.selectors import tracking_settings
    from tracking.sites import site_origins_set

    tenant = committed_tenant("click")
    crm = live_app.url_for(tenant.slug, "").rstrip("/")
    folder, site = website
    with django_db_blocker.unblock(), schema_context(tenant.schema_name):
        site_origins_set(actor=None, origins=[site])
        ann = contact_create(actor=None, first_name="Ann", email="ann@example.test")
        token = visitor_token(contact_id=ann.pk)
        secret = tracking_settings().identify_secret
    connection.set_schema_to_public()
    (folder / "shop.html").write_text(SNIPPET_PAGE.format(title="Shop", crm=crm, body=SHOP))
    signature = identify_signature(secret, "bob@example.test")
    (folder / "account.html").write_text(
        SNIPPET_PAGE.format(
            title="Account",
            crm=crm,
            body="<script>crm('identify', {email: 'bob@example.test', "
            f"signature: '{signature}'}});</script>",
        )
    )

    # Ann follows a campaign e-mail's link: the token identifies her browser and leaves the URL.
    ann_context = browser.new_context()
    shop = ann_context.new_page()
    shop.goto(f"{site}/shop.html?crm_vt={token}&ref=mail")
    assert eventually(lambda: "crm_vt" not in shop.url)
    assert shop.url.endswith("/shop.html?ref=mail")
    # Bob signs in on the site: the page identifies him with the signature of his address.
    bob_context = browser.new_context()
    bob_context.new_page().goto(f"{site}/account.html")
    assert eventually(lambda: accepted_events(tenant) >= 4), ingest_counters(tenant)
    assert eventually(
        lambda: (
            int(
                buffer.client().hget(buffer.counters_key(tenant.schema_name), "accepted_requests")
                or 0
            )
            >= 4
        )
    )
    ann_context.close()
    bob_context.close()
    with django_db_blocker.unblock():
        tracking_drains_dispatch.delay().get(timeout=30)
        with schema_context(tenant.schema_name):
            assert eventually(lambda: Contact.objects.filter(email="bob@example.test").exists())
            assert eventually(lambda: TimelineEntry.objects.filter(contact=ann).count() >= 3)
            entries = {e.kind: e for e in TimelineEntry.objects.filter(contact=ann)}
            assert entries["purchase"].summary == "Bought order A-1 for 42.50 EUR"
            assert entries["purchase"].detail == "2 x Kettle"
            assert entries["custom"].summary == "Website event: video_played"
            assert entries["page_view"].summary == "Viewed Shop"
            assert not Event.objects.filter(url__contains="crm_vt").exists()
            bob = Contact.objects.get(email="bob@example.test")
            assert bob.source == "website"
            assert TimelineEntry.objects.get(contact=bob, kind="page_view").summary == (
                "Viewed Account"
            )
    connection.set_schema_to_public()
