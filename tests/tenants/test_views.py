import re

import pytest
from django_tenants.utils import schema_context, schema_exists

from crm.tenants.models import Tenant
from crm.users.models import User
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

PUBLIC = {"HTTP_HOST": "localhost"}


def signup_data(**overrides):
    data = {
        "company": "Globex",
        "slug": "globex",
        "full_name": "Hank Scorpio",
        "email": "hank@globex.test",
        "password": PASSWORD,
    }
    data.update(overrides)
    return data


def test_public_site_offers_to_create_a_workspace(client):
    response = client.get("/", **PUBLIC)

    assert response.status_code == 200
    assert b"Create your workspace" in response.content


def test_signup_creates_the_tenant_and_lands_the_founder_logged_in_on_its_host(client):
    response = client.post("/", signup_data(), **PUBLIC)

    assert response.status_code == 302
    match = re.match(r"^https?://globex\.localhost(:\d+)?(/welcome/[^/]+/[^/]+/)$", response.url)
    assert match, response.url
    tenant = Tenant.objects.get(slug="globex")
    assert tenant.name == "Globex" and schema_exists(tenant.schema_name)

    landing = client.get(match.group(2), HTTP_HOST="globex.localhost", follow=True)

    assert landing.redirect_chain[-1][0] == "/"
    assert b"Hank Scorpio" in landing.content
    assert b"Admin" in landing.content
    with schema_context(tenant.schema_name):
        assert User.objects.get().email == "hank@globex.test"


def test_the_welcome_link_works_once(client):
    response = client.post("/", signup_data(), **PUBLIC)
    path = re.sub(r"^https?://[^/]+", "", response.url)
    client.get(path, HTTP_HOST="globex.localhost")
    client.post("/logout/", HTTP_HOST="globex.localhost")

    again = client.get(path, HTTP_HOST="globex.localhost", follow=True)

    assert again.redirect_chain[-1][0].startswith("/login/")
    assert b"expired" in again.content


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"slug": "no"}, "slug", "3 to 30 characters"),
        ({"slug": "Bad Slug!"}, "slug", "lowercase letters"),
        ({"slug": "www"}, "slug", "reserved"),
        ({"slug": "alpha"}, "slug", "taken"),
        ({"email": "admin@alpha.test"}, "email", "already owns a workspace"),
        ({"email": "not-an-email"}, "email", "valid email"),
        ({"password": "password"}, "password", "too common"),
        ({"password": "12345678901"}, "password", "entirely numeric"),
        ({"company": ""}, "company", "required"),
    ],
)
def test_signup_with_bad_input_shows_field_errors_and_creates_no_schema(
    client, overrides, field, message
):
    tenants_before = Tenant.objects.count()

    response = client.post("/", signup_data(**overrides), **PUBLIC)

    assert response.status_code == 200
    errors = " ".join(response.context["form"].errors[field])
    assert message in errors
    assert message.encode() in response.content
    assert Tenant.objects.count() == tenants_before


def test_a_host_that_is_no_tenant_gets_a_plain_404_page(client):
    response = client.get("/", HTTP_HOST="nobody-here.localhost")

    assert response.status_code == 404
    assert b"No such workspace" in response.content


def test_the_template_tenant_is_never_reachable(client):
    assert client.get("/login/", HTTP_HOST="tenant-template.localhost").status_code == 404


def test_a_host_outside_the_base_domain_is_refused(client):
    assert client.get("/", HTTP_HOST="evil.example.com").status_code == 400
