"""The ingest endpoint of the tracking snippet: `POST /t/collect` on a tenant's host.

It answers thousands of small posts a second, so it runs before Django's middleware and URL
routing (`crm.wsgi` hands it the requests for its path) and does only this:

1. The tenant comes from the host through a per-process map, refreshed every
   `CRM_TRACKING_SITE_CACHE_SECONDS` (so a change of site origins applies within that time);
   the database is read only when the map misses.
2. The body (text/plain, as `navigator.sendBeacon` posts it, or application/json; at most
   64 KB) is decoded and validated in one pass by msgspec: kinds, types, string lengths, at most
   100 events. Events whose time is more than 7 days back or 5 minutes ahead of the moment the
   browser sent them are dropped and counted (the browser's clock is not trusted: an event's
   time is the server's time less its age at sending).
3. An `identify` must prove itself: an e-mail with the HMAC-SHA256 of that e-mail under the
   tenant's identify secret (computed by the tenant's own server), or a visitor token from an
   e-mail click (`tracking.identity.visitor_token`) made for this tenant.
4. One Lua call to Redis counts the request against its address's rate limit, counts the
   outcome in the tenant's counters and, for an accepted batch, appends it to the tenant's
   stream (`tracking.buffer`); the answer is 202 and workers do the rest (`tracking.drain`).

Whatever is refused gets a 4xx with a JSON body saying why, is counted, and stores nothing.
Browsers may post from the tenant's registered site origins only (CORS); a request without an
Origin header (the tenant's own server) is accepted.
"""

import hashlib
import hmac
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Annotated

import msgspec
import redis
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import DatabaseError, close_old_connections, connection
from django.http.request import validate_host
from django_tenants.utils import get_public_schema_name, schema_context

from tracking import buffer

logger = logging.getLogger(__name__)

PATH = "/t/collect"
MAX_BODY = 64 * 1024
MAX_EVENTS = 100
MAX_AGE_MS = 7 * 24 * 3600 * 1000
MAX_AHEAD_MS = 5 * 60 * 1000

# --- the batch the snippet sends ---------------------------------------------------------------

Url = Annotated[str, msgspec.Meta(max_length=2000)]
Title = Annotated[str, msgspec.Meta(max_length=300)]
Short = Annotated[str, msgspec.Meta(max_length=100)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
Timestamp = Annotated[int, msgspec.Meta(ge=0, le=2**53)]
Money = Annotated[float, msgspec.Meta(ge=0, le=1e12)]
Currency = Annotated[str, msgspec.Meta(pattern="^[A-Za-z]{3}$")]
SessionKey = Annotated[str, msgspec.Meta(max_length=100, pattern="^[A-Za-z0-9_.-]*$")]
PropValue = Annotated[str, msgspec.Meta(max_length=500)] | int | float | bool | None
Props = Annotated[dict[Short, PropValue], msgspec.Meta(max_length=30)]


class Utm(msgspec.Struct, kw_only=True, omit_defaults=True):
    source: Short = ""
    medium: Short = ""
    campaign: Short = ""
    term: Short = ""
    content: Short = ""


class Item(msgspec.Struct, kw_only=True, omit_defaults=True):
    sku: Short = ""
    name: Annotated[str, msgspec.Meta(max_length=200)] = ""
    quantity: Annotated[int, msgspec.Meta(ge=0, le=1_000_000)] = 1
    price: Money | None = None


class BaseEvent(msgspec.Struct, tag_field="kind", kw_only=True, omit_defaults=True):
    """What every event carries: its id (made by the snippet, so a batch sent twice is stored
    once), its time (ms since the epoch; the server's once accepted) and the page."""

    id: uuid.UUID
    ts: Timestamp
    url: Url = ""
    title: Title = ""
    referrer: Url = ""
    utm: Utm | None = None


class PageView(BaseEvent, tag="page_view"):
    pass


class ProductView(BaseEvent, tag="product_view"):
    sku: Short = ""
    category: Short = ""
    name: Annotated[str, msgspec.Meta(max_length=200)] = ""
    price: Money | None = None


class Purchase(BaseEvent, tag="purchase"):
    order_id: Name
    amount: Money
    currency: Currency
    items: Annotated[list[Item], msgspec.Meta(max_length=100)] = []


class Custom(BaseEvent, tag="custom"):
    name: Name
    props: Props = {}


AnyEvent = PageView | ProductView | Purchase | Custom


class Identify(msgspec.Struct, kw_only=True):
    email: Annotated[str, msgspec.Meta(max_length=254)] = ""
    # Lowercase or uppercase hex: anything else cannot be a signature (and non-ASCII text
    # would not even compare).
    signature: Annotated[str, msgspec.Meta(max_length=128, pattern="^[0-9a-fA-F]*$")] = ""
    token: Annotated[str, msgspec.Meta(max_length=1000)] = ""


class Batch(msgspec.Struct, kw_only=True):
    v: uuid.UUID  # the visitor (the snippet's cookie)
    s: SessionKey = ""  # the visit
    sent_at: Timestamp | None = None  # the browser's clock when it sent the batch
    events: Annotated[list[AnyEvent], msgspec.Meta(max_length=MAX_EVENTS)] = []
    identify: Identify | None = None


# --- what goes into the buffer -----------------------------------------------------------------


class Identity(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A proven identity: an e-mail the tenant's server signed, or a contact from a token."""

    how: str
    email: str = ""
    contact: int = 0


class Stored(msgspec.Struct, kw_only=True, omit_defaults=True):
    t: str  # the tenant's schema
    v: uuid.UUID
    s: str = ""
    r: int  # received, ms since the epoch
    events: list[AnyEvent] = []
    identity: Identity | None = None


_decode_batch = msgspec.json.Decoder(Batch).decode
_encode = msgspec.json.Encoder().encode
decode_stored = msgspec.json.Decoder(Stored).decode


# --- the tenant of a host ----------------------------------------------------------------------


@dataclass(frozen=True)
class Site:
    schema: str
    origins: frozenset[str]
    identify_secret: bytes


_sites: dict[str, tuple[float, Site | None]] = {}
_sites_lock = threading.Lock()
SITES_MAX = 10_000


def sites_forget() -> None:
    """Drop the map of hosts to tenants (tests change site origins and post at once)."""
    with _sites_lock:
        _sites.clear()


def _site_load(hostname: str) -> Site | None:
    from crm.tenants.selectors import tenant_for_host
    from tracking.selectors import tracking_settings

    # As Django does around a request: drop a connection that is too old or broken (but never
    # one inside a transaction, such as a test's).
    if not connection.in_atomic_block:
        close_old_connections()
    try:
        with schema_context(get_public_schema_name()):
            tenant = tenant_for_host(hostname)
        if tenant is None:
            return None
        with schema_context(tenant.schema_name):
            found = tracking_settings()
        return Site(
            schema=tenant.schema_name,
            origins=frozenset(origin.lower() for origin in found.site_origins),
            identify_secret=found.identify_secret.encode(),
        )
    finally:
        if not connection.in_atomic_block:
            close_old_connections()


def site_for_host(hostname: str) -> Site | None:
    """The site of a tenant's host; None for any other host (those outside ALLOWED_HOSTS are
    refused without a look at the database, nor a place in the map)."""
    if not validate_host(hostname, settings.ALLOWED_HOSTS):
        return None
    now = time.monotonic()
    cached = _sites.get(hostname)
    if cached is not None and cached[0] > now:
        return cached[1]
    try:
        site = _site_load(hostname)
    except DatabaseError:
        # The database is away: what was known a moment ago still holds.
        if cached is None:
            raise
        site = cached[1]
    with _sites_lock:
        if len(_sites) >= SITES_MAX:
            _sites.clear()
        _sites[hostname] = (now + settings.CRM_TRACKING_SITE_CACHE_SECONDS, site)
    return site


# --- checking identities -----------------------------------------------------------------------


def _valid_email(email: str) -> bool:
    """Whether the CRM would store this address on a contact (the drain makes one for it)."""
    try:
        validate_email(email)
    except ValidationError:
        return False
    return True


def identify_signature(secret: str | bytes, email: str) -> str:
    """The signature the tenant's server sends with `identify`: HMAC-SHA256 of the e-mail
    address exactly as sent, under the tenant's identify secret, in lowercase hex."""
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, email.encode(), hashlib.sha256).hexdigest()


def _identity(site: Site, identify: Identify) -> Identity | None:
    """The identity an `identify` proves, or None when its signature or token is bad."""
    from tracking.identity import visitor_token_read

    if identify.token:
        contact_id = visitor_token_read(identify.token, schema=site.schema)
        return Identity(how="email_click", contact=contact_id) if contact_id else None
    email = identify.email.strip()
    if not email or "@" not in email or not identify.signature:
        return None
    expected = identify_signature(site.identify_secret, identify.email)
    if not hmac.compare_digest(expected, identify.signature.lower()):
        return None
    return Identity(how="identify", email=email)


# --- the answer --------------------------------------------------------------------------------

_COUNT = """
local hits = redis.call('INCR', KEYS[1])
if hits == 1 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
local limit = tonumber(ARGV[1])
if limit > 0 and hits > limit then
  redis.call('HINCRBY', KEYS[2], 'refused_rate_limited', 1)
  local ttl = redis.call('TTL', KEYS[1])
  if ttl < 1 then ttl = 1 end
  return {429, ttl}
end
if ARGV[3] ~= '' then
  redis.call('HINCRBY', KEYS[2], ARGV[3], 1)
  return {0, 0}
end
if ARGV[4] ~= '' then
  if redis.call('XLEN', KEYS[3]) >= tonumber(ARGV[5]) then
    redis.call('HINCRBY', KEYS[2], 'refused_backlog', 1)
    return {503, 30}
  end
  redis.call('XADD', KEYS[3], '*', 'b', ARGV[4])
  redis.call('SADD', KEYS[4], ARGV[6])
end
redis.call('HINCRBY', KEYS[2], 'accepted_requests', 1)
local counts = {'accepted_events', 'dropped_too_old', 'dropped_too_new'}
for i = 1, 3 do
  if ARGV[6 + i] ~= '0' then redis.call('HINCRBY', KEYS[2], counts[i], ARGV[6 + i]) end
end
return {202, 0}
"""

_script_lock = threading.Lock()
_script = None


def _count(
    *,
    ip: str,
    schema: str,
    refused: str = "",
    payload: bytes = b"",
    accepted: int = 0,
    too_old: int = 0,
    too_new: int = 0,
) -> tuple[int, int]:
    """One round trip: the address's rate limit, the tenant's counters and, for an accepted
    batch, the append. Returns (0 or an HTTP status that overrides the caller's, retry after)."""
    global _script
    if _script is None:
        with _script_lock:
            _script = buffer.client().register_script(_COUNT)
    status, retry_after = _script(
        keys=[
            f"tracking:ip:{ip}",
            buffer.counters_key(schema),
            buffer.stream_key(schema),
            buffer.DIRTY,
        ],
        args=[
            settings.CRM_TRACKING_IP_LIMIT,
            settings.CRM_TRACKING_IP_WINDOW_SECONDS,
            refused,
            payload,
            settings.CRM_TRACKING_BACKLOG_MAX,
            schema,
            accepted,
            too_old,
            too_new,
        ],
    )
    return int(status), int(retry_after)


REASONS = {
    405: "Only POST (and OPTIONS) here.",
    413: f"The body is larger than {MAX_BODY // 1024} KB.",
    415: "Send the batch as text/plain or application/json.",
    429: "Too many requests from this address; try again later.",
    503: "Too many events are waiting to be processed; try again later.",
}


class Refusal(Exception):
    def __init__(self, status: int, counter: str, error: str, detail: str = ""):
        super().__init__(error)
        self.status, self.counter, self.error, self.detail = status, counter, error, detail


class Answer:
    """The response: status, JSON body and headers (CORS for an allowed origin)."""

    __slots__ = ("body", "headers", "status")

    STATUS_LINES = {
        202: "202 Accepted",
        204: "204 No Content",
        400: "400 Bad Request",
        403: "403 Forbidden",
        404: "404 Not Found",
        405: "405 Method Not Allowed",
        413: "413 Content Too Large",
        415: "415 Unsupported Media Type",
        429: "429 Too Many Requests",
        503: "503 Service Unavailable",
    }

    def __init__(self, status: int, body: dict | None, headers: list | None = None):
        self.status = status
        self.body = b"" if body is None else _encode(body)
        self.headers = headers or []

    def send(self, start_response, started: float, allow_origin: str | None):
        headers = [
            ("Cache-Control", "no-store"),
            ("Server-Timing", f"app;dur={(time.perf_counter() - started) * 1000:.1f}"),
            ("Vary", "Origin"),
            *self.headers,
        ]
        if self.body:
            headers += [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(self.body))),
            ]
        if allow_origin:
            headers += [("Access-Control-Allow-Origin", allow_origin)]
        start_response(self.STATUS_LINES[self.status], headers)
        return [self.body]


def _read_body(environ) -> bytes:
    content_type = environ.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
    if content_type not in ("", "text/plain", "application/json"):
        raise Refusal(415, "refused_invalid", "unsupported_media_type", REASONS[415])
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > MAX_BODY:
        raise Refusal(413, "refused_too_large", "too_large", REASONS[413])
    stream = environ["wsgi.input"]
    # Without a length (chunked), read one byte past the limit to tell if it is over.
    body = stream.read(length) if length else stream.read(MAX_BODY + 1)
    if len(body) > MAX_BODY:
        raise Refusal(413, "refused_too_large", "too_large", REASONS[413])
    return body


def _accept(site: Site, body: bytes, now_ms: int) -> tuple[Stored | None, int, int]:
    """The batch to store (None when nothing is left), and how many events were too old and
    too new."""
    if b"\\u0000" in body:
        # PostgreSQL's text holds no NUL character.
        raise Refusal(400, "refused_invalid", "invalid", "NUL characters are not allowed.")
    try:
        batch = _decode_batch(body)
    except (msgspec.ValidationError, msgspec.DecodeError) as error:
        raise Refusal(400, "refused_invalid", "invalid", str(error)) from None
    identity = None
    if batch.identify is not None:
        if batch.identify.email and not _valid_email(batch.identify.email.strip()):
            raise Refusal(
                400, "refused_invalid", "bad_email", "The identify's e-mail is not an address."
            )
        identity = _identity(site, batch.identify)
        if identity is None:
            raise Refusal(403, "refused_signature", "bad_signature", "The identify is not signed.")
    clock = batch.sent_at if batch.sent_at is not None else now_ms
    kept, too_old, too_new = [], 0, 0
    for event in batch.events:
        age = clock - event.ts
        if age > MAX_AGE_MS:
            too_old += 1
        elif age < -MAX_AHEAD_MS:
            too_new += 1
        else:
            kept.append(event)
    # Events stamped a little after the batch was sent (a clock that stepped) move back with
    # the rest, so that none is in the future and their order stays.
    lead = max((event.ts - clock for event in kept), default=0)
    for event in kept:
        event.ts = now_ms - (clock - event.ts) - max(lead, 0)
    if not kept and identity is None:
        return None, too_old, too_new
    stored = Stored(t=site.schema, v=batch.v, s=batch.s, r=now_ms, events=kept, identity=identity)
    return stored, too_old, too_new


def collect(environ, start_response):
    """The WSGI application of `POST /t/collect` (see the module's docstring). When Redis or
    the database cannot be reached, the answer is 503 (JSON, with Retry-After): the snippet's
    beacon is lost, the endpoint is not broken."""
    started = time.perf_counter()
    try:
        return _collect(environ, start_response, started)
    except (DatabaseError, redis.RedisError):
        logger.exception("tracking ingest: a backing service is unavailable")
        answer = Answer(
            503,
            {"error": "unavailable", "detail": "Try again later."},
            [("Retry-After", "30")],
        )
        return answer.send(start_response, started, None)


def _collect(environ, start_response, started: float):
    method = environ["REQUEST_METHOD"]
    ip = environ.get("REMOTE_ADDR", "")
    hostname = environ.get("HTTP_HOST", "").rsplit(":", 1)[0].lower()
    site = site_for_host(hostname) if hostname != settings.CRM_BASE_DOMAIN else None
    if site is None:
        _count(ip=ip, schema=buffer.UNKNOWN, refused="refused_unknown_host")
        answer = Answer(404, {"error": "unknown_site", "detail": "No tenant at this host."})
        return answer.send(start_response, started, None)

    origin = environ.get("HTTP_ORIGIN", "").lower()
    allowed = origin if origin in site.origins else None
    try:
        if origin and allowed is None:
            raise Refusal(
                403,
                "refused_origin",
                "origin_not_allowed",
                "Register this site's origin in the CRM's tracking settings.",
            )
        if method == "OPTIONS":
            return Answer(
                204,
                None,
                [
                    ("Access-Control-Allow-Methods", "POST, OPTIONS"),
                    ("Access-Control-Allow-Headers", "Content-Type"),
                    ("Access-Control-Max-Age", "86400"),
                ],
            ).send(start_response, started, allowed)
        if method != "POST":
            raise Refusal(405, "refused_invalid", "method_not_allowed", REASONS[405])
        now_ms = int(time.time() * 1000)
        stored, too_old, too_new = _accept(site, _read_body(environ), now_ms)
    except Refusal as refusal:
        status, retry_after = _count(ip=ip, schema=site.schema, refused=refusal.counter)
        answer = (
            Answer(refusal.status, {"error": refusal.error, "detail": refusal.detail})
            if status != 429
            else _retry_later(429, retry_after)
        )
        if refusal.status == 405:
            answer.headers.append(("Allow", "POST, OPTIONS"))
        return answer.send(start_response, started, allowed)

    status, retry_after = _count(
        ip=ip,
        schema=site.schema,
        payload=_encode(stored) if stored is not None else b"",
        accepted=len(stored.events) if stored is not None else 0,
        too_old=too_old,
        too_new=too_new,
    )
    if status != 202:
        return _retry_later(status, retry_after).send(start_response, started, allowed)
    accepted = len(stored.events) if stored is not None else 0
    body = {"accepted": accepted, "dropped": too_old + too_new}
    return Answer(202, body).send(start_response, started, allowed)


def _retry_later(status: int, retry_after: int) -> Answer:
    error = "rate_limited" if status == 429 else "backlog_full"
    return Answer(
        status,
        {"error": error, "detail": REASONS[status]},
        [("Retry-After", str(max(retry_after, 1)))],
    )


def with_ingest(django_application):
    """The site's WSGI application: the ingest path goes to `collect`, the rest to Django."""

    def application(environ, start_response):
        if environ.get("PATH_INFO") == PATH:
            return collect(environ, start_response)
        return django_application(environ, start_response)

    return application
