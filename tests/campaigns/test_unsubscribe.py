import re

import pytest
from django.core import signing
from django.test import Client
from django_tenants.utils import schema_context

from campaigns import templating, unsubscribe
from campaigns.models import Suppression
from contacts import services
from crm.users.models import Role
from crm.users.services import user_create
from tests.conftest import PASSWORD, body_of
from tracking.models import TimelineEntry

pytestmark = pytest.mark.django_db

ALPHA = {"HTTP_HOST": "alpha.localhost"}
BETA = {"HTTP_HOST": "beta.localhost"}


@pytest.fixture
def marketer(in_alpha):
    return user_create(
        email="mia@alpha.test", password=PASSWORD, full_name="Mia", role=Role.MARKETING
    )


@pytest.fixture
def contact(marketer):
    return services.contact_create(
        actor=marketer, first_name="Peter", last_name="Gibbons", email="Peter@Initech.test"
    )


def path_of(url: str) -> str:
    return "/" + url.split("/", 3)[3]


def token_path(contact) -> str:
    return path_of(unsubscribe.UnsubscribeLinks().url(contact_id=contact.pk, email=contact.email))


def test_get_asks_to_confirm_and_post_unsubscribes_without_a_session(contact):
    path = token_path(contact)
    anonymous = Client(enforce_csrf_checks=True)

    confirm = anonymous.get(path, **ALPHA)
    assert confirm.status_code == 200
    assert "Peter@Initech.test" in confirm.content.decode()
    assert not Suppression.objects.exists()

    done = anonymous.post(path, **ALPHA)
    assert done.status_code == 200
    suppression = Suppression.objects.get()
    assert (suppression.email, suppression.reason) == ("Peter@Initech.test", "unsubscribed")
    assert TimelineEntry.objects.filter(contact=contact, summary__contains="unsubscribed").exists()
    assert not unsubscribe.can_receive_marketing(contact)

    # Twice is harmless: the address stays suppressed once.
    assert anonymous.post(path, **ALPHA).status_code == 200
    assert Suppression.objects.count() == 1


def test_one_click_post_from_a_mail_client(contact):
    response = Client(enforce_csrf_checks=True).post(
        token_path(contact),
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
        **ALPHA,
    )

    assert response.status_code == 200
    assert unsubscribe.suppressed(["peter@initech.TEST"]) == {"peter@initech.test"}


@pytest.mark.parametrize(
    "change",
    [
        lambda token: token[:-2] + ("AA" if not token.endswith("AA") else "BB"),
        lambda token: signing.dumps({"t": "alpha", "c": 1, "e": "x@y.test"}, salt="other"),
        lambda token: "not-a-token",
    ],
)
def test_altered_or_forged_tokens_change_nothing(contact, change):
    token = token_path(contact).split("/")[2]
    path = f"/u/{change(token)}/"

    assert Client().get(path, **ALPHA).status_code == 400
    assert Client().post(path, **ALPHA).status_code == 400
    assert not Suppression.objects.exists()


def test_a_token_made_in_alpha_does_nothing_on_betas_host(contact, beta):
    path = token_path(contact)

    assert Client().post(path, **BETA).status_code == 400
    assert not Suppression.objects.exists()
    with schema_context(beta.schema_name):
        assert not Suppression.objects.exists()


def test_who_may_receive_marketing(marketer, contact):
    assert unsubscribe.can_receive_marketing(contact)

    contact.do_not_email = True
    assert not unsubscribe.can_receive_marketing(contact)
    contact.do_not_email = False
    contact.email = ""
    assert not unsubscribe.can_receive_marketing(contact)

    bounced = services.contact_create(actor=marketer, first_name="B", email="b@bounce.test")
    unsubscribe.suppression_add(email="B@BOUNCE.test", reason=Suppression.Reason.BOUNCED)
    assert not unsubscribe.can_receive_marketing(bounced)
    assert unsubscribe.suppressed(["b@bounce.test", "c@ok.test", ""]) == {"b@bounce.test"}


def test_headers_for_one_click():
    headers = unsubscribe.message_headers(url="https://a.test/u/t/", mailto="leave@a.test")

    assert headers == {
        "List-Unsubscribe": "<https://a.test/u/t/>, <mailto:leave@a.test?subject=unsubscribe>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


def test_a_test_send_arrives_with_headers_and_a_link_that_unsubscribes(marketer, contact, mailbox):
    template = templating.email_template_create(
        actor=marketer,
        name="News",
        subject="Hi {{ contact.first_name }}",
        html_body="<p>Hi {{ contact.first_name }}</p>",
    )
    client = Client()
    client.post("/login/", {"username": marketer.email, "password": PASSWORD}, **ALPHA)

    sent = client.post(
        f"/campaigns/templates/{template.pk}/test/", {"contact": contact.pk}, **ALPHA
    )

    assert sent.status_code == 302
    message = mailbox.wait_for("mia@alpha.test")
    assert message["Subject"] == "Hi Peter"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    # A long header comes folded over lines.
    unfolded = re.sub(r"\s+", "", message["List-Unsubscribe"])
    url = re.fullmatch(r"<(http[^>]+)>", unfolded).group(1)
    assert url.startswith("http://alpha.localhost")
    assert f"Unsubscribe: {url}" in body_of(message)

    # The recipient of the test is who the link unsubscribes, with a one-click POST.
    assert Client().post(path_of(url), **ALPHA).status_code == 200
    assert unsubscribe.suppressed(["mia@alpha.test"]) == {"mia@alpha.test"}
