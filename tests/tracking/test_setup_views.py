"""The admin's tracking page: the snippet, the site origins (validated, applied to the ingest
endpoint), the identify secret, and the endpoint's counters, per tenant and for admins only."""

import uuid

import pytest
from django.test import Client
from django_tenants.utils import schema_context

from crm.users.models import Role
from crm.users.services import user_create
from tests.conftest import PASSWORD
from tests.tracking.conftest import SITE, batch, host, page_view, post
from tracking.models import AuditEntry
from tracking.selectors import tracking_settings

pytestmark = pytest.mark.django_db


def logged_in(tenant, email):
    client = Client(HTTP_HOST=host(tenant))
    answer = client.post("/login/", {"username": email, "password": PASSWORD})
    assert answer.status_code == 302
    return client


@pytest.fixture
def admin_client(alpha):
    return logged_in(alpha, "admin@alpha.test")


def test_the_page_shows_the_snippet_the_secret_and_the_counters(alpha_site, admin_client):
    post(host(alpha_site), batch(uuid.uuid4(), [page_view(), page_view()]))
    post(host(alpha_site), "{")

    page = admin_client.get("/tracking/")

    html = page.content.decode()
    assert page.status_code == 200
    assert "http://alpha.localhost/static/tracking/crm.js" in html
    with schema_context(alpha_site.schema_name):
        assert tracking_settings().identify_secret in html
    assert '<tr data-counter="accepted_events"><th>Events accepted</th><td>2</td></tr>' in html
    assert '<tr data-counter="refused_invalid">' in html
    assert f"{SITE}</textarea>" in html


def test_saved_site_origins_are_normalized_and_open_the_endpoint(alpha, admin_client):
    answer = admin_client.post(
        "/tracking/",
        {"site_origins": "HTTPS://Shop.Example.com/\nhttp://localhost:8123\n\nhttps://a.test:443"},
    )

    assert answer.status_code == 302
    with schema_context(alpha.schema_name):
        found = tracking_settings()
        assert found.site_origins == [
            "https://shop.example.com",
            "http://localhost:8123",
            "https://a.test",
        ]
        assert AuditEntry.objects.filter(model="tracking.trackingsettings").exists()
    ok = post(host(alpha), batch(uuid.uuid4(), [page_view()]), origin="http://localhost:8123")
    assert ok.status == 202


def test_an_origin_with_a_path_or_another_scheme_is_a_field_error(alpha, admin_client):
    answer = admin_client.post(
        "/tracking/", {"site_origins": "https://ok.example\nftp://files.example\nhttps://x.test/a"}
    )

    assert answer.status_code == 200
    errors = answer.context["form"].errors["site_origins"]
    assert len(errors) == 2 and "ftp://files.example" in errors[0]
    with schema_context(alpha.schema_name):
        assert tracking_settings().site_origins == []


def test_a_new_identify_secret_refuses_the_old_signatures(alpha, admin_client):
    with schema_context(alpha.schema_name):
        old = tracking_settings().identify_secret

    answer = admin_client.post("/tracking/identify-secret/")

    assert answer.status_code == 302
    with schema_context(alpha.schema_name):
        assert tracking_settings().identify_secret != old
        entry = AuditEntry.objects.get(model="tracking.trackingsettings")
        assert old not in str(entry.changes)


@pytest.mark.parametrize("role", [Role.MANAGER, Role.SALES, Role.MARKETING, Role.PARTNER])
def test_only_admins_may_open_the_page(alpha, in_alpha, role):
    user_create(email=f"{role}@alpha.test", password=PASSWORD, full_name="Someone", role=role)
    client = logged_in(alpha, f"{role}@alpha.test")

    assert client.get("/tracking/").status_code == 403
    assert client.post("/tracking/identify-secret/").status_code == 403


def test_each_tenant_sees_its_own_settings_and_counters(alpha_site, beta):
    post(host(alpha_site), batch(uuid.uuid4(), [page_view()]))
    with schema_context(beta.schema_name):
        beta_secret = tracking_settings().identify_secret

    page = logged_in(beta, "admin@beta.test").get("/tracking/").content.decode()

    assert beta_secret in page and SITE not in page
    assert '<tr data-counter="accepted_events"><th>Events accepted</th><td>0</td></tr>' in page
