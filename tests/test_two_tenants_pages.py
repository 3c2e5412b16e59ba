"""Two tenants, page by page: what beta keeps never shows on alpha's host (and the other way
round), not by its id, not in a search, an export, a picker, the pipeline board, the calendar
or My day, while each tenant's admin sees their own on their own host. Beta's records are named
for "Zebulon", alpha's for "Aardvark", and all of them match "harbour"."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from django_tenants.utils import schema_context

from contacts import services
from crm.demo import pipeline_ensure
from crm.users.models import User
from opportunities.services import opportunity_create

pytestmark = pytest.mark.django_db


def records_of(tenant, name: str) -> dict:
    """In the tenant's schema, owned by its admin: an account, a contact there, a deal with
    them, a task due today about the contact and a meeting with the contact tomorrow."""
    with schema_context(tenant.schema_name):
        admin = User.objects.get(email=f"admin@{tenant.slug}.test")
        account = services.account_create(actor=admin, name=f"{name} Harbour Ltd")
        contact = services.contact_create(
            actor=admin, first_name=name, last_name="Harbour", account=account
        )
        deal = opportunity_create(
            actor=admin,
            name=f"{name} Harbour deal",
            account=account,
            stage=pipeline_ensure().stages.first(),
        )
        services.task_create(
            actor=admin, contact=contact, title=f"Call {name} back", due_on=timezone.localdate()
        )
        start = timezone.now() + timedelta(days=1)
        services.appointment_create(
            actor=admin,
            title=f"{name} review",
            starts_at=start,
            ends_at=start + timedelta(hours=1),
            contacts=[contact],
        )
    return {"contacts": contact, "accounts": account, "opportunities": deal}


def admin_client(tenant, client: Client) -> Client:
    """The client, on the tenant's host, logged in as the tenant's admin."""
    client.defaults["HTTP_HOST"] = f"{tenant.slug}.localhost"
    with schema_context(tenant.schema_name):
        client.force_login(User.objects.get(email=f"admin@{tenant.slug}.test"))
    return client


@pytest.fixture
def on_alpha(alpha, client):
    return admin_client(alpha, client)


@pytest.fixture
def on_beta(beta):
    return admin_client(beta, Client())


def text(response) -> str:
    assert response.status_code == 200, response.status_code
    body = response.streaming_content if response.streaming else [response.content]
    return b"".join(body).decode()


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        pytest.param("/search/?q=harbour", {}, id="shell search page"),
        pytest.param("/search/?q=harbour", {"HTTP_HX_REQUEST": "true"}, id="shell search box"),
        pytest.param("/contacts/?q=harbour", {}, id="contact list search"),
        pytest.param("/accounts/?q=harbour", {}, id="account list search"),
        pytest.param("/opportunities/?q=harbour", {}, id="opportunity list search"),
        pytest.param("/contacts/export.csv", {}, id="contact export"),
        pytest.param("/accounts/export.csv", {}, id="account export"),
        pytest.param("/opportunities/export.csv", {}, id="opportunity export"),
        pytest.param("/contacts/options/?field=q&q=harbour", {}, id="contact picker"),
        pytest.param("/accounts/options/?field=q&q=harbour", {}, id="account picker"),
        pytest.param("/calendar/", {}, id="calendar"),
        pytest.param("/opportunities/board/", {}, id="pipeline board"),
        pytest.param("/", {}, id="my day"),
    ],
)
def test_each_tenant_s_page_shows_its_own_records_and_never_the_other_s(
    alpha, beta, on_alpha, on_beta, path, headers
):
    records_of(alpha, "Aardvark")
    records_of(beta, "Zebulon")

    # Beta first: anything its pages leave behind (a cache entry) must not reach alpha's.
    on_beta_page = text(on_beta.get(path, **headers))
    on_alpha_page = text(on_alpha.get(path, **headers))

    assert "Zebulon" in on_beta_page and "Aardvark" not in on_beta_page
    assert "Aardvark" in on_alpha_page and "Zebulon" not in on_alpha_page


@pytest.mark.parametrize("kind", ["contacts", "accounts", "opportunities"])
def test_beta_s_record_is_404_on_alpha_s_host_under_its_id(alpha, beta, on_alpha, on_beta, kind):
    record = records_of(beta, "Zebulon")[kind]
    path = f"/{kind}/{record.pk}/"
    with schema_context(alpha.schema_name):
        assert not type(record).objects.filter(pk=record.pk).exists(), "alpha has that id too"

    assert "Zebulon" in text(on_beta.get(path))
    on_alpha_page = on_alpha.get(path)
    assert on_alpha_page.status_code == 404
    assert "Zebulon" not in on_alpha_page.content.decode()
