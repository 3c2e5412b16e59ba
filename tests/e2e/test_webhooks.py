"""Browser test: the admin registers a webhook endpoint, sees its secret, and watches a delivery
arrive at the receiver and show in the delivery log."""

import threading

import pytest
from django.db import connection
from django_tenants.utils import schema_context
from playwright.sync_api import expect

from contacts import services as contact_services
from crm.users.models import User
from integrations import webhooks
from integrations.models import WebhookEndpoint
from tests.e2e.conftest import log_in
from tests.integrations.test_webhooks import Receiver

pytestmark = pytest.mark.e2e


@pytest.fixture
def receiver(settings):
    # The worker runs in this process: it must accept the loopback receiver as the server does.
    settings.CRM_WEBHOOKS_ALLOW_PRIVATE = True
    found = Receiver()
    threading.Thread(target=found.server.serve_forever, daemon=True).start()
    yield found
    found.server.shutdown()
    found.server.server_close()


def test_the_admin_registers_an_endpoint_and_sees_the_delivery(
    committed_tenant, live_app, page, receiver, celery_worker, django_db_blocker
):
    connection.set_schema_to_public()
    tenant = committed_tenant("hooks")
    log_in(page, live_app, tenant.slug, f"admin@{tenant.slug}.test")
    page.get_by_role("link", name="Webhooks").click()
    page.get_by_role("link", name="Add an endpoint").click()
    page.fill("#id_url", receiver.url)
    page.fill("#id_description", "Partner ERP")
    page.get_by_label("Contact created").check()
    page.get_by_role("button", name="Save").click()

    shown = page.get_by_test_id("webhook-secret").input_value()
    with django_db_blocker.unblock(), schema_context(tenant.schema_name):
        endpoint = WebhookEndpoint.objects.get()
        assert (shown, endpoint.description, endpoint.events) == (
            endpoint.secret,
            "Partner ERP",
            ["contact.created"],
        )
        contact_services.contact_create(
            actor=User.objects.get(), first_name="Peter", email="peter@initech.test"
        )
    connection.set_schema_to_public()
    (request,) = receiver.wait_for(1)
    assert webhooks.signature_verify(
        endpoint.secret, request["headers"]["X-CRM-Signature"], request["body"]
    )

    row = page.get_by_test_id("delivery-row")
    for _ in range(50):
        page.reload()
        if row.count() and row.first.get_attribute("data-status") == "delivered":
            break
        page.wait_for_timeout(200)
    expect(row.first).to_contain_text("contact.created")
    expect(row.first).to_contain_text("Delivered")
    row.first.get_by_role("link").click()
    expect(page.get_by_test_id("payload")).to_contain_text("peter@initech.test")
