"""`make run`'s caught mail read in the browser: the app stamps each message with its tenant, the
catcher (a real aiosmtpd server writing a Maildir) keeps it, and each tenant's users see only
their own messages, newest first; without the catcher the pages do not exist."""

import pytest
from aiosmtpd.controller import Controller
from django.core.mail import EmailMultiAlternatives, send_mail
from django.db import connection
from django.test import Client
from django_tenants.utils import schema_context

from crm.embedded import free_port
from crm.mailcatcher import HEADER, MaildirHandler, caught_list
from crm.users.models import Role
from crm.users.services import user_create
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

ALPHA = {"HTTP_HOST": "alpha.localhost"}
BETA = {"HTTP_HOST": "beta.localhost"}


@pytest.fixture
def catcher(settings, tmp_path):
    """The catcher on a free port, and the app's mail going to it as `make run` sets it up;
    returns the Maildir folder."""
    folder = str(tmp_path / "mail")
    controller = Controller(MaildirHandler(folder), hostname="127.0.0.1", port=free_port())
    controller.start()
    settings.EMAIL_BACKEND = "crm.mailcatcher.TenantStampingBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = controller.port
    settings.EMAIL_USE_TLS = False
    settings.CRM_MAILCATCHER_DIR = folder
    yield folder
    controller.stop()


def send_in(tenant, subject: str, to: str = "ann@example.test", **headers) -> None:
    """Send a message with an HTML part and an attachment from within the tenant's schema."""
    with schema_context(tenant.schema_name):
        message = EmailMultiAlternatives(
            subject, f"Text of {subject}", "no-reply@localhost", [to], headers=headers
        )
        message.attach_alternative(
            f'<p class="greeting">HTML of {subject}</p><script>alert("x")</script>', "text/html"
        )
        message.attach("price-list.csv", "sku,price\nA1,10\n", "text/csv")
        message.send()


def logged_in(tenant, extra) -> Client:
    client = Client()
    client.post("/login/", {"username": f"admin@{tenant.slug}.test", "password": PASSWORD}, **extra)
    return client


def test_each_tenant_sees_only_its_own_mail_newest_first(catcher, alpha, beta):
    send_in(alpha, "Alpha first")
    # A header that claims another tenant is replaced by the real stamp.
    send_in(alpha, "Alpha second", **{HEADER: beta.schema_name})
    send_in(beta, "Beta only", to="ann@example.test")
    connection.set_schema_to_public()
    send_mail("Public sign-up", "Welcome", "no-reply@localhost", ["ann@example.test"])

    alpha_page = logged_in(alpha, ALPHA).get("/mail/", **ALPHA)
    beta_page = logged_in(beta, BETA).get("/mail/", **BETA)

    assert alpha_page.status_code == beta_page.status_code == 200
    assert [m.subject for m in alpha_page.context["page"]] == ["Alpha second", "Alpha first"]
    assert [m.subject for m in beta_page.context["page"]] == ["Beta only"]
    assert "Beta only" not in alpha_page.content.decode()
    assert "Alpha first" not in beta_page.content.decode()
    assert [m.subject for m in caught_list(folder=catcher, schema="public")] == ["Public sign-up"]


def test_a_message_opens_with_its_html_sandboxed_its_text_and_attachments(catcher, alpha, beta):
    send_in(alpha, "Price list")
    send_in(beta, "Beta's secret")
    (mine,) = caught_list(folder=catcher, schema=alpha.schema_name)
    (theirs,) = caught_list(folder=catcher, schema=beta.schema_name)
    client = logged_in(alpha, ALPHA)

    page = client.get(f"/mail/{mine.key}/", **ALPHA)

    assert page.status_code == 200
    text = page.content.decode()
    # The HTML is only ever an attribute of a sandboxed frame: escaped, and never run.
    assert '<iframe title="HTML version" class="email-html" sandbox srcdoc="' in text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in text
    assert "<script>alert" not in text
    assert "Text of Price list" in text
    assert "price-list.csv" in text and "text/csv" in text
    # Another tenant's message, or none at all, is not there.
    assert client.get(f"/mail/{theirs.key}/", **ALPHA).status_code == 404
    assert client.get("/mail/1234567890.M1P1Q1.nohost/", **ALPHA).status_code == 404
    assert client.get("/mail/..%2F..%2Fetc%2Fpasswd/", **ALPHA).status_code == 404


def test_the_menu_links_to_it_and_it_needs_a_login(catcher, alpha):
    client = logged_in(alpha, ALPHA)
    assert 'href="/mail/"' in client.get("/", **ALPHA).content.decode()

    anonymous = Client().get("/mail/", **ALPHA)
    assert anonymous.status_code == 302 and "/login/" in anonymous["Location"]


def test_a_salesperson_cannot_read_the_tenants_mail(catcher, alpha):
    with schema_context(alpha.schema_name):
        sales = user_create(
            email="mail-sales@alpha.test", password=PASSWORD, full_name="S", role=Role.SALES
        )
    send_in(alpha, "Your invitation")
    client = Client()
    client.post("/login/", {"username": sales.email, "password": PASSWORD}, **ALPHA)
    assert client.get("/mail/", **ALPHA).status_code == 403
    assert 'href="/mail/"' not in client.get("/", **ALPHA).content.decode()


def test_without_the_catcher_there_is_no_page_and_no_menu_entry(alpha, settings):
    settings.CRM_MAILCATCHER_DIR = ""
    client = logged_in(alpha, ALPHA)

    assert client.get("/mail/", **ALPHA).status_code == 404
    assert client.get("/mail/1234567890.M1P1Q1.host/", **ALPHA).status_code == 404
    assert Client().get("/mail/", **ALPHA).status_code == 404
    assert 'href="/mail/"' not in client.get("/", **ALPHA).content.decode()


def test_an_empty_catcher_says_so(catcher, alpha):
    page = logged_in(alpha, ALPHA).get("/mail/", **ALPHA)

    assert page.status_code == 200
    assert "No mail caught yet." in page.content.decode()
