"""Fixtures for the lead-capture tests: a marketer of alpha, two salespeople to hand new
contacts to, a form factory, and a fresh visitor address per test (the rate limit counts posts
per address, and every test posts to alpha)."""

import itertools

import pytest

from crm.users.models import Role, User
from crm.users.services import user_create
from leads.services import lead_form_create
from tests.conftest import PASSWORD

ALPHA = {"HTTP_HOST": "alpha.localhost"}
BETA = {"HTTP_HOST": "beta.localhost"}

_addresses = itertools.count(1)


@pytest.fixture
def visitor_ip():
    n = next(_addresses)
    return f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}"


@pytest.fixture
def marketer(in_alpha):
    return user_create(
        email="mk@alpha.test", password=PASSWORD, full_name="Mia Marketing", role=Role.MARKETING
    )


@pytest.fixture
def reps(in_alpha):
    """Two salespeople, in id order, and an admin as the fallback owner."""
    return [
        user_create(
            email=f"{name.split()[0].lower()}@alpha.test",
            password=PASSWORD,
            full_name=name,
            role=Role.SALES,
        )
        for name in ("Rita Rep", "Sam Rep")
    ]


@pytest.fixture
def fallback(in_alpha):
    return User.objects.get(email="admin@alpha.test")


@pytest.fixture
def make_form(marketer, reps, fallback):
    def make(**fields):
        fields.setdefault("name", "Spring webinar")
        fields.setdefault("contact_fields", ["first_name", "last_name", "company", "phone"])
        fields.setdefault("required_fields", ["first_name"])
        fields.setdefault("interests", ["Analytics", "AI"])
        fields.setdefault("round_robin_users", reps)
        fields.setdefault("fallback_owner", fallback)
        return lead_form_create(actor=marketer, **fields)

    return make


@pytest.fixture
def marketer_client(client, marketer):
    client.post("/login/", {"username": marketer.email, "password": PASSWORD}, **ALPHA)
    return client
