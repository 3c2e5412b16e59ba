import json
import urllib.error
import urllib.request

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import log_in

pytestmark = pytest.mark.e2e


def api_get(live_app, slug: str, path: str, key: str) -> tuple[int, dict]:
    """GET from the tenant's API as a partner's program would (by address: the resolver here
    may not know `<slug>.localhost`, a browser does)."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{live_app.port}{path}",
        headers={"Host": f"{slug}.localhost:{live_app.port}", "Authorization": f"Bearer {key}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_an_admin_makes_a_key_a_program_uses_it_and_the_admin_revokes_it(
    page, live_app, committed_tenant, add_user
):
    tenant = committed_tenant("keys")
    partner = add_user(tenant, "sales")
    log_in(page, live_app, tenant.slug, f"admin@{tenant.slug}.test")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="API").click()
    page.get_by_role("link", name="Make a key").click()
    page.get_by_label("Name").fill("Partner portal sync")
    page.get_by_label("Acts as").select_option(label=f"Sales Person <{partner}> · Sales")
    page.get_by_role("button", name="Make the key").click()

    expect(page.get_by_role("alert")).to_contain_text("shown only this once")
    key = page.get_by_test_id("api-key-text").input_value()

    status, body = api_get(live_app, tenant.slug, "/api/v1/users/", key)
    assert status == 200
    assert partner in {user["email"] for user in body["results"]}

    page.get_by_role("link", name="Back to the API keys").click()
    row = page.get_by_test_id("api-key-row").filter(has_text="Partner portal sync")
    expect(row).to_contain_text("Sales Person")
    expect(row).not_to_contain_text(key)
    row.get_by_role("link", name="Revoke").click()
    page.get_by_role("button", name="Revoke the key").click()
    expect(page.get_by_test_id("api-key-row").first).to_contain_text("Revoked")

    status, body = api_get(live_app, tenant.slug, "/api/v1/users/", key)
    assert status == 401
    assert body == {"detail": "Invalid or revoked API key."}
