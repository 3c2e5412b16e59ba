import re

import pytest
from django.core import mail
from django.db import connection
from django_tenants.utils import schema_context

from crm.users.models import Role, User
from crm.users.services import user_create
from tests.conftest import PASSWORD, body_of

pytestmark = pytest.mark.django_db

ALPHA = {"HTTP_HOST": "alpha.localhost"}
BETA = {"HTTP_HOST": "beta.localhost"}

NAV = {
    Role.ADMIN: {
        "Accounts",
        "Contacts",
        "Opportunities",
        "Pipeline",
        "Campaigns",
        "Users",
        "API",
        "Webhooks",
        "Tracking",
        "Scoring",
        "Ready to talk",
        "Reports",
    },
    Role.MANAGER: {
        "Accounts",
        "Contacts",
        "Opportunities",
        "Pipeline",
        "Campaigns",
        "Ready to talk",
        "Reports",
    },
    Role.SALES: {"Accounts", "Contacts", "Opportunities", "Pipeline", "Ready to talk"},
    Role.MARKETING: {"Accounts", "Contacts", "Campaigns", "Reports"},
    Role.PARTNER: {"Accounts", "Contacts", "Opportunities", "Pipeline"},
}
PAGES = {
    "Accounts": "/accounts/",
    "Contacts": "/contacts/",
    "Opportunities": "/opportunities/",
    "Pipeline": "/opportunities/board/",
    "Campaigns": "/campaigns/",
    "Users": "/users/",
    "API": "/settings/api-keys/",
    "Webhooks": "/settings/webhooks/",
    "Tracking": "/tracking/",
    "Scoring": "/settings/scoring/",
    "Ready to talk": "/ready/",
    "Reports": "/reports/",
}


def make_user(role, email=None, **kwargs):
    return user_create(
        email=email or f"{role}@alpha.test",
        password=PASSWORD,
        full_name=f"{role.title()} Person",
        role=role,
        **kwargs,
    )


def login(client, email, host=ALPHA):
    response = client.post("/login/", {"username": email, "password": PASSWORD}, **host)
    assert response.status_code == 302, response.content
    return response


@pytest.mark.parametrize("role", list(Role))
def test_each_role_logs_in_and_sees_its_name_role_and_only_its_modules(client, in_alpha, role):
    email = "admin@alpha.test" if role == Role.ADMIN else make_user(role).email

    login(client, email)
    home = client.get("/", **ALPHA)

    assert home.status_code == 200
    user = User.objects.get(email=email)
    assert user.full_name.encode() in home.content
    assert f">{user.get_role_display()}<".encode() in home.content
    shown = {item.label for item in home.context["navigation"]} - {"Home", "Calendar"}
    assert shown == NAV[role]
    for label, path in PAGES.items():
        expected = 200 if label in NAV[role] else 403
        assert client.get(path, **ALPHA).status_code == expected, (role, path)


def test_pages_need_a_login(client, alpha):
    response = client.get("/contacts/", **ALPHA)

    assert response.status_code == 302
    assert response.url.startswith("/login/")


def test_a_wrong_password_is_refused_with_a_message(client, alpha):
    response = client.post("/login/", {"username": "admin@alpha.test", "password": "nope"}, **ALPHA)

    assert response.status_code == 200
    assert b"correct email" in response.content.lower() or b"enter a correct" in response.content


def test_logout_ends_the_session(client, alpha):
    login(client, "admin@alpha.test")

    client.post("/logout/", **ALPHA)

    assert client.get("/", **ALPHA).status_code == 302


def test_a_login_on_one_tenant_does_not_carry_to_another(client, alpha, beta):
    login(client, "admin@alpha.test")
    alpha_session = client.cookies["sessionid"].value

    response = client.get("/", **BETA)

    assert response.status_code == 302 and response.url.startswith("/login/")
    # Even a session key lifted from alpha means nothing on beta: sessions live in each schema.
    client.cookies["sessionid"] = alpha_session
    assert client.get("/", **BETA).status_code == 302


def test_lists_show_only_the_tenants_own_records(client, alpha, beta):
    from contacts.models import Contact

    with schema_context(alpha.schema_name):
        Contact.objects.create(first_name="Only", last_name="InAlpha")
    with schema_context(beta.schema_name):
        Contact.objects.create(first_name="Only", last_name="InBeta")
    login(client, "admin@alpha.test")

    page = client.get("/contacts/", **ALPHA)

    assert b"InAlpha" in page.content and b"InBeta" not in page.content


# --- managing users ---------------------------------------------------------------------------


def test_admin_invites_a_user_who_gets_a_link_to_join(
    client, in_alpha, mailbox, django_capture_on_commit_callbacks
):
    login(client, "admin@alpha.test")

    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(
            "/users/invite/",
            {"full_name": "New Person", "email": "New@Alpha.test", "role": "sales"},
            **ALPHA,
        )

    assert response.status_code == 302
    invited = User.objects.get(email="new@alpha.test")
    assert invited.is_invited and not invited.has_usable_password()
    assert invited.role == Role.SALES
    assert len(callbacks) == 1  # the invitation task is queued once the user row is committed
    # Run the task body here; tests/test_celery.py sends it through a real worker.
    from crm.users.tasks import invitation_send

    assert invitation_send.run(invited.pk) is True
    link = re.search(
        r"https?://alpha\.localhost\S*/invitation/\S+", body_of(mailbox.wait_for("new@alpha.test"))
    )
    assert link

    client.post("/logout/", **ALPHA)
    path = re.sub(r"^https?://[^/]+", "", link.group(0))
    form = client.get(path, **ALPHA, follow=True)
    joined = client.post(
        form.redirect_chain[-1][0],
        {"new_password1": "brand-new-pass-77", "new_password2": "brand-new-pass-77"},
        **ALPHA,
    )

    assert joined.status_code == 302
    invited.refresh_from_db()
    assert not invited.is_invited and invited.check_password("brand-new-pass-77")
    assert client.get("/", **ALPHA).context["user"] == invited


def test_inviting_an_existing_email_is_a_field_error(client, in_alpha):
    login(client, "admin@alpha.test")

    response = client.post(
        "/users/invite/",
        {"full_name": "Dup", "email": "ADMIN@alpha.test", "role": "sales"},
        **ALPHA,
    )

    assert response.status_code == 200
    assert "already exists" in " ".join(response.context["form"].errors["email"])


def test_admin_changes_a_role(client, in_alpha):
    member = make_user(Role.SALES)
    login(client, "admin@alpha.test")

    response = client.post(f"/users/{member.pk}/", {"role": "manager"}, **ALPHA)

    assert response.status_code == 302
    member.refresh_from_db()
    assert member.role == Role.MANAGER


def test_a_deactivated_user_is_logged_out_and_cannot_log_in(client, in_alpha):
    from django.test import Client

    member = make_user(Role.SALES)
    theirs = Client()
    login(theirs, member.email)
    login(client, "admin@alpha.test")

    client.post(f"/users/{member.pk}/active/", {"active": "0"}, **ALPHA)

    member.refresh_from_db()
    assert not member.is_active
    assert theirs.get("/", **ALPHA).status_code == 302
    refused = theirs.post("/login/", {"username": member.email, "password": PASSWORD}, **ALPHA)
    assert refused.status_code == 200


def test_the_last_admin_cannot_be_demoted_or_deactivated(client, in_alpha):
    admin = User.objects.get(email="admin@alpha.test")
    other_admin = make_user(Role.ADMIN, email="admin2@alpha.test")
    login(client, other_admin.email)
    client.post(f"/users/{admin.pk}/active/", {"active": "0"}, **ALPHA)
    admin.refresh_from_db()
    assert not admin.is_active  # allowed: another admin remains

    response = client.post(f"/users/{other_admin.pk}/", {"role": "sales"}, **ALPHA)

    assert response.status_code == 200
    assert "own admin access" in " ".join(response.context["form"].errors["role"])
    other_admin.refresh_from_db()
    assert other_admin.role == Role.ADMIN


def test_only_admins_manage_users(client, in_alpha):
    member = make_user(Role.MANAGER)
    login(client, member.email)

    assert client.get("/users/", **ALPHA).status_code == 403
    assert (
        client.post(
            "/users/invite/", {"full_name": "X", "email": "x@x.test", "role": "admin"}, **ALPHA
        ).status_code
        == 403
    )
    assert client.post(f"/users/{member.pk}/", {"role": "admin"}, **ALPHA).status_code == 403
    member.refresh_from_db()
    assert member.role == Role.MANAGER


def test_an_admin_cannot_manage_another_tenants_users(client, alpha, beta):
    with schema_context(beta.schema_name):
        beta_user = make_user(Role.SALES, email="someone@beta.test")
    login(client, "admin@alpha.test")
    # alpha has no user with that primary key (only its admin, whose pk is lower)
    with schema_context(alpha.schema_name):
        assert not User.objects.filter(email="someone@beta.test").exists()

    response = client.post(f"/users/{beta_user.pk}/active/", {"active": "0"}, **ALPHA)

    with schema_context(beta.schema_name):
        beta_user.refresh_from_db()
        assert beta_user.is_active
    assert response.status_code in (302, 404)


# --- password reset ---------------------------------------------------------------------------


def test_password_reset_by_email_end_to_end(client, in_alpha, mailbox):
    response = client.post("/password-reset/", {"email": "admin@alpha.test"}, **ALPHA)
    assert response.status_code == 302

    message = mailbox.wait_for("admin@alpha.test")
    link = re.search(r"http://alpha\.localhost\S*/password-reset/\S+/\S+/", body_of(message))
    assert link, body_of(message)
    path = re.sub(r"^https?://[^/]+", "", link.group(0))
    form = client.get(path, **ALPHA, follow=True)
    done = client.post(
        form.redirect_chain[-1][0],
        {"new_password1": "another-pass-2027", "new_password2": "another-pass-2027"},
        **ALPHA,
    )

    assert done.status_code == 302
    assert User.objects.get(email="admin@alpha.test").check_password("another-pass-2027")
    reused = client.get(path, **ALPHA, follow=True)
    assert b"no longer works" in reused.content


def test_password_reset_for_an_unknown_email_sends_nothing_and_says_the_same(client, alpha):
    mail.outbox = []
    response = client.post("/password-reset/", {"email": "ghost@alpha.test"}, **ALPHA)

    assert response.status_code == 302
    assert mail.outbox == []
    connection.set_schema_to_public()
