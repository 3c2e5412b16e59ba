"""Opens and clicks of campaign e-mail: tracked links and pixel in the sent message, the public
pixel and redirect, no open redirect whatever is put in the link, and the campaign's counts."""

import re

import pytest
from django.core import signing
from django.test import Client
from django_tenants.utils import schema_context

from campaigns import engagement, sending
from campaigns.models import CampaignLink, CampaignMember, OutboxMessage
from campaigns.segments import segment_create
from campaigns.services import campaign_create
from campaigns.templating import email_template_create
from contacts.services import contact_create
from crm.users.models import User
from tests.conftest import PASSWORD
from tracking.models import TimelineEntry

pytestmark = pytest.mark.django_db

ALPHA = {"HTTP_HOST": "alpha.localhost"}
BETA = {"HTTP_HOST": "beta.localhost"}
OFFER = "https://shop.example/offer?a=1&b=2"
DOCS = "http://docs.example/start"
HTML = (
    "<html><body><p>Hi {{ contact.first_name }}</p>"
    '<a href="https://shop.example/offer?a=1&amp;b=2">Offer</a> '
    f'<a href="{DOCS}">Docs</a> <a href="mailto:sales@shop.example">Write</a>'
    "</body></html>"
)
EVALUATING = {
    "op": "and",
    "rules": [{"field": "lifecycle_stage", "operator": "eq", "value": "evaluation"}],
}


@pytest.fixture
def admin(in_alpha):
    return User.objects.get(email="admin@alpha.test")


def _html_of(message) -> str:
    return message.get_payload(1).get_payload(decode=True).decode()


def _path(url: str) -> str:
    return "/" + url.split("/", 3)[3]


@pytest.fixture
def sent(admin, mailbox):
    """A campaign sent to two contacts; returns (campaign, {address: html body})."""
    template = email_template_create(actor=admin, name="Offer", subject="Hi", html_body=HTML)
    segment = segment_create(actor=admin, name="Evaluating", rules=EVALUATING)
    addresses = [f"eng{i}-{admin.pk}@engage.test" for i in range(2)]
    for i, address in enumerate(addresses):
        contact_create(actor=admin, first_name=f"E{i}", email=address, lifecycle_stage="evaluation")
    campaign = campaign_create(actor=admin, name="Offer", kind="email", email_template=template)
    campaign.segments.add(segment)
    sending.campaign_send(actor=admin, campaign=campaign)
    for first, last in sending.dispatch_ranges(campaign_id=campaign.pk):
        sending.chunk_send(campaign_id=campaign.pk, first_id=first, last_id=last)
    return campaign, {address: _html_of(mailbox.wait_for(address)) for address in addresses}


def _links(html: str) -> list[str]:
    return re.findall(r'<a\b[^>]*href="([^"]+)"', html)


def _pixel(html: str) -> str:
    return _path(re.search(r'<img src="([^"]+)" width="1" height="1" alt="">', html).group(1))


def _click(html: str, n: int) -> str:
    return _path([url for url in _links(html) if "/c/" in url][n])


def _nothing_recorded():
    assert not TimelineEntry.objects.filter(
        kind__in=[TimelineEntry.Kind.EMAIL_CLICK, TimelineEntry.Kind.EMAIL_OPEN]
    ).exists()
    assert not CampaignLink.objects.filter(clicks__gt=0).exists()
    assert not OutboxMessage.objects.filter(opened_at__isnull=False).exists()
    assert not CampaignMember.objects.filter(status__in=["opened", "clicked"]).exists()


def test_sent_messages_have_tracked_links_and_a_pixel_and_the_unsubscribe_link_untouched(sent):
    campaign, bodies = sent
    html = next(iter(bodies.values()))
    links = _links(html)

    assert len([url for url in links if url.startswith("http://alpha.localhost")]) == 3
    assert [url for url in links if "/c/" in url] == links[:2]
    assert "mailto:sales@shop.example" in links
    assert re.fullmatch(r"http://alpha\.localhost(:\d+)?/u/[^/]+/", links[3])
    assert "shop.example/offer" not in html and "docs.example" not in html
    assert re.search(r'<img src="http://alpha\.localhost(:\d+)?/o/[^"]+\.gif"[^>]*></body>', html)
    assert set(CampaignLink.objects.filter(campaign=campaign).values_list("url", flat=True)) == {
        OFFER,
        DOCS,
    }
    # Each recipient's links are their own.
    first, second = bodies.values()
    assert set(_links(first)[:2]).isdisjoint(_links(second)[:2])


def test_links_in_the_plain_text_are_tracked_too_and_lead_to_the_same_place(admin, mailbox):
    text = (
        f"Hi {{{{ contact.first_name }}}}, see {OFFER}. Or read {DOCS}, "
        "and write to sales@shop.example."
    )
    template = email_template_create(
        actor=admin, name="Plain", subject="Hi", html_body=HTML, text_body=text
    )
    contact_create(
        actor=admin, first_name="T", email="text@engage.test", lifecycle_stage="evaluation"
    )
    segment = segment_create(actor=admin, name="Evaluating", rules=EVALUATING)
    campaign = campaign_create(actor=admin, name="Plain", kind="email", email_template=template)
    campaign.segments.add(segment)
    sending.campaign_send(actor=admin, campaign=campaign)
    for first, last in sending.dispatch_ranges(campaign_id=campaign.pk):
        sending.chunk_send(campaign_id=campaign.pk, first_id=first, last_id=last)

    body = mailbox.wait_for("text@engage.test").get_payload(0).get_payload(decode=True).decode()
    assert "shop.example/offer" not in body and "docs.example" not in body
    assert "sales@shop.example." in body
    offer, docs = re.findall(r"http://alpha\.localhost(?::\d+)?(/c/[^/\s]+/)", body)
    assert body.count(". Or read ") == 1
    response = Client().get(offer, **ALPHA)
    assert (response.status_code, response["Location"]) == (302, OFFER)
    assert Client().get(docs, **ALPHA)["Location"] == DOCS
    assert set(CampaignLink.objects.filter(campaign=campaign).values_list("url", flat=True)) == {
        OFFER,
        DOCS,
    }


def test_opens_are_counted_and_the_first_goes_on_the_timeline(sent):
    campaign, bodies = sent
    address, html = next(iter(bodies.items()))
    outbox = OutboxMessage.objects.get(campaign=campaign, email=address)

    for _ in range(2):
        response = Client().get(_pixel(html), **ALPHA)
        assert response.status_code == 200 and response["Content-Type"] == "image/gif"
        assert response.content.startswith(b"GIF89a")

    outbox.refresh_from_db()
    assert outbox.opens == 2 and outbox.opened_at is not None and outbox.clicked_at is None
    opens = TimelineEntry.objects.filter(kind="email_open")
    assert [entry.contact_id for entry in opens] == [outbox.contact_id]
    assert "Offer" in opens[0].summary
    member = CampaignMember.objects.get(campaign=campaign, contact_id=outbox.contact_id)
    assert member.status == "opened"


def test_a_click_redirects_to_the_stored_url_and_is_recorded_and_counted(sent):
    campaign, bodies = sent
    address, html = next(iter(bodies.items()))
    outbox = OutboxMessage.objects.get(campaign=campaign, email=address)
    client = Client()

    offer = client.get(_click(html, 0), **ALPHA)
    assert offer.status_code == 302 and offer["Location"] == OFFER
    assert client.get(_click(html, 0), **ALPHA)["Location"] == OFFER
    assert client.get(_click(html, 1), **ALPHA)["Location"] == DOCS

    clicks = dict(CampaignLink.objects.values_list("url", "clicks"))
    assert clicks == {OFFER: 2, DOCS: 1}
    entries = TimelineEntry.objects.filter(kind="email_click", contact_id=outbox.contact_id)
    assert sorted(entries.values_list("detail", flat=True)) == [DOCS, OFFER, OFFER]
    outbox.refresh_from_db()
    # A click without the pixel loaded still counts as opened.
    assert outbox.clicked_at is not None and outbox.opened_at is not None
    member = CampaignMember.objects.get(campaign=campaign, contact_id=outbox.contact_id)
    assert member.status == "clicked"
    # A late open does not move the member back.
    client.get(_pixel(html), **ALPHA)
    member.refresh_from_db()
    assert member.status == "clicked"


def _token(html: str) -> str:
    return _click(html, 0).split("/")[2]


BAD = {
    "flipped": lambda token, **_: token[:-3] + ("x" if token[-3] != "x" else "y") + token[-2:],
    "other salt": lambda token, **ids: signing.dumps({"t": "alpha", **ids}, salt="other"),
    "open token": lambda token, m, **_: engagement.open_token(outbox_id=m),
    "unsigned": lambda token, **ids: signing.b64_encode(b'{"t":"alpha","m":1,"l":1}').decode(),
    "not a token": lambda token, **_: "nothing-here",
    "evil": lambda token, **_: "//evil.example",
    "backslashes": lambda token, **_: "\\\\evil.example",
    "javascript": lambda token, **_: "javascript:alert(1)",
    "crlf": lambda token, **_: "%0d%0aLocation:%20http://evil.example",
    "encoded": lambda token, **_: "%2F%2Fevil.example",
    "encoded backslashes": lambda token, **_: "%5C%5Cevil.example",
    "double encoded": lambda token, **_: "%252F%252Fevil.example",
    "token then evil": lambda token, **_: f"{token}/http://evil.example",
    "evil then token": lambda token, **_: f"https://evil.example/{token}",
}


@pytest.mark.parametrize("change", BAD.values(), ids=BAD.keys())
def test_altered_forged_or_attacker_shaped_links_redirect_nowhere(sent, change):
    _, bodies = sent
    html = next(iter(bodies.values()))
    data = engagement.click_token_read(_token(html))

    response = Client().get(f"/c/{change(_token(html), m=data['m'], l=data['l'])}/", **ALPHA)

    assert response.status_code == 400
    assert "Location" not in response
    assert "evil" not in response.content.decode()
    _nothing_recorded()


def test_a_link_of_another_campaign_or_another_message_id_redirects_nowhere(admin, sent):
    _, bodies = sent
    html = next(iter(bodies.values()))
    data = engagement.click_token_read(_token(html))
    other = campaign_create(actor=admin, name="Other", kind="email")
    foreign = CampaignLink.objects.create(campaign=other, url="https://evil.example/")

    for token in (
        engagement.click_token(outbox_id=data["m"], link_id=foreign.pk),
        engagement.click_token(outbox_id=data["m"] + 1000, link_id=data["l"]),
    ):
        response = Client().get(f"/c/{token}/", **ALPHA)
        assert response.status_code == 400 and "Location" not in response
    _nothing_recorded()


def test_a_bad_pixel_token_still_gets_the_gif_and_records_nothing(sent):
    _, bodies = sent
    html = next(iter(bodies.values()))
    pixel = _pixel(html)

    # One character of the signature changed (to another: an "x" made "x" would change nothing).
    flipped = pixel[:-8] + ("x" if pixel[-8] != "x" else "y") + pixel[-7:]
    for path in (flipped, "/o/nothing.gif", "/o/" + _token(html) + ".gif"):
        response = Client().get(path, **ALPHA)
        assert response.status_code == 200 and response.content.startswith(b"GIF89a")
    _nothing_recorded()


def test_alphas_links_do_nothing_on_betas_host(sent, beta):
    _, bodies = sent
    html = next(iter(bodies.values()))

    response = Client().get(_click(html, 0), **BETA)
    assert response.status_code == 400 and "Location" not in response
    assert Client().get(_pixel(html), **BETA).content.startswith(b"GIF89a")
    _nothing_recorded()
    with schema_context(beta.schema_name):
        assert not TimelineEntry.objects.filter(kind__in=["email_open", "email_click"]).exists()


def test_the_campaign_page_shows_the_counts_and_clicks_per_link(admin, sent, client, beta):
    campaign, bodies = sent
    first, second = bodies.values()
    Client().get(_pixel(first), **ALPHA)
    Client().get(_click(second, 1), **ALPHA)
    # The unsubscribe link of the message (it names the campaign).
    Client().post(_path(_links(first)[3]), **ALPHA)
    CampaignMember.objects.filter(
        pk=CampaignMember.objects.filter(campaign=campaign).first().pk
    ).update(status="responded")

    client.post("/login/", {"username": admin.email, "password": PASSWORD}, **ALPHA)
    page = client.get(f"/campaigns/{campaign.pk}/", **ALPHA)

    assert dict(page.context["engagement"]) == {
        "Sent": 2,
        "Failed": 0,
        "Delivered": 0,
        "Bounced": 0,
        "Complained": 0,
        "Opened": 2,
        "Clicked": 1,
        "Unsubscribed": 1,
        "Responded": 1,
    }
    text = page.content.decode()
    assert re.search(r"<td>http://docs\.example/start</td><td>1</td>", text)
    assert re.search(r"<td>https://shop\.example/offer\?a=1&amp;b=2</td><td>0</td>", text)

    with schema_context(beta.schema_name):
        beta_admin = User.objects.get(email="admin@beta.test")
    client.post("/logout/", **ALPHA)
    client.post("/login/", {"username": beta_admin.email, "password": PASSWORD}, **BETA)
    assert client.get(f"/campaigns/{campaign.pk}/", **BETA).status_code == 404
