import pytest
from django.db import connection
from django_tenants.utils import schema_context
from playwright.sync_api import expect

from campaigns.models import Segment, SegmentMember
from contacts.models import Account, Contact
from tests.e2e.conftest import log_in

pytestmark = pytest.mark.e2e


@pytest.fixture
def audience(committed_tenant, add_user, django_db_blocker):
    """A tenant with a marketer and four contacts: ann (evaluating, at a vip account), cat
    (evaluating, interested in ai), dan (evaluating) and bob (aware, at the vip account)."""
    tenant = committed_tenant("seg")
    email = add_user(tenant, "marketing")
    with django_db_blocker.unblock(), schema_context(tenant.schema_name):
        acme = Account.objects.create(name="Acme", tags=["vip"])
        Contact.objects.create(first_name="Ann", lifecycle_stage="evaluation", account=acme)
        Contact.objects.create(first_name="Cat", lifecycle_stage="evaluation", interests=["ai"])
        Contact.objects.create(first_name="Dan", lifecycle_stage="evaluation")
        Contact.objects.create(first_name="Bob", lifecycle_stage="awareness", account=acme)
    connection.set_schema_to_public()
    return tenant, email


def test_a_marketer_builds_a_segment_with_an_or_group_saves_and_freezes_it(
    page, live_app, audience, django_db_blocker
):
    tenant, email = audience
    log_in(page, live_app, tenant.slug, email)
    page.goto(live_app.url_for(tenant.slug, "/campaigns/segments/new/"))
    count = page.get_by_test_id("segment-preview").get_by_test_id("segment-count")
    expect(count).to_have_text("4")

    page.get_by_label("Name").fill("Evaluating, vip or ai")
    page.get_by_role("button", name="Add condition", exact=True).click()
    first = page.get_by_test_id("rule-row").nth(0)
    first.get_by_label("Field").select_option("lifecycle_stage")
    first.get_by_label("Operator").select_option("eq")
    first.get_by_label("Value").select_option("evaluation")
    expect(count).to_have_text("3")

    page.get_by_role("button", name="Add group").click()
    group = page.get_by_test_id("rule-group")
    group.get_by_role("button", name="Add condition to group").click()
    vip, ai = group.get_by_test_id("rule-row").nth(0), group.get_by_test_id("rule-row").nth(1)
    vip.get_by_label("Field").select_option("account_tags")
    vip.get_by_label("Operator").select_option("contains")
    vip.get_by_label("Value").fill("vip")
    ai.get_by_label("Field").select_option("interests")
    ai.get_by_label("Operator").select_option("contains")
    ai.get_by_label("Value").fill("ai")
    expect(count).to_have_text("2")
    expect(page.get_by_test_id("segment-sample")).to_contain_text("Ann")
    expect(page.get_by_test_id("segment-sample")).to_contain_text("Cat")

    page.get_by_role("button", name="Save").click()
    expect(page.locator("h1")).to_have_text("Evaluating, vip or ai")
    expect(page.get_by_test_id("segment-count")).to_have_text("2")

    page.get_by_role("button", name="Freeze into a static list").click()
    expect(page.get_by_test_id("segment-kind")).to_contain_text("Static list")
    with django_db_blocker.unblock(), schema_context(tenant.schema_name):
        segment = Segment.objects.get(name="Evaluating, vip or ai")
        frozen = set(
            SegmentMember.objects.filter(segment=segment).values_list(
                "contact__first_name", flat=True
            )
        )
    connection.set_schema_to_public()
    assert frozen == {"Ann", "Cat"}
