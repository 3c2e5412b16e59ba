"""What the e-mail service provider (ESP) reports about campaign messages: deliveries, bounces,
complaints and unsubscribes, through Anymail's tracking webhooks.

The ESP posts its events to `/anymail/<esp>/tracking/` on the tenant's own host, like every
tenant URL, so each event is handled in that tenant's schema. Anymail turns every ESP's payload
into one `AnymailTrackingEvent` and sends the `anymail.signals.tracking` signal; the receiver
here knows nothing of any one ESP, so every ESP Anymail supports works the same way. We
document Postmark (`/anymail/postmark/tracking/`): one JSON object per event, and basic auth put
in the webhook URL (https://user:password@<slug>.<base domain>/anymail/postmark/tracking/).

Finding the message an event is about. Most ESPs report their own message id, not our
Message-ID header, but they give back the metadata a message was sent with. So each campaign
message carries `outbox_metadata()` (the tenant's schema and the outbox row); an ESP
that reports the Message-ID header instead (`<campaign.row@tenant host>`, see
campaigns.sending) is understood too. Either way the row must also be to the event's recipient,
and metadata naming another tenant's schema is ignored, so an event posted to the wrong tenant's
host changes nothing there. An event about a message we cannot find is ignored (answered 200, so
the ESP does not retry it for ever).

What each event records, once however often the ESP repeats it (conditional UPDATEs):
delivered -> `delivered_at`; bounced or rejected -> `bounced_at`, `bounce_reason` and a bounce
Suppression; complained -> `complained_at` and a complaint Suppression; unsubscribed ->
`unsubscribed_at` and an unsubscribe Suppression. A suppressed address is never sent marketing
e-mail again (campaigns.sending.audience leaves it out).

Webhook authentication is Anymail's: HTTP basic auth against settings.ANYMAIL["WEBHOOK_SECRET"]
(env ANYMAIL_WEBHOOK_SECRET); a post without it gets 400. Anymail would accept anyone when no
secret is set, so until one is, `webhook_urlpatterns` answer 404.
"""

import logging
import re
from datetime import datetime
from functools import wraps

from anymail.signals import AnymailTrackingEvent, EventType, tracking
from anymail.urls import urlpatterns as anymail_urlpatterns
from anymail.utils import get_anymail_setting
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction
from django.dispatch import receiver
from django.http import Http404
from django.urls import URLPattern
from django.utils import timezone

from campaigns.models import OutboxMessage, Suppression
from campaigns.unsubscribe import suppression_add

logger = logging.getLogger(__name__)

TENANT_KEY = "crm_tenant"
OUTBOX_KEY = "crm_outbox"
REASON_MAX = OutboxMessage._meta.get_field("bounce_reason").max_length
# Our Message-ID, as campaigns.sending writes it, with or without its angle brackets.
_MESSAGE_ID = re.compile(r"<?(\d+)\.(\d+)@([^<>\s]+)>?")


def outbox_metadata(*, outbox_id: int) -> dict[str, str]:
    """The Anymail metadata a campaign message is sent with, so that the ESP's events about it
    find their way back to its outbox row (strings: some ESPs take nothing else)."""
    return {TENANT_KEY: connection.schema_name, OUTBOX_KEY: str(outbox_id)}


def _outbox_id(event: AnymailTrackingEvent) -> int | None:
    """The outbox row an event names, by its metadata or by our Message-ID; None if neither."""
    metadata = event.metadata if isinstance(event.metadata, dict) else {}
    if TENANT_KEY in metadata and metadata[TENANT_KEY] != connection.schema_name:
        return None
    if str(metadata.get(OUTBOX_KEY, "")).isdigit():
        return int(metadata[OUTBOX_KEY])
    match = _MESSAGE_ID.fullmatch((event.message_id or "").strip())
    return int(match.group(2)) if match else None


def outbox_for_event(event: AnymailTrackingEvent) -> OutboxMessage | None:
    """The current tenant's sent message an ESP event is about, or None."""
    outbox_id = _outbox_id(event)
    if outbox_id is None:
        return None
    rows = OutboxMessage.objects.select_related("campaign", "contact__account").filter(pk=outbox_id)
    match = _MESSAGE_ID.fullmatch((event.message_id or "").strip())
    if match:
        # The header names the campaign and the tenant's host too: all of it must agree.
        rows = rows.filter(message_id=f"<{match.group(1)}.{match.group(2)}@{match.group(3)}>")
    if event.recipient:
        rows = rows.filter(email__iexact=event.recipient)
    return rows.first()


def _when(event: AnymailTrackingEvent) -> datetime:
    """When the ESP says it happened, or now if it does not say (or says it without a zone)."""
    stamp = event.timestamp
    if isinstance(stamp, datetime) and timezone.is_aware(stamp):
        return stamp
    return timezone.now()


def _first(outbox: OutboxMessage, field: str, when: datetime, **also) -> bool:
    """Stamp `field` unless it is stamped already; True the first time (a conditional UPDATE,
    so two deliveries of the same event cannot both be first)."""
    rows = OutboxMessage.objects.filter(pk=outbox.pk, **{f"{field}__isnull": True})
    return bool(rows.update(**{field: when}, **also))


def _suppress(outbox: OutboxMessage, reason: str) -> None:
    suppression_add(
        email=outbox.email, reason=reason, contact=outbox.contact, campaign=outbox.campaign
    )


def _bounce_reason(event: AnymailTrackingEvent) -> str:
    parts = [event.description, event.mta_response, event.reject_reason]
    return " ".join(str(part).strip() for part in parts if part)[:REASON_MAX]


@transaction.atomic
def esp_event_record(*, event: AnymailTrackingEvent) -> OutboxMessage | None:
    """Record what an ESP event says about one of the current tenant's campaign messages (see
    the module docstring); returns the message, or None for an event about none of ours or of
    a kind we do not keep (opens and clicks come through our own pixel and links). Runs in the
    schema of the tenant whose host the event was posted to."""
    kind = event.event_type
    if kind not in (
        EventType.DELIVERED,
        EventType.BOUNCED,
        EventType.REJECTED,
        EventType.COMPLAINED,
        EventType.UNSUBSCRIBED,
    ):
        return None
    outbox = outbox_for_event(event)
    if outbox is None:
        logger.info(
            "ESP %s event about no message of %s: %r",
            kind,
            connection.schema_name,
            event.message_id,
        )
        return None
    when = _when(event)
    if kind == EventType.DELIVERED:
        _first(outbox, "delivered_at", when)
    elif kind in (EventType.BOUNCED, EventType.REJECTED):
        if _first(outbox, "bounced_at", when, bounce_reason=_bounce_reason(event)):
            _suppress(outbox, Suppression.Reason.BOUNCED)
    elif kind == EventType.COMPLAINED:
        if _first(outbox, "complained_at", when):
            _suppress(outbox, Suppression.Reason.COMPLAINED)
    elif _first(outbox, "unsubscribed_at", when):
        _suppress(outbox, Suppression.Reason.UNSUBSCRIBED)
    return outbox


@receiver(tracking, dispatch_uid="campaigns.esp.tracking")
def _tracking_received(sender, event, esp_name, **kwargs):
    esp_event_record(event=event)


def _secret_required(view):
    """404 while no webhook secret is set (Anymail itself would take events from anyone), and
    for an ESP whose own settings are missing (say, Mailgun's signing key), instead of a 500."""

    @wraps(view)
    def guarded(request, *args, **kwargs):
        if not get_anymail_setting("webhook_secret", default=[]):
            raise Http404("The ESP webhooks are off until ANYMAIL_WEBHOOK_SECRET is set.")
        try:
            return view(request, *args, **kwargs)
        except ImproperlyConfigured as error:
            raise Http404("This ESP's webhook is not configured.") from error

    return guarded


# Anymail's webhook URLs (every ESP's), each behind the secret check; mounted on tenant hosts by
# crm.urls_tenant, which also makes sure the receiver above is connected before any event comes.
webhook_urlpatterns = [
    URLPattern(
        pattern.pattern, _secret_required(pattern.callback), pattern.default_args, pattern.name
    )
    for pattern in anymail_urlpatterns
]
