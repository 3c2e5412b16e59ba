"""Web personalization in the browser: a page of the tenant's site, on an origin of its own, gets
its blocks from the live app; a marketer writes a block and previews it as a contact."""

import http.server
import re
import threading
import uuid
from datetime import UTC, datetime

import pytest
from django.db import connection
from django_tenants.utils import schema_context
from playwright.sync_api import expect

from contacts import services as contact_services
from crm.embedded import free_port
from crm.users.models import User
from tests.e2e.conftest import log_in
from tracking import personalization
from tracking.models import Visitor
from tracking.scoring import tracking_settings

pytestmark = pytest.mark.e2e

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)

# The tenant's page: two slots with content of their own, personalize.js from the CRM, and the
# call the tracking snippet would make (the visitor id comes from the page's query string here).
SITE_PAGE = """<!doctype html>
<html><head><title>Acme</title></head><body>
<div data-crm-slot="hero" data-testid="hero">Our own hero</div>
<div data-crm-slot="sidebar" data-testid="sidebar">Our own sidebar</div>
<script src="{crm}/static/tracking/personalize.js"></script>
<script>
  window.crmPersonalize(new URLSearchParams(location.search).get("vid"), "{crm}");
</script>
</body></html>
"""


@pytest.fixture
def site_server():
    """A tiny web server on loopback, standing for the tenant's website; serve(html) sets the
    page it answers with and returns its port."""
    page = {"html": b""}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page["html"])))
            self.end_headers()
            self.wfile.write(page["html"])

        def log_message(self, format, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def serve(html: str) -> int:
        page["html"] = html.encode()
        return server.server_address[1]

    yield serve
    server.shutdown()
    server.server_close()


@pytest.fixture
def shop(committed_tenant, add_user, django_db_blocker):
    """A tenant with a marketer, a default hero, a hero for AI fans, a sidebar block for buyers
    only, and a browser known as Ada, who is interested in AI."""
    tenant = committed_tenant("perso")
    email = add_user(tenant, "marketing")
    with django_db_blocker.unblock(), schema_context(tenant.schema_name):
        marketer = User.objects.get(email=email)
        ada = contact_services.contact_create(
            actor=marketer, first_name="Ada", last_name="Lovelace", interests=["ai"]
        )
        for slot, name, rules, priority in [
            ("hero", "Welcome", {}, 100),
            ("hero", "AI fans", {"interests": ["ai"]}, 10),
            ("sidebar", "Buyers", {"stages": ["purchase"]}, 100),
        ]:
            personalization.block_create(
                actor=marketer,
                slot=slot,
                name=name,
                rules=rules,
                content=f"<strong>{name} block</strong>",
                priority=priority,
            )
        ada_browser = Visitor.objects.create(
            id=uuid.uuid4(), contact=ada, first_seen_at=T0, last_seen_at=T0
        )
    connection.set_schema_to_public()
    return tenant, email, ada_browser.id


def register_origin(tenant, origin, django_db_blocker):
    with django_db_blocker.unblock(), schema_context(tenant.schema_name):
        settings = tracking_settings()
        settings.site_origins = [origin]
        settings.save()
    connection.set_schema_to_public()


def test_the_sites_page_shows_the_default_to_strangers_and_ada_her_block(
    page, live_app, shop, site_server, django_db_blocker
):
    tenant, _email, ada_browser = shop
    crm = live_app.url_for(tenant.slug, "").rstrip("/")
    port = site_server(SITE_PAGE.replace("{crm}", crm))
    register_origin(tenant, f"http://127.0.0.1:{port}", django_db_blocker)
    done = page.locator("html[data-crm-personalized=done]")

    page.goto(f"http://127.0.0.1:{port}/?vid={uuid.uuid4()}")
    expect(done).to_have_count(1)
    expect(page.get_by_test_id("hero")).to_have_text("Welcome block")
    # No default for the sidebar: the page keeps its own content.
    expect(page.get_by_test_id("sidebar")).to_have_text("Our own sidebar")

    page.goto(f"http://127.0.0.1:{port}/?vid={ada_browser}")
    expect(done).to_have_count(1)
    expect(page.get_by_test_id("hero").locator("strong")).to_have_text("AI fans block")
    expect(page.get_by_test_id("sidebar")).to_have_text("Our own sidebar")

    # The same page on an origin the tenant did not register is refused: its content stays.
    page.goto(f"http://localhost:{port}/?vid={ada_browser}")
    expect(done).to_have_count(1)
    expect(page.get_by_test_id("hero")).to_have_text("Our own hero")


def test_a_marketer_writes_a_block_and_previews_the_page_as_a_contact(page, live_app, shop):
    tenant, email, _ada_browser = shop
    log_in(page, live_app, tenant.slug, email)

    page.goto(live_app.url_for(tenant.slug, "/campaigns/"))
    page.get_by_role("link", name="Web personalization").click()
    expect(page.get_by_test_id("slot-hero")).to_contain_text("Interested in ai")
    page.get_by_role("link", name="New block").click()
    form = page.get_by_test_id("personalization-block-form")
    form.get_by_label("Slot").fill("sidebar")
    form.get_by_label("Name").fill("Warm AI fans")
    form.get_by_label("Priority").fill("5")
    form.get_by_label("Interests").fill("ai, robots")
    form.get_by_label("Score at least").fill("0")
    form.get_by_label("Score at most").fill("-1")
    form.get_by_label("HTML").fill("<em>Talk to us</em>")
    form.get_by_role("button", name="Save").click()
    expect(page.get_by_role("alert").filter(has_text="greater than or equal to 0")).to_be_visible()
    page.get_by_label("Score at most").fill("50")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Block Warm AI fans saved.")).to_be_visible()

    page.get_by_role("link", name="Preview as a contact").click()
    expect(page.get_by_test_id("preview-slot-hero").get_by_test_id("chosen-block")).to_have_text(
        "Welcome"
    )
    page.get_by_label("Preview as").fill("lovelace")
    page.get_by_role("button", name="Find").click()
    page.get_by_test_id("preview-matches").get_by_role("link", name="Ada Lovelace").click()

    expect(page.get_by_test_id("preview-contact")).to_have_text("Ada Lovelace")
    hero = page.get_by_test_id("preview-slot-hero")
    expect(hero.get_by_test_id("chosen-block")).to_have_text("AI fans")
    expect(hero.get_by_test_id("reasons")).to_contain_text("Interested in ai")
    expect(
        page.frame_locator("[data-testid=preview-slot-hero] iframe").locator("strong")
    ).to_have_text("AI fans block")
    sidebar = page.get_by_test_id("preview-slot-sidebar")
    expect(sidebar.get_by_test_id("chosen-block")).to_have_text("Warm AI fans")
    expect(sidebar.get_by_test_id("reasons")).to_contain_text(re.compile(r"Score 0\.0 is within"))
    expect(
        page.frame_locator("[data-testid=preview-slot-sidebar] iframe").locator("em")
    ).to_have_text("Talk to us")
