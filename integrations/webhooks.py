"""Outbound webhooks: telling a partner's system, by signed HTTP POSTs, that a record was created,
changed or deleted.

The services that change records call `webhook_emit` inside their own transaction: it writes one
delivery row per subscribed endpoint, so the event commits (or rolls back) with the change, and
queues the sending for after the commit. `integrations.tasks` sends each delivery, retries it
with backoff and finally leaves it in the dead-letter list, from which an admin replays it.

Each POST carries `X-CRM-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>">` with the
endpoint's secret; `signature_verify` is what a receiver runs to check it.
"""

import hashlib
import hmac
import http.client
import ipaddress
import json
import random
import secrets
import socket
import ssl
import time
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.module_loading import import_string

from integrations.models import WebhookDelivery, WebhookEndpoint
from tracking.models import AuditEntry
from tracking.services import field_values

# The REST API's serializer for each model, so a webhook shows a record exactly as the API does.
# Imported lazily: the API modules import much that the services calling `webhook_emit` do not.
SERIALIZERS = {
    "contacts.contact": "contacts.api.ContactSerializer",
    "contacts.account": "contacts.api.AccountSerializer",
    "opportunities.opportunity": "opportunities.api.OpportunitySerializer",
    "contacts.activity": "contacts.api.ActivitySerializer",
    "contacts.task": "contacts.api.TaskSerializer",
    "contacts.appointment": "contacts.api.AppointmentSerializer",
}

# Waits before the 2nd, 3rd... attempt; the last one repeats if CRM_WEBHOOK_MAX_ATTEMPTS asks for
# more attempts than this has entries.
BACKOFF_SECONDS = (30, 120, 600, 3600, 6 * 3600)
TIMEOUT_SECONDS = 5
# A delivery "sending" for longer than this lost its worker (killed mid-request): the sweeper puts
# it back. Well above TIMEOUT_SECONDS, so a slow but live attempt is never sent twice at once.
STUCK_AFTER = timedelta(minutes=5)
# The sweeper leaves alone what its queued task should have picked up less than this long ago.
SWEEP_GRACE = timedelta(minutes=1)
SIGNATURE_HEADER = "X-CRM-Signature"
USER_AGENT = "CRM-Webhooks/1"


# --- emitting ---------------------------------------------------------------------------------


def _as_json(data) -> dict:
    """Plain JSON values (dates, decimals and UUIDs as strings), as they will be sent."""
    return json.loads(json.dumps(data, cls=DjangoJSONEncoder))


def _records(instances: list[models.Model]) -> list[dict]:
    serializer = import_string(SERIALIZERS[instances[0]._meta.label_lower])
    return list(serializer(instances, many=True).data)


def _subscribed(event: str) -> list[int]:
    return list(
        WebhookEndpoint.objects.filter(is_active=True, events__contains=[event]).values_list(
            "pk", flat=True
        )
    )


def _emit(event: str, endpoints: list[int], records: Iterable[dict]) -> None:
    now = timezone.now()
    deliveries = []
    for record in records:
        event_id = uuid.uuid4()
        payload = {
            "id": str(event_id),
            "event": event,
            "created_at": now.isoformat(),
            "data": _as_json(record),
        }
        deliveries.extend(
            WebhookDelivery(endpoint_id=pk, event=event, event_id=event_id, payload=payload)
            for pk in endpoints
        )
    created = WebhookDelivery.objects.bulk_create(deliveries)
    ids = [delivery.pk for delivery in created]
    transaction.on_commit(lambda: _queue(ids))


def _queue(ids: list[int]) -> None:
    from integrations.tasks import webhook_deliver

    for pk in ids:
        webhook_deliver.delay(pk)


def webhook_emit(
    *, event: str, instance: models.Model, data: dict | None = None, extra: dict | None = None
) -> None:
    """Tell every active endpoint subscribed to `event` about `instance`: the record as the REST
    API shows it, or `data` when given (a deleted record passes `{"id": pk}`), with the keys of
    `extra` added (what an event says beyond the record, such as a stage change's stages). Call
    it inside the transaction of the change; nothing is sent unless it commits. One query when
    no endpoint listens."""
    endpoints = _subscribed(event)
    if endpoints:
        record = data if data is not None else _records([instance])[0]
        _emit(event, endpoints, [{**record, **(extra or {})}])


def webhook_emit_many(*, event: str, instances: list[models.Model]) -> None:
    """`webhook_emit` for a batch of records of one model (an import): one bulk insert."""
    endpoints = _subscribed(event) if instances else []
    if endpoints:
        _emit(event, endpoints, _records(instances))


# --- signing ----------------------------------------------------------------------------------


def _mac(secret: str, timestamp: int, body: bytes) -> str:
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secret: str, body: bytes, timestamp: int | None = None) -> str:
    timestamp = int(time.time()) if timestamp is None else timestamp
    return f"t={timestamp},v1={_mac(secret, timestamp, body)}"


def signature_verify(
    secret: str, header: str, body: bytes | str, tolerance: int = 300, now: float | None = None
) -> bool:
    """What a receiver runs on each POST: True when `header` (X-CRM-Signature) was made with
    `secret` over exactly this raw `body`, less than `tolerance` seconds ago (an old, replayed
    request fails even with a good signature)."""
    body = body.encode() if isinstance(body, str) else body
    parts = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    now = time.time() if now is None else now
    if abs(now - timestamp) > tolerance:
        return False
    return hmac.compare_digest(parts.get("v1", ""), _mac(secret, timestamp, body))


# --- where deliveries may go ------------------------------------------------------------------


def _allow_private() -> bool:
    return settings.CRM_WEBHOOKS_ALLOW_PRIVATE


def _internal(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    # is_global is False for loopback, private, link-local (169.254.169.254, the cloud metadata
    # service), shared (100.64/10), reserved and unspecified ranges; multicast can be "global".
    return not ip.is_global or ip.is_multicast


def webhook_url_validate(url: str) -> list[str]:
    """Refuse a URL that would make the platform call itself or its private network (a partner
    could otherwise read internal services through the delivery log); returns the vetted IP
    addresses the host resolves to. Runs when an endpoint is saved and again before each
    delivery, which connects to one of the returned addresses: the name may resolve elsewhere
    by then (DNS rebinding). CRM_WEBHOOKS_ALLOW_PRIVATE (development, tests) lifts the address
    checks; plain http is allowed only with it or with DEBUG."""
    parts = urlsplit(url)
    allow_private = _allow_private()
    if parts.scheme != "https" and not (
        parts.scheme == "http" and (allow_private or settings.DEBUG)
    ):
        raise ValidationError("Use an https:// URL.")
    if not parts.hostname:
        raise ValidationError("Enter a full URL with a host name.")
    if parts.username or parts.password:
        raise ValidationError("Leave the user name and password out of the URL.")
    host = parts.hostname.rstrip(".").lower()
    base = settings.CRM_BASE_DOMAIN.lower()
    if not allow_private and (host == base or host.endswith("." + base)):
        raise ValidationError("This URL points at the CRM itself.")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, ValueError) as failure:
        raise ValidationError(f"The host {host} cannot be found.") from failure
    addresses = list(dict.fromkeys(info[4][0] for info in found))
    if not allow_private and any(_internal(address) for address in addresses):
        raise ValidationError("This URL points at a private or internal address.")
    return addresses


# --- endpoints --------------------------------------------------------------------------------


def _audit(*, endpoint: WebhookEndpoint, action: str, actor, before: dict | None = None) -> None:
    """tracking.services.audit_record, but the secret stays out of the audit trail."""
    after = {k: v for k, v in field_values(endpoint).items() if k != "secret"}
    before = before or {}
    changes = {k: [before.get(k), v] for k, v in after.items() if before.get(k) != v}
    if changes or action != "updated":
        AuditEntry.objects.create(
            model=endpoint._meta.label_lower,
            object_id=endpoint.pk,
            action=action,
            changes=changes,
            actor=actor,
        )


def _check(endpoint: WebhookEndpoint) -> None:
    try:
        webhook_url_validate(endpoint.url)
    except ValidationError as refused:
        raise ValidationError({"url": refused.messages}) from refused
    if not endpoint.events:
        raise ValidationError({"events": "Choose at least one event."})
    endpoint.full_clean()


@transaction.atomic
def webhook_endpoint_create(
    *, actor, url: str, events: list[str], description: str = "", is_active: bool = True
) -> WebhookEndpoint:
    """Register a URL for the chosen events, with a new signing secret."""
    endpoint = WebhookEndpoint(
        url=url,
        events=list(events),
        description=description,
        is_active=is_active,
        secret="whsec_" + secrets.token_urlsafe(32),
        created_by=actor,
    )
    _check(endpoint)
    endpoint.save()
    _audit(endpoint=endpoint, action="created", actor=actor)
    return endpoint


@transaction.atomic
def webhook_endpoint_update(*, actor, endpoint: WebhookEndpoint, **fields) -> WebhookEndpoint:
    """Change an endpoint's URL, description, events or whether it is on."""
    stored = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
    before = field_values(stored)
    for name, value in fields.items():
        setattr(stored, name, value)
    _check(stored)
    stored.save()
    _audit(endpoint=stored, action="updated", actor=actor, before=before)
    return stored


@transaction.atomic
def webhook_endpoint_delete(*, actor, endpoint: WebhookEndpoint) -> None:
    """Remove an endpoint and its delivery log."""
    AuditEntry.objects.create(
        model=endpoint._meta.label_lower,
        object_id=endpoint.pk,
        action="deleted",
        changes={"url": [endpoint.url, None]},
        actor=actor,
    )
    endpoint.delete()


# --- deliveries -------------------------------------------------------------------------------


@transaction.atomic
def webhook_delivery_replay(*, actor, delivery: WebhookDelivery) -> bool:
    """Send a dead-letter delivery again, with a fresh set of attempts. Only a dead one changes
    (the UPDATE checks the status), so a double click queues it once; False if it was not dead."""
    replayed = WebhookDelivery.objects.filter(
        pk=delivery.pk, status=WebhookDelivery.Status.DEAD
    ).update(status=WebhookDelivery.Status.PENDING, attempts=0, next_attempt_at=None)
    if not replayed:
        return False
    AuditEntry.objects.create(
        model=delivery._meta.label_lower,
        object_id=delivery.pk,
        action="replayed",
        changes={"status": [WebhookDelivery.Status.DEAD, WebhookDelivery.Status.PENDING]},
        actor=actor,
    )
    transaction.on_commit(lambda: _queue([delivery.pk]))
    return True


def backoff(attempts: int) -> timedelta:
    """The wait after the `attempts`-th failed attempt, give or take a fifth, so that many
    deliveries failing together (a receiver down) do not all come back at the same second."""
    base = BACKOFF_SECONDS[min(attempts, len(BACKOFF_SECONDS)) - 1]
    return timedelta(seconds=base * random.uniform(0.8, 1.2))


def _post(url: str, address: str, body: bytes, headers: dict) -> tuple[int, str]:
    parts = urlsplit(url)
    if parts.scheme == "https":
        port = parts.port or 443
        connection = http.client.HTTPSConnection(
            parts.hostname, port, timeout=TIMEOUT_SECONDS, context=ssl.create_default_context()
        )
    else:
        port = parts.port or 80
        connection = http.client.HTTPConnection(parts.hostname, port, timeout=TIMEOUT_SECONDS)
    # Connect to the address that was just vetted, not to whatever the name resolves to a moment
    # later; TLS still checks the certificate against the host name. http.client follows no
    # redirects, so a 3xx cannot send the POST to an internal address either.
    connection._create_connection = lambda _address, *args: socket.create_connection(
        (address, port), *args
    )
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        answer = response.read(2000).decode("utf-8", "replace")
        return response.status, answer
    finally:
        connection.close()


def webhook_delivery_claim(*, delivery_id: int, now: datetime) -> WebhookDelivery | None:
    """Take a due pending delivery for sending (pending -> sending, one conditional UPDATE, so
    two workers given the same id send it once); None if it is not due or not pending.
    `next_attempt_at` then holds when the sending began, which the sweeper reads."""
    claimed = WebhookDelivery.objects.filter(
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now),
        pk=delivery_id,
        status=WebhookDelivery.Status.PENDING,
    ).update(status=WebhookDelivery.Status.SENDING, next_attempt_at=now)
    if not claimed:
        return None
    return WebhookDelivery.objects.select_related("endpoint").get(pk=delivery_id)


def webhook_delivery_send(*, delivery_id: int) -> WebhookDelivery | None:
    """Make one attempt at a delivery: claim it, POST it, and record the answer: delivered on a
    2xx; otherwise pending again after a backoff, or dead after the last attempt. Returns the
    delivery as it now is, or None when there was nothing to send. Runs outside any transaction
    (the POST must not hold a database lock) in the tenant's schema."""
    now = timezone.now()
    delivery = webhook_delivery_claim(delivery_id=delivery_id, now=now)
    if delivery is None:
        return None
    endpoint = delivery.endpoint
    code, error = None, ""
    if not endpoint.is_active:
        error = "The endpoint is switched off."
    else:
        body = json.dumps(delivery.payload, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-CRM-Event": delivery.event,
            "X-CRM-Delivery": str(delivery.event_id),
            SIGNATURE_HEADER: signature_header(endpoint.secret, body),
        }
        try:
            address = webhook_url_validate(endpoint.url)[0]
            code, answer = _post(endpoint.url, address, body, headers)
        except ValidationError as refused:
            error = refused.messages[0]
        except (OSError, http.client.HTTPException) as failure:
            error = f"{type(failure).__name__}: {failure}"[:500]
        else:
            if not 200 <= code < 300:
                error = f"HTTP {code}: {answer[:300]}"

    attempts = delivery.attempts + 1
    outcome = {"attempts": attempts, "last_status_code": code, "last_error": error}
    if not error:
        outcome |= {"status": WebhookDelivery.Status.DELIVERED, "delivered_at": timezone.now()}
    elif attempts >= settings.CRM_WEBHOOK_MAX_ATTEMPTS or not endpoint.is_active:
        outcome |= {"status": WebhookDelivery.Status.DEAD, "next_attempt_at": None}
    else:
        outcome |= {
            "status": WebhookDelivery.Status.PENDING,
            "next_attempt_at": timezone.now() + backoff(attempts),
        }
    WebhookDelivery.objects.filter(pk=delivery.pk, status=WebhookDelivery.Status.SENDING).update(
        **outcome
    )
    for name, value in outcome.items():
        setattr(delivery, name, value)
    return delivery


def webhook_deliveries_due(*, now: datetime) -> list[int]:
    """Deliveries whose queued task was lost (a Redis restart) or whose worker died mid-send:
    puts back those "sending" for too long, and returns the ids of the pending ones overdue, to
    queue again. Queuing one twice is harmless: only one claim wins."""
    WebhookDelivery.objects.filter(
        status=WebhookDelivery.Status.SENDING, next_attempt_at__lt=now - STUCK_AFTER
    ).update(status=WebhookDelivery.Status.PENDING, next_attempt_at=now - SWEEP_GRACE)
    overdue = now - SWEEP_GRACE
    return list(
        WebhookDelivery.objects.filter(
            Q(next_attempt_at__lte=overdue)
            | Q(next_attempt_at__isnull=True, created_at__lte=overdue),
            status=WebhookDelivery.Status.PENDING,
        )
        .order_by("pk")
        .values_list("pk", flat=True)[:1000]
    )
