"""The campaign page's counts of what became of its e-mail (sent, delivered, bounced, opened,
clicked, unsubscribed, responded) in two queries, and unsubscribing through one campaign's
message, which that campaign counts."""

import re

import pytest
from django.test import Client
from django.utils import timezone
from django_tenants.utils import schema_context

from campaigns import selectors
from campaigns.models import CampaignMember, OutboxMessage, Suppression
from campaigns.services import campaign_create
from campaigns.unsubscribe import UnsubscribeLinks, unsubscribe_token_read
from contacts.services import contact_create
from crm.users.models import User
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

ALPHA = {"HTTP_HOST": "alpha.localhost"}
BETA = {"HTTP_HOST": "beta.localhost"}
Row = OutboxMessage.Status


@pytest.fixture
def admin(in_alpha):
    return User.objects.get(email="admin@alpha.test")


def _campaign(admin, name: str, contacts, states: list[dict]):
    """A campaign with one outbox row (and member) per contact, each row with `states`' fields."""
    campaign = campaign_create(actor=admin, name=name, kind="email")
    for n, (contact, fields) in enumerate(zip(contacts, states, strict=True)):
        OutboxMessage.objects.create(
            campaign=campaign,
            contact=contact,
            email=contact.email,
            message_id=f"<{campaign.pk}.{n}@alpha.localhost>",
            **fields,
        )
        CampaignMember.objects.create(campaign=campaign, contact=contact, status="sent")
    return campaign


@pytest.fixture
def contacts(admin):
    return [
        contact_create(actor=admin, first_name=f"C{i}", email=f"c{i}@counts.test") for i in range(6)
    ]


def test_engagement_counts_in_two_queries(admin, contacts, django_assert_max_num_queries):
    now = timezone.now()
    states = [
        {"status": Row.SENT, "delivered_at": now, "opened_at": now, "clicked_at": now},
        {"status": Row.SENT, "delivered_at": now, "opened_at": now, "unsubscribed_at": now},
        {"status": Row.SENT, "bounced_at": now, "bounce_reason": "550 no such user"},
        {"status": Row.SENT, "delivered_at": now, "complained_at": now},
        {"status": Row.FAILED, "error": "550 refused"},
        {"status": Row.QUEUED},
    ]
    campaign = _campaign(admin, "Counted", contacts, states)
    CampaignMember.objects.filter(campaign=campaign, contact=contacts[0]).update(
        status=CampaignMember.Status.CONVERTED
    )
    CampaignMember.objects.filter(campaign=campaign, contact=contacts[1]).update(
        status=CampaignMember.Status.RESPONDED
    )
    # Another campaign's rows count for it alone.
    _campaign(admin, "Other", contacts[:2], [{"status": Row.SENT, "delivered_at": now}] * 2)

    with django_assert_max_num_queries(2):
        counts = dict(selectors.engagement_counts(campaign))

    assert counts == {
        "Sent": 4,
        "Failed": 1,
        "Delivered": 3,
        "Bounced": 1,
        "Complained": 1,
        "Opened": 2,
        "Clicked": 1,
        "Unsubscribed": 1,
        "Responded": 2,
    }


def _path(url: str) -> str:
    return "/" + url.split("/", 3)[3]


def test_unsubscribing_through_a_campaigns_message_counts_for_that_campaign(admin, contacts):
    ann = contacts[0]
    spring = _campaign(admin, "Spring", [ann], [{"status": Row.SENT}])
    autumn = _campaign(admin, "Autumn", [ann], [{"status": Row.SENT}])
    url = UnsubscribeLinks(campaign=spring).url(contact_id=ann.pk, email=ann.email)
    assert unsubscribe_token_read(url.rstrip("/").rsplit("/", 1)[1])["p"] == spring.pk

    for _ in range(2):
        assert Client().post(_path(url), **ALPHA).status_code == 200

    stamped = dict(
        OutboxMessage.objects.filter(contact=ann).values_list("campaign_id", "unsubscribed_at")
    )
    assert stamped[spring.pk] is not None and stamped[autumn.pk] is None
    suppression = Suppression.objects.get()
    assert (suppression.email, suppression.reason, suppression.campaign_id) == (
        ann.email,
        "unsubscribed",
        spring.pk,
    )
    assert dict(selectors.engagement_counts(spring))["Unsubscribed"] == 1
    assert dict(selectors.engagement_counts(autumn))["Unsubscribed"] == 0


def test_a_link_without_a_campaign_still_unsubscribes(admin, contacts):
    ann = contacts[0]
    spring = _campaign(admin, "Spring", [ann], [{"status": Row.SENT}])
    url = UnsubscribeLinks().url(contact_id=ann.pk, email=ann.email)
    assert "p" not in unsubscribe_token_read(url.rstrip("/").rsplit("/", 1)[1])

    assert Client().post(_path(url), **ALPHA).status_code == 200

    assert Suppression.objects.get().campaign_id is None
    assert OutboxMessage.objects.get(campaign=spring).unsubscribed_at is None


def test_a_campaigns_link_does_nothing_on_another_tenants_host(admin, contacts, alpha, beta):
    ann = contacts[0]
    spring = _campaign(admin, "Spring", [ann], [{"status": Row.SENT}])
    url = UnsubscribeLinks(campaign=spring).url(contact_id=ann.pk, email=ann.email)

    assert Client().post(_path(url), **BETA).status_code == 400

    with schema_context(alpha.schema_name):
        assert not Suppression.objects.exists()
        assert OutboxMessage.objects.get(campaign=spring).unsubscribed_at is None


def test_the_campaign_page_shows_the_counts_and_refreshes_them_while_sending(
    admin, contacts, client, beta
):
    now = timezone.now()
    campaign = _campaign(
        admin,
        "Shown",
        contacts[:3],
        [
            {"status": Row.SENT, "delivered_at": now, "opened_at": now},
            {"status": Row.SENT, "bounced_at": now},
            {"status": Row.QUEUED},
        ],
    )
    campaign.send_state = campaign.SendState.SENDING
    campaign.save(update_fields=["send_state"])
    client.post("/login/", {"username": admin.email, "password": PASSWORD}, **ALPHA)

    page = client.get(f"/campaigns/{campaign.pk}/", **ALPHA)

    text = page.content.decode()
    counts = re.search(r'<dl[^>]*data-testid="engagement-counts"[^>]*>(.*?)</dl>', text).group(1)
    assert "<dt>Delivered</dt><dd>1</dd>" in counts and "<dt>Bounced</dt><dd>1</dd>" in counts
    assert "<dt>Sent</dt><dd>2</dd>" in counts and "<dt>Opened</dt><dd>1</dd>" in counts
    assert 'hx-trigger="every 2s"' in text

    campaign.send_state = campaign.SendState.SENT
    campaign.save(update_fields=["send_state"])
    after = client.get(f"/campaigns/{campaign.pk}/", **ALPHA).content.decode()
    assert 'hx-trigger="every 2s"' not in after

    with schema_context(beta.schema_name):
        beta_admin = User.objects.get(email="admin@beta.test")
    client.post("/logout/", **ALPHA)
    client.post("/login/", {"username": beta_admin.email, "password": PASSWORD}, **BETA)
    assert client.get(f"/campaigns/{campaign.pk}/", **BETA).status_code == 404
