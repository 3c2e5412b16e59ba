"""Opens and clicks of campaign e-mail, recorded on the contact's timeline.

When a message is rendered, each http(s) link of its HTML body (not the unsubscribe link) is
replaced by /c/<token>/ on the tenant's own host, and a 1x1 pixel /o/<token>.gif is added before
</body>. Both tokens are signed (django.core.signing, each with its own salt; a send makes them
with campaigns.tokens, which makes the same tokens faster) and carry the tenant's schema and the
outbox row; a click token also carries the CampaignLink. The click's
target is the URL stored on that CampaignLink, looked up on the server: nothing in the request
decides where it goes, so a forged or altered link redirects nowhere.

Counters (opens per message, clicks per link) are updated with F() and the first open and click
are stamped on the outbox row, so the campaign page counts them without scanning the timeline.
"""

import dataclasses
import html
import json
import re

from django.core import signing
from django.db import connection, transaction
from django.db.models import F
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils import timezone

from campaigns.models import Campaign, CampaignLink, CampaignMember, OutboxMessage
from campaigns.services import campaign_member_advance
from campaigns.templating import RenderedEmail
from campaigns.tokens import TokenSigner
from crm.tenants.models import Tenant
from crm.tenants.selectors import tenant_url
from tracking.identity import url_with_visitor_token
from tracking.models import TimelineEntry
from tracking.scoring import exposure_record
from tracking.selectors import tracking_settings
from tracking.services import timeline_add

OPEN_SALT = "campaigns.engagement.open"
CLICK_SALT = "campaigns.engagement.click"
URL_MAX = CampaignLink._meta.get_field("url").max_length

# The href of an <a> tag, in either kind of quotes.
_ANCHOR_HREF = re.compile(r"""(<a\b[^>]*?\bhref\s*=\s*)(["'])(.*?)\2""", re.IGNORECASE | re.DOTALL)
_BODY_CLOSE = re.compile(r"</body\s*>", re.IGNORECASE)
_TRACKED = re.compile(r"https?://[^\s\x00-\x1f\x7f]+\Z", re.IGNORECASE)
# A link in the plain-text part: up to white space or a bracket, without the full stop or comma
# of the sentence it ends.
_TEXT_URL = re.compile(r"""https?://[^\s<>()\[\]"']*[^\s<>()\[\]"'.,;:!?]""", re.IGNORECASE)


def open_token(*, outbox_id: int) -> str:
    return signing.dumps({"t": connection.schema_name, "m": outbox_id}, salt=OPEN_SALT)


def click_token(*, outbox_id: int, link_id: int) -> str:
    return signing.dumps(
        {"t": connection.schema_name, "m": outbox_id, "l": link_id}, salt=CLICK_SALT
    )


def _read(token: str, *, salt: str, keys: tuple[str, ...]) -> dict | None:
    """What a token says, if it is intact, made in the current tenant and well formed."""
    try:
        data = signing.loads(token, salt=salt)
    except signing.BadSignature:
        return None
    if not isinstance(data, dict) or data.get("t") != connection.schema_name:
        return None
    if not all(isinstance(data.get(key), int) for key in keys):
        return None
    return data


def open_token_read(token: str) -> dict | None:
    return _read(token, salt=OPEN_SALT, keys=("m",))


def click_token_read(token: str) -> dict | None:
    return _read(token, salt=CLICK_SALT, keys=("m", "l"))


def trackable(url: str) -> bool:
    """Whether a link is rewritten: an absolute http(s) URL short enough to store."""
    return len(url) <= URL_MAX and bool(_TRACKED.match(url))


class EmailTracker:
    """Rewrites the links of one campaign's messages and adds the open pixel; make one per chunk
    (it looks up the tenant and the campaign's known links once) and call `track` per message."""

    def __init__(self, campaign: Campaign):
        self.campaign = campaign
        tenant = Tenant.objects.get(schema_name=connection.schema_name)
        self.click_base = tenant_url(tenant, reverse("email_click", args=["-"]).removesuffix("-/"))
        self.open_base = tenant_url(tenant, reverse("email_open", args=["-"]).removesuffix("-.gif"))
        self.link_ids = dict(
            CampaignLink.objects.filter(campaign=campaign).values_list("url", "pk")
        )
        # The tokens' JSON up to the outbox row, as open_token and click_token serialize it.
        self.token_head = '{"t":' + json.dumps(connection.schema_name) + ',"m":'
        self.open_signer = TokenSigner(OPEN_SALT)
        self.click_signer = TokenSigner(CLICK_SALT)
        # What each href seen before stands for: its URL when it is tracked, else None (the same
        # few links come in every message).
        self.hrefs: dict[str, str | None] = {}

    def _ids_for(self, urls: set[str]) -> None:
        missing = urls - self.link_ids.keys()
        if not missing:
            return
        # Chunks of the same campaign may run at once: the unique constraint keeps one row.
        CampaignLink.objects.bulk_create(
            [CampaignLink(campaign=self.campaign, url=url) for url in missing],
            ignore_conflicts=True,
        )
        self.link_ids.update(
            CampaignLink.objects.filter(campaign=self.campaign, url__in=missing).values_list(
                "url", "pk"
            )
        )

    def _href(self, href: str, unsubscribe_url: str) -> str | None:
        """The URL an href stands for if its link is tracked."""
        if href == unsubscribe_url:
            # Never tracked, and a new one in every message: not worth remembering.
            return None
        try:
            url = self.hrefs[href]
        except KeyError:
            url = html.unescape(href).strip()
            url = self.hrefs[href] = url if trackable(url) else None
        return None if url == unsubscribe_url else url

    def track(self, rendered: RenderedEmail, *, outbox_id: int, unsubscribe_url: str):
        """The message with its links, in the HTML and in the plain text, pointing at the click
        redirect, and the pixel added."""
        found = {}
        for match in _ANCHOR_HREF.finditer(rendered.html):
            url = self._href(match.group(3), unsubscribe_url)
            if url is not None:
                found[match.group(3)] = url
        in_text = {
            url
            for url in _TEXT_URL.findall(rendered.text)
            if url != unsubscribe_url and trackable(url)
        }
        self._ids_for(set(found.values()) | in_text)
        message = f"{self.token_head}{outbox_id}"

        def tracked(url: str) -> str:
            token = self.click_signer.signed(f'{message},"l":{self.link_ids[url]}}}')
            return f"{self.click_base}{token}/"

        def rewrite(match: re.Match) -> str:
            url = found.get(match.group(3))
            if url is None:
                return match.group()
            return f"{match.group(1)}{match.group(2)}{tracked(url)}{match.group(2)}"

        def rewrite_text(match: re.Match) -> str:
            return tracked(match.group()) if match.group() in in_text else match.group()

        body = _ANCHOR_HREF.sub(rewrite, rendered.html) if found else rendered.html
        text = _TEXT_URL.sub(rewrite_text, rendered.text) if in_text else rendered.text
        pixel = (
            f'<img src="{self.open_base}{self.open_signer.signed(message + "}")}.gif" '
            'width="1" height="1" alt="">'
        )
        if _BODY_CLOSE.search(body):
            body = _BODY_CLOSE.sub(lambda match: pixel + match.group(), body, count=1)
        else:
            body += pixel
        return dataclasses.replace(rendered, html=body, text=text)


def _advance(outbox: OutboxMessage, status: str) -> None:
    campaign_member_advance(campaign=outbox.campaign, contact=outbox.contact, status=status)


@transaction.atomic
def email_open_record(*, outbox_id: int) -> bool:
    """Count an open of a sent message; the first one goes on the contact's timeline and moves
    the member to opened. Returns False for a message that was never sent."""
    now = timezone.now()
    sent = OutboxMessage.objects.filter(pk=outbox_id, status=OutboxMessage.Status.SENT)
    # Conditional UPDATEs: of two opens at once, exactly one is the first.
    first = bool(sent.filter(opened_at__isnull=True).update(opens=F("opens") + 1, opened_at=now))
    if not first and not sent.update(opens=F("opens") + 1):
        return False
    if first:
        outbox = sent.select_related("campaign", "contact__account").get()
        timeline_add(
            kind=TimelineEntry.Kind.EMAIL_OPEN,
            summary=f"Opened the e-mail of the campaign {outbox.campaign.name}",
            contact=outbox.contact,
            occurred_at=now,
        )
        _advance(outbox, CampaignMember.Status.OPENED)
        exposure_record(
            contact=outbox.contact,
            kind="email_open",
            reason=f"Opened the '{outbox.campaign.name}' e-mail",
            occurred_at=now,
        )
    return True


def click_target(*, outbox_id: int, link_id: int) -> tuple[OutboxMessage, CampaignLink] | None:
    """The sent message and the link of its own campaign a click token names, or None."""
    outbox = (
        OutboxMessage.objects.select_related("campaign", "contact__account")
        .filter(pk=outbox_id, status=OutboxMessage.Status.SENT)
        .first()
    )
    if outbox is None:
        return None
    link = CampaignLink.objects.filter(pk=link_id, campaign_id=outbox.campaign_id).first()
    if link is None or not trackable(link.url):
        return None
    return outbox, link


def click_redirect_url(*, outbox: OutboxMessage, link: CampaignLink) -> str:
    """Where a click goes: the link's URL, with the contact's visitor token (`crm_vt`) added
    when it is one of the tenant's own sites, so the tracking snippet there knows who came."""
    return url_with_visitor_token(
        link.url, contact_id=outbox.contact_id, site_origins=tracking_settings().site_origins
    )


@transaction.atomic
def email_click_record(*, outbox: OutboxMessage, link: CampaignLink) -> None:
    """Count a click: on the link, on the contact's timeline (with the URL), and the member
    moves to clicked (a click implies the message was opened, even if its pixel never
    loaded)."""
    now = timezone.now()
    CampaignLink.objects.filter(pk=link.pk).update(clicks=F("clicks") + 1)
    OutboxMessage.objects.filter(pk=outbox.pk).update(
        opened_at=Coalesce(F("opened_at"), now), clicked_at=Coalesce(F("clicked_at"), now)
    )
    timeline_add(
        kind=TimelineEntry.Kind.EMAIL_CLICK,
        summary=f"Clicked a link in the e-mail of the campaign {outbox.campaign.name}",
        detail=link.url,
        contact=outbox.contact,
        occurred_at=now,
    )
    _advance(outbox, CampaignMember.Status.CLICKED)
    exposure_record(
        contact=outbox.contact,
        kind="email_click",
        reason=f"Clicked '{outbox.campaign.name}' link: {link.url}",
        occurred_at=now,
    )
