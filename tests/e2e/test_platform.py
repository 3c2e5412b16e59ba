import re
import uuid

import pytest
from django.db import connection
from playwright.sync_api import expect

from crm.tenants.models import Tenant
from tests.conftest import PASSWORD, body_of, unique_slug
from tests.e2e.conftest import log_in

pytestmark = pytest.mark.e2e


@pytest.fixture
def forget_tenant(django_db_setup, django_db_blocker):
    """Drop the tenants a test created through the browser."""
    slugs = []
    yield slugs.append
    with django_db_blocker.unblock():
        connection.set_schema_to_public()
        for tenant in Tenant.objects.filter(slug__in=slugs):
            tenant.delete(force_drop=True)


def sign_up(page, live_app, *, company: str, slug: str, name: str, email: str) -> None:
    page.goto(live_app.public_url)
    page.fill("#id_company", company)
    page.fill("#id_slug", slug)
    page.fill("#id_full_name", name)
    page.fill("#id_email", email)
    page.fill("#id_password", PASSWORD)
    page.click("text=Create workspace")


def test_signing_up_lands_the_founder_in_the_app_shell(page, live_app, forget_tenant):
    slug = unique_slug("web")
    forget_tenant(slug)

    sign_up(
        page,
        live_app,
        company="Web Widgets",
        slug=slug,
        name="Wendy Founder",
        email=f"wendy@{slug}.test",
    )

    expect(page).to_have_url(live_app.url_for(slug, "/"))
    expect(page.get_by_test_id("user-name")).to_have_text("Wendy Founder")
    expect(page.get_by_test_id("user-role")).to_have_text("Admin")
    expect(page.get_by_role("link", name="Users")).to_be_visible()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()


@pytest.mark.parametrize(
    ("slug", "message"), [("Bad Slug!", "lowercase letters"), ("www", "reserved")]
)
def test_sign_up_with_a_bad_slug_shows_the_error_and_creates_nothing(
    page, live_app, django_db_blocker, slug, message
):
    sign_up(
        page,
        live_app,
        company="Nope Inc",
        slug=slug,
        name="No Body",
        email=f"nobody-{uuid.uuid4().hex[:6]}@nope.test",
    )

    expect(page.locator(".field.has-error")).to_contain_text(message)
    with django_db_blocker.unblock():
        assert not Tenant.objects.filter(name="Nope Inc").exists()


NAV = {
    "admin": ({"Users", "Campaigns", "Opportunities"}, set()),
    "manager": ({"Campaigns", "Opportunities"}, {"Users"}),
    "sales": ({"Opportunities", "Contacts"}, {"Users", "Campaigns"}),
    "marketing": ({"Campaigns", "Contacts"}, {"Users", "Opportunities"}),
    "partner": ({"Accounts", "Opportunities"}, {"Users", "Campaigns"}),
}


def test_each_role_logs_in_sees_its_shell_and_logs_out(
    context, live_app, committed_tenant, add_user
):
    tenant = committed_tenant("roles")
    for role, (shown, hidden) in NAV.items():
        email = f"admin@{tenant.slug}.test" if role == "admin" else add_user(tenant, role)
        page = context.new_page()
        log_in(page, live_app, tenant.slug, email)

        expect(page.get_by_test_id("user-role")).to_have_text(role.title())
        nav = page.get_by_role("navigation", name="Main")
        for label in shown:
            expect(nav.get_by_role("link", name=label)).to_be_visible()
        for label in hidden:
            expect(nav.get_by_role("link", name=label)).to_have_count(0)

        page.get_by_role("button", name="Log out").click()
        expect(page).to_have_url(re.compile(r"/login/$"))
        page.close()


def test_the_shell_folds_its_navigation_on_a_phone(browser, live_app, committed_tenant):
    tenant = committed_tenant("phone")
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    log_in(page, live_app, tenant.slug, f"admin@{tenant.slug}.test")

    contacts = page.get_by_role("navigation", name="Main").get_by_role("link", name="Contacts")
    expect(contacts).to_be_hidden()
    page.locator("label.nav-toggle-label").click()
    expect(contacts).to_be_visible()
    no_sideways_scroll = page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert no_sideways_scroll
    context.close()


def test_password_reset_by_email_in_the_browser(page, live_app, committed_tenant, mailbox):
    tenant = committed_tenant("reset")
    email = f"admin@{tenant.slug}.test"
    page.goto(live_app.url_for(tenant.slug, "/login/"))

    page.click("text=Forgot your password?")
    page.fill("#id_email", email)
    page.click("text=Send the link")
    expect(page.locator("h1")).to_have_text("Check your e-mail")
    link = re.search(r"http://\S+/password-reset/\S+/", body_of(mailbox.wait_for(email)))
    page.goto(link.group(0))
    page.fill("#id_new_password1", "brand-new-secret-77")
    page.fill("#id_new_password2", "brand-new-secret-77")
    page.click("text=Save password")

    expect(page.get_by_test_id("user-role")).to_have_text("Admin")
    page.get_by_role("button", name="Log out").click()
    log_in(page, live_app, tenant.slug, email, PASSWORD)
    expect(page.locator(".errors")).to_be_visible()
    log_in(page, live_app, tenant.slug, email, "brand-new-secret-77")
    expect(page.get_by_test_id("user-role")).to_have_text("Admin")


def test_a_login_does_not_reach_another_tenant_even_with_the_cookie(
    context, page, live_app, committed_tenant
):
    first, second = committed_tenant("first"), committed_tenant("second")
    log_in(page, live_app, first.slug, f"admin@{first.slug}.test")
    expect(page.get_by_test_id("user-role")).to_be_visible()

    page.goto(live_app.url_for(second.slug, "/"))
    expect(page).to_have_url(re.compile(rf"{second.slug}\.localhost:\d+/login/"))

    session = next(c for c in context.cookies() if c["name"] == "sessionid")
    context.add_cookies([{**session, "domain": f"{second.slug}.localhost"}])
    page.goto(live_app.url_for(second.slug, "/"))
    expect(page).to_have_url(re.compile(r"/login/"))
    expect(page.locator("h1")).to_contain_text(second.name)


def test_an_unknown_workspace_address_shows_a_404_page(page, live_app):
    response = page.goto(live_app.url_for(f"nope-{uuid.uuid4().hex[:6]}", "/"))

    assert response.status == 404
    expect(page.locator("h1")).to_have_text("No such workspace")


def test_an_admin_invites_promotes_and_deactivates_a_user(page, live_app, committed_tenant):
    tenant = committed_tenant("team")
    log_in(page, live_app, tenant.slug, f"admin@{tenant.slug}.test")

    page.get_by_role("link", name="Users").click()
    page.get_by_role("link", name="Invite a user").click()
    page.fill("#id_full_name", "Ivy Invitee")
    page.fill("#id_email", f"ivy@{tenant.slug}.test")
    page.select_option("#id_role", "sales")
    page.click("text=Send invitation")
    row = page.locator(f"[data-email='ivy@{tenant.slug}.test']")
    expect(row).to_contain_text("Invited")
    expect(row).to_contain_text("Sales")

    row.get_by_role("link", name="Ivy Invitee").click()
    page.select_option("#id_role", "manager")
    page.click("text=Save")
    expect(row).to_contain_text("Manager")

    row.get_by_role("button", name="Deactivate").click()
    expect(row).to_contain_text("Deactivated")
