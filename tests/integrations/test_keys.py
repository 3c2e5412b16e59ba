"""API keys: made, stored hashed, checked, revoked; the bearer scheme, read-only keys, rate
limits per key and tenant; the command and the admin's pages.

The API's resources are built elsewhere; the authentication, permission and throttle classes are
the project's defaults, so a small view defined here (below) goes through exactly what every
endpoint goes through. It is called in the tenant's schema, with the rate-limit headers
middleware around it, as the tenant middleware would.
"""

import io
import json
import re
import subprocess
import sys
from datetime import timedelta

import pytest
import redis
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone
from django_tenants.utils import schema_context, tenant_context
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory
from rest_framework.views import APIView

from crm.users.models import Role, User
from crm.users.services import user_create
from integrations.keys import api_key_authenticate, api_key_create, api_key_revoke
from integrations.middleware import RateLimitHeadersMiddleware
from integrations.models import ApiKey
from tests.conftest import PASSWORD
from tracking.models import AuditEntry

ALPHA = {"HTTP_HOST": "alpha.localhost"}
BETA = {"HTTP_HOST": "beta.localhost"}
KEY_PATTERN = re.compile(r"crm_[0-9a-f]{12}_[A-Za-z0-9_-]{43}")


class Whoami(APIView):
    """Answers with who called; POST stands for any write."""

    def get(self, request):
        return Response({"email": request.user.email})

    def post(self, request):
        return Response({"written": True}, status=201)


api = RateLimitHeadersMiddleware(Whoami.as_view())


def body(response) -> dict:
    return json.loads(response.content)


def call(tenant, method="get", key=None, *, authorization=None, user=None, csrf=False):
    """Call the view on `tenant`'s schema with a key (or a raw Authorization header, or a
    logged-in session user); returns the rendered response."""
    factory = APIRequestFactory(enforce_csrf_checks=csrf)
    headers = {}
    if key is not None:
        headers["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    if authorization is not None:
        headers["HTTP_AUTHORIZATION"] = authorization
    request = getattr(factory, method)("/api/v1/whoami/", **headers)
    if user is not None:
        # What SessionMiddleware and AuthenticationMiddleware give a logged-in browser.
        request.user = user
        request.session = {}
    with tenant_context(tenant):
        response = api(request)
        response.render()
    return response


@pytest.fixture(autouse=True)
def fresh_counters():
    """Rate counters live in Redis, outside the test's transaction; each test starts with none."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    for name in client.scan_iter(match="*api-rate:*"):
        client.delete(name)


def admin_of(tenant) -> User:
    return User.objects.get(email=f"admin@{tenant.slug}.test")


def make_key(tenant, *, read_only=False, user=None, name="Partner sync") -> tuple[ApiKey, str]:
    with schema_context(tenant.schema_name):
        admin = admin_of(tenant)
        return api_key_create(actor=admin, user=user or admin, name=name, read_only=read_only)


def make_user(role, email=None, **kwargs):
    return user_create(
        email=email or f"{role}@alpha.test",
        password=PASSWORD,
        full_name=f"{role.title()} Person",
        role=role,
        **kwargs,
    )


# --- making, storing, checking ----------------------------------------------------------------


def test_a_key_is_stored_only_as_a_hash_and_audited(alpha):
    key, key_text = make_key(alpha)

    assert KEY_PATTERN.fullmatch(key_text)
    assert key_text.split("_")[1] == key.prefix
    secret = key_text.split("_", 2)[2]
    with schema_context(alpha.schema_name), connection.cursor() as cursor:
        cursor.execute("SELECT * FROM integrations_apikey")
        rows = repr(cursor.fetchall())
        audit = AuditEntry.objects.select_related("actor").get(
            model="integrations.apikey", object_id=key.pk
        )
    assert secret not in rows and key_text not in rows
    assert len(key.secret_hash) == 64 and key.secret_hash not in key_text
    assert (audit.action, audit.actor.email) == ("created", "admin@alpha.test")
    assert secret not in repr(audit.changes)


def test_two_keys_never_share_prefix_or_text(alpha):
    (one, one_text), (two, two_text) = make_key(alpha), make_key(alpha)

    assert one.prefix != two.prefix and one_text != two_text


def test_a_key_authenticates_as_its_user_and_records_its_use_at_most_once_a_minute(
    in_alpha, django_assert_num_queries
):
    key, key_text = make_key(in_alpha)

    found = api_key_authenticate(key_text)
    first_use = ApiKey.objects.get(pk=key.pk).last_used_at
    with django_assert_num_queries(1):  # the look-up only: no write within the minute
        again = api_key_authenticate(key_text)

    assert found.pk == key.pk and found.user.email == "admin@alpha.test"
    assert again.pk == key.pk and first_use is not None
    assert ApiKey.objects.get(pk=key.pk).last_used_at == first_use

    ApiKey.objects.filter(pk=key.pk).update(last_used_at=timezone.now() - timedelta(minutes=2))
    api_key_authenticate(key_text)
    assert ApiKey.objects.get(pk=key.pk).last_used_at > first_use


@pytest.mark.parametrize(
    "mangle",
    [
        lambda text: text[:-1] + ("A" if text[-1] != "A" else "B"),  # wrong secret
        lambda text: "crm_000000000000_" + text.split("_", 2)[2],  # unknown prefix
        lambda text: text.replace("crm_", "xyz_", 1),
        lambda text: text.rsplit("_", 1)[0],
        lambda text: "",
    ],
    ids=["wrong-secret", "unknown-prefix", "other-scheme", "cut-short", "empty"],
)
def test_a_wrong_key_does_not_authenticate(in_alpha, mangle):
    _key, key_text = make_key(in_alpha)

    assert api_key_authenticate(mangle(key_text)) is None


def test_a_key_name_is_required_and_a_deactivated_user_gets_no_key(in_alpha):
    from django.core.exceptions import ValidationError

    gone = make_user(Role.SALES, email="gone@alpha.test")
    gone.is_active = False
    gone.save()

    with pytest.raises(ValidationError) as blank:
        api_key_create(actor=admin_of(in_alpha), user=gone, name="  ", read_only=False)
    with pytest.raises(ValidationError) as inactive:
        api_key_create(actor=admin_of(in_alpha), user=gone, name="Sync", read_only=False)

    assert "name" in blank.value.message_dict and "user" in inactive.value.message_dict
    assert not ApiKey.objects.exists()


# --- the bearer scheme -------------------------------------------------------------------------


def test_a_key_calls_the_api_as_its_user(alpha):
    sales = None
    with schema_context(alpha.schema_name):
        sales = make_user(Role.SALES)
    _key, key_text = make_key(alpha, user=sales)

    response = call(alpha, key=key_text)

    assert response.status_code == 200
    assert response.data == {"email": "sales@alpha.test"}


def test_no_credentials_get_401_with_a_bearer_challenge(alpha):
    response = call(alpha)

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"
    assert body(response) == {"detail": "Authentication credentials were not provided."}


@pytest.mark.parametrize("header", ["Bearer", "Bearer one two", "bearer   "])
def test_a_malformed_authorization_header_gets_401_saying_so(alpha, header):
    response = call(alpha, authorization=header)

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"
    assert "Malformed Authorization header" in body(response)["detail"]


def test_a_wrong_key_gets_401(alpha):
    _key, key_text = make_key(alpha)

    response = call(alpha, key=key_text[:-2] + "zz")

    assert response.status_code == 401
    assert body(response) == {"detail": "Invalid or revoked API key."}


def test_a_revoked_key_gets_401_and_the_revocation_is_audited(alpha):
    key, key_text = make_key(alpha)
    assert call(alpha, key=key_text).status_code == 200

    with schema_context(alpha.schema_name):
        assert api_key_revoke(actor=admin_of(alpha), key=key) is True
        assert api_key_revoke(actor=admin_of(alpha), key=key) is False
        entries = list(
            AuditEntry.objects.filter(model="integrations.apikey", object_id=key.pk)
            .order_by("at")
            .values_list("action", flat=True)
        )

    assert call(alpha, key=key_text).status_code == 401
    assert entries == ["created", "revoked"]


def test_a_key_of_a_deactivated_user_gets_401(alpha):
    with schema_context(alpha.schema_name):
        sales = make_user(Role.SALES)
    _key, key_text = make_key(alpha, user=sales)
    with schema_context(alpha.schema_name):
        User.objects.filter(pk=sales.pk).update(is_active=False)

    assert call(alpha, key=key_text).status_code == 401


def test_a_key_of_one_tenant_gets_401_on_another(alpha, beta):
    _key, key_text = make_key(alpha)

    response = call(beta, key=key_text)

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"


def test_a_read_only_key_reads_but_may_not_write(alpha):
    _key, read_only = make_key(alpha, read_only=True)
    _key, writer = make_key(alpha)

    assert call(alpha, key=read_only).status_code == 200
    refused = call(alpha, "post", key=read_only)
    assert refused.status_code == 403
    assert body(refused) == {"detail": "This API key is read-only."}
    assert call(alpha, "post", key=writer).status_code == 201


def test_the_browser_session_works_for_the_api_with_csrf(alpha):
    with schema_context(alpha.schema_name):
        admin = admin_of(alpha)

    assert call(alpha, user=admin, csrf=True).status_code == 200
    forged = call(alpha, "post", user=admin, csrf=True)
    assert forged.status_code == 403 and "CSRF" in body(forged)["detail"]


def test_the_api_schema_documents_the_bearer_scheme(client, alpha):
    response = client.get("/api/schema/?format=json", **ALPHA)

    schema = body(response)
    assert schema["components"]["securitySchemes"]["apiKeyAuth"]["scheme"] == "bearer"
    assert {"apiKeyAuth": []} in schema["paths"]["/api/v1/users/"]["get"]["security"]


# --- rate limits -------------------------------------------------------------------------------


def test_calls_over_the_tenants_limit_get_429_with_retry_after_and_headers_count_down(alpha):
    alpha.api_rate_limit = 3
    _key, key_text = make_key(alpha)

    answers = [call(alpha, key=key_text) for _ in range(4)]

    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a["X-RateLimit-Limit"] for a in answers] == ["3"] * 4
    assert [a["X-RateLimit-Remaining"] for a in answers] == ["2", "1", "0", "0"]
    assert all(0 < int(a["X-RateLimit-Reset"]) <= 60 for a in answers)
    refused = answers[-1]
    assert 0 < int(refused["Retry-After"]) <= 60
    assert "throttled" in body(refused)["detail"].lower()


def test_each_key_has_its_own_allowance_and_session_calls_count_per_user(alpha):
    alpha.api_rate_limit = 2
    _key, one = make_key(alpha)
    _key, two = make_key(alpha)
    with schema_context(alpha.schema_name):
        admin = admin_of(alpha)

    assert [call(alpha, key=one).status_code for _ in range(3)] == [200, 200, 429]
    assert call(alpha, key=two)["X-RateLimit-Remaining"] == "1"
    assert [call(alpha, user=admin).status_code for _ in range(3)] == [200, 200, 429]


def test_a_tenants_calls_never_use_another_tenants_allowance(alpha, beta):
    alpha.api_rate_limit = 1
    beta.api_rate_limit = 5
    _key, alpha_key = make_key(alpha)
    _key, beta_key = make_key(beta)
    with schema_context(alpha.schema_name):
        alpha_admin = admin_of(alpha)
    with schema_context(beta.schema_name):
        beta_admin = admin_of(beta)
    # Users with the same id in both tenants (each tenant's first user).
    assert alpha_admin.pk == beta_admin.pk

    assert call(alpha, key=alpha_key).status_code == 200
    assert call(alpha, key=alpha_key).status_code == 429
    assert call(alpha, user=alpha_admin).status_code == 200
    assert call(alpha, user=alpha_admin).status_code == 429

    assert call(beta, key=beta_key)["X-RateLimit-Remaining"] == "4"
    assert call(beta, user=beta_admin)["X-RateLimit-Remaining"] == "4"


def test_refused_credentials_carry_no_rate_headers(alpha):
    response = call(alpha, key="crm_000000000000_nope")

    assert response.status_code == 401
    assert "X-RateLimit-Limit" not in response


def test_set_api_rate_limit_changes_the_tenants_limit(alpha):
    out = io.StringIO()

    call_command("set_api_rate_limit", "alpha", "42", stdout=out)
    alpha.refresh_from_db()

    assert alpha.api_rate_limit == 42
    assert "42" in out.getvalue()
    with pytest.raises(CommandError):
        call_command("set_api_rate_limit", "alpha", "0")
    with pytest.raises(CommandError):
        call_command("set_api_rate_limit", "nowhere", "10")


# --- create_api_key ----------------------------------------------------------------------------


def test_create_api_key_prints_only_a_working_key(alpha):
    with schema_context(alpha.schema_name):
        make_user(Role.PARTNER)
    out = io.StringIO()

    call_command(
        "create_api_key", "alpha", "--user", "PARTNER@alpha.test", "--read-only", stdout=out
    )

    key_text = out.getvalue().strip()
    assert KEY_PATTERN.fullmatch(key_text)
    with schema_context(alpha.schema_name):
        key = api_key_authenticate(key_text)
        assert key.user.email == "partner@alpha.test" and key.read_only
        assert key.created_by is None


def test_create_api_key_refuses_an_unknown_tenant_or_user(alpha):
    with pytest.raises(CommandError, match="No tenant 'nowhere'"):
        call_command("create_api_key", "nowhere", "--user", "admin@alpha.test")
    with pytest.raises(CommandError, match=re.escape("No user 'admin@beta.test'")):
        call_command("create_api_key", "alpha", "--user", "admin@beta.test")


def test_create_api_key_from_the_shell_prints_the_key_or_fails_with_status_1(committed_tenant):
    from tests.e2e.conftest import ROOT, database_url

    # Tenants are made from the public schema; an earlier test's request may have left another.
    connection.set_schema_to_public()
    tenant = committed_tenant("keys")
    env = {
        "PATH": "/usr/bin:/bin",
        "DATABASE_URL": database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "SECRET_KEY": settings.SECRET_KEY,
    }
    command = [sys.executable, "manage.py", "create_api_key", tenant.slug, "--user"]

    made = subprocess.run(
        [*command, f"admin@{tenant.slug}.test", "--name", "CI"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    refused = subprocess.run(
        [*command, "nobody@example.test"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert made.returncode == 0, made.stderr
    assert KEY_PATTERN.fullmatch(made.stdout.strip()) and made.stdout.count("\n") == 1
    assert refused.returncode == 1 and refused.stdout == ""
    assert "No user 'nobody@example.test'" in refused.stderr


# --- the admin's pages -------------------------------------------------------------------------


def login(client, email, host=ALPHA):
    response = client.post("/login/", {"username": email, "password": PASSWORD}, **host)
    assert response.status_code == 302, response.content


def test_the_admin_makes_a_key_that_is_shown_once(client, in_alpha):
    sales = make_user(Role.SALES)
    login(client, "admin@alpha.test")

    made = client.post(
        "/settings/api-keys/new/",
        {"name": "<b>Partner</b> sync", "user": sales.pk, "read_only": "on"},
        **ALPHA,
    )

    assert made.status_code == 200
    key_text = KEY_PATTERN.search(made.content.decode()).group()
    assert "no-store" in made["Cache-Control"]
    assert b"shown only this once" in made.content
    assert b"&lt;b&gt;Partner&lt;/b&gt; sync" in made.content
    key = api_key_authenticate(key_text)
    assert (key.user, key.read_only, key.created_by.email) == (sales, True, "admin@alpha.test")

    listing = client.get("/settings/api-keys/", **ALPHA)
    assert listing.status_code == 200
    assert key.prefix.encode() in listing.content
    assert key_text.encode() not in listing.content
    assert key_text.split("_", 2)[2].encode() not in listing.content


def test_a_key_form_with_errors_keeps_what_was_typed(client, in_alpha):
    login(client, "admin@alpha.test")

    answer = client.post("/settings/api-keys/new/", {"name": "Sync", "user": 999999}, **ALPHA)

    assert answer.status_code == 200
    assert answer.context["form"].errors["user"]
    assert b'value="Sync"' in answer.content
    assert not ApiKey.objects.exists()


def test_the_admin_revokes_a_key_after_confirming(client, alpha):
    key, key_text = make_key(alpha)
    login(client, "admin@alpha.test")
    url = f"/settings/api-keys/{key.pk}/revoke/"

    confirm = client.get(url, **ALPHA)
    assert confirm.status_code == 200 and b"cannot be undone" in confirm.content
    assert call(alpha, key=key_text).status_code == 200

    done = client.post(url, **ALPHA)

    assert done.status_code == 302 and done.url == "/settings/api-keys/"
    assert call(alpha, key=key_text).status_code == 401
    assert b"Revoked" in client.get("/settings/api-keys/", **ALPHA).content
    again = client.post(url, follow=True, **ALPHA)
    assert "was already revoked" in again.content.decode()


@pytest.mark.parametrize("role", [Role.MANAGER, Role.SALES, Role.MARKETING, Role.PARTNER])
def test_only_admins_reach_the_key_pages(client, alpha, role):
    key, _text = make_key(alpha)
    with schema_context(alpha.schema_name):
        make_user(role)
    login(client, f"{role}@alpha.test")

    assert client.get("/settings/api-keys/", **ALPHA).status_code == 403
    assert client.get("/settings/api-keys/new/", **ALPHA).status_code == 403
    assert client.post(f"/settings/api-keys/{key.pk}/revoke/", **ALPHA).status_code == 403
    with schema_context(alpha.schema_name):
        assert ApiKey.objects.get(pk=key.pk).revoked_at is None


def test_betas_admin_never_sees_or_revokes_alphas_keys(client, alpha, beta):
    key, _text = make_key(alpha, name="Alpha's secret sync")
    login(client, "admin@beta.test", host=BETA)

    listing = client.get("/settings/api-keys/", **BETA)

    assert listing.status_code == 200
    assert key.prefix.encode() not in listing.content and b"secret sync" not in listing.content
    assert client.get(f"/settings/api-keys/{key.pk}/revoke/", **BETA).status_code == 404
    assert client.post(f"/settings/api-keys/{key.pk}/revoke/", **BETA).status_code == 404
    with schema_context(alpha.schema_name):
        assert ApiKey.objects.get(pk=key.pk).revoked_at is None


def test_the_key_list_runs_a_fixed_number_of_queries(client, alpha, django_assert_max_num_queries):
    for n in range(5):
        make_key(alpha, name=f"Key {n}")
    login(client, "admin@alpha.test")

    with django_assert_max_num_queries(8):
        response = client.get("/settings/api-keys/", **ALPHA)

    assert response.content.count(b'data-testid="api-key-row"') == 5


# --- through the real API --------------------------------------------------------------------


def test_a_key_lists_the_tenants_users_through_the_api_with_rate_headers(client, alpha):
    alpha.api_rate_limit = 3
    alpha.save(update_fields=["api_rate_limit"])
    _key, key_text = make_key(alpha)
    bearer = {**ALPHA, "HTTP_AUTHORIZATION": f"Bearer {key_text}"}

    answers = [client.get("/api/v1/users/", **bearer) for _ in range(4)]

    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert "admin@alpha.test" in {u["email"] for u in body(answers[0])["results"]}
    assert [a["X-RateLimit-Remaining"] for a in answers] == ["2", "1", "0", "0"]
    assert int(answers[-1]["Retry-After"]) > 0


def test_through_the_api_alphas_key_gets_401_on_betas_host(client, alpha, beta):
    _key, key_text = make_key(alpha)

    response = client.get("/api/v1/users/", HTTP_AUTHORIZATION=f"Bearer {key_text}", **BETA)

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"
    assert body(response) == {"detail": "Invalid or revoked API key."}


def test_through_the_api_a_read_only_key_may_not_create(client, alpha):
    _key, key_text = make_key(alpha, read_only=True)

    response = client.post(
        "/api/v1/accounts/",
        data=json.dumps({"name": "Initech"}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {key_text}",
        **ALPHA,
    )

    assert response.status_code == 403
    assert body(response) == {"detail": "This API key is read-only."}
    with schema_context(alpha.schema_name):
        from contacts.models import Account

        assert not Account.objects.filter(name="Initech").exists()


def test_through_the_api_refused_calls_are_counted_and_carry_the_rate_headers(client, alpha):
    alpha.api_rate_limit = 3
    alpha.save(update_fields=["api_rate_limit"])
    with schema_context(alpha.schema_name):
        marketer = make_user(Role.MARKETING)
    _key, read_only = make_key(alpha, read_only=True)
    _key, marketing = make_key(alpha, user=marketer)

    def bearer(key_text):
        return {**ALPHA, "HTTP_AUTHORIZATION": f"Bearer {key_text}"}

    writes = [
        client.post(
            "/api/v1/accounts/",
            data=json.dumps({"name": "Initech"}),
            content_type="application/json",
            **bearer(read_only),
        )
        for _ in range(2)
    ]
    missing = client.get("/api/v1/accounts/999999/", **bearer(read_only))
    over = client.get("/api/v1/accounts/", **bearer(read_only))
    role = client.get("/api/v1/opportunities/", **bearer(marketing))

    assert [a.status_code for a in [*writes, missing, over]] == [403, 403, 404, 429]
    assert body(writes[0]) == {"detail": "This API key is read-only."}
    assert [a["X-RateLimit-Remaining"] for a in [*writes, missing, over]] == ["2", "1", "0", "0"]
    assert role.status_code == 403 and "role" in body(role)["detail"]
    assert (role["X-RateLimit-Limit"], role["X-RateLimit-Remaining"]) == ("3", "2")
