"""Every answer says how long Django took to make it, in `Server-Timing`: a signed-in tenant
page, an API call with a key, and a refusal alike."""

import io
import re
import time

import pytest
from django.core.management import call_command

from contacts import services
from crm.users.models import User
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

ALPHA = {"HTTP_HOST": "alpha.localhost"}


def timed(call) -> tuple[object, float]:
    """The response, and the milliseconds the whole call took in the test."""
    started = time.perf_counter()
    response = call()
    return response, (time.perf_counter() - started) * 1000


def app_duration(response) -> float:
    match = re.fullmatch(r"app;dur=(\d+\.\d)", response["Server-Timing"])
    assert match, response["Server-Timing"]
    return float(match[1])


def test_a_tenant_page_says_how_long_the_server_took(client, in_alpha):
    admin = User.objects.get(email="admin@alpha.test")
    services.contact_create(actor=admin, first_name="Tim", last_name="Timed")
    client.post("/login/", {"username": admin.email, "password": PASSWORD}, **ALPHA)

    response, elapsed = timed(lambda: client.get("/contacts/", **ALPHA))

    assert response.status_code == 200
    assert b"Timed" in response.content
    # The page runs queries and a template: more than a tenth of a millisecond, and no more
    # than the call took as a whole.
    assert 0 < app_duration(response) <= elapsed


def test_an_api_call_and_a_refusal_say_how_long_the_server_took(client, in_alpha):
    out = io.StringIO()
    call_command("create_api_key", "alpha", "--user", "admin@alpha.test", stdout=out)
    key = out.getvalue().strip()

    response, elapsed = timed(
        lambda: client.get("/api/v1/contacts/", HTTP_AUTHORIZATION=f"Bearer {key}", **ALPHA)
    )
    assert response.status_code == 200
    assert 0 < app_duration(response) <= elapsed

    refused, elapsed = timed(
        lambda: client.get("/api/v1/contacts/", HTTP_AUTHORIZATION="Bearer wrong", **ALPHA)
    )
    assert refused.status_code == 401
    assert 0 <= app_duration(refused) <= elapsed
