import pytest
from django.db import connection
from django_tenants.utils import schema_context
from playwright.sync_api import expect

from contacts import services
from contacts.models import Contact
from crm.users.models import User
from tests.e2e.conftest import log_in

pytestmark = pytest.mark.e2e


@pytest.fixture
def twins(committed_tenant, add_user, django_db_blocker):
    """A salesperson with Peter Gibbons twice at Initech, each with a call logged."""
    tenant = committed_tenant("merge")
    email = add_user(tenant, "sales")
    with django_db_blocker.unblock(), schema_context(tenant.schema_name):
        sales = User.objects.get(email=email)
        account = services.account_create(actor=sales, name="Initech")
        kept, merged = (
            services.contact_create(
                actor=sales,
                first_name="Peter",
                last_name=last,
                email=address,
                title=title,
                account=account,
            )
            for last, address, title in (
                ("Gibbons", "peter@initech.test", "Engineer"),
                ("Gibons", "pgibbons@home.test", "Senior engineer"),
            )
        )
        services.activity_log(actor=sales, contact=kept, kind="call", subject="Kept call")
        services.activity_log(actor=sales, contact=merged, kind="call", subject="Merged call")
    connection.set_schema_to_public()
    return tenant, email, kept, merged


def test_a_salesperson_merges_two_contacts_and_undoes_it(page, live_app, twins, django_db_blocker):
    tenant, email, kept, merged = twins
    log_in(page, live_app, tenant.slug, email)

    page.goto(live_app.url_for(tenant.slug, "/contacts/"))
    page.get_by_test_id("find-duplicates").click()
    pair = page.get_by_test_id("pair")
    expect(pair).to_contain_text("similar name at the same account")
    pair.get_by_role("link", name="Review merge").click()

    page.get_by_test_id("field-title").get_by_label("Senior engineer").check()
    page.get_by_role("button", name="Merge").click()

    expect(page.locator("h1")).to_have_text("Peter Gibbons")
    timeline = page.get_by_test_id("timeline")
    expect(timeline).to_contain_text("merged Peter Gibons into this record")
    expect(timeline).to_contain_text("Call: Merged call")
    expect(timeline).to_contain_text("Call: Kept call")

    page.goto(live_app.url_for(tenant.slug, "/merges/"))
    expect(page.get_by_test_id("merge-journal")).to_contain_text(
        "Peter Gibons merged into Peter Gibbons"
    )
    page.get_by_role("button", name="Undo").click()
    expect(page.get_by_role("status")).to_contain_text("Both records are back")

    page.goto(live_app.url_for(tenant.slug, f"/contacts/{merged.pk}/"))
    expect(page.locator("h1")).to_have_text("Peter Gibons")
    expect(page.get_by_test_id("timeline")).to_contain_text("Call: Merged call")
    page.goto(live_app.url_for(tenant.slug, f"/contacts/{kept.pk}/"))
    expect(page.get_by_test_id("timeline")).to_contain_text("Call: Kept call")
    expect(page.get_by_test_id("timeline")).not_to_contain_text("Call: Merged call")
    with django_db_blocker.unblock(), schema_context(tenant.schema_name):
        titles = dict(Contact.objects.values_list("last_name", "title"))
    connection.set_schema_to_public()
    assert titles == {"Gibbons": "Engineer", "Gibons": "Senior engineer"}
