"""The drain: from a tenant's stream (tracking.buffer) into its schema, a large batch at a time.

`drain()` runs in the tenant's schema, holding a Redis lock so that one drain per tenant runs at a
time, and reads until the stream is empty or its time is up. Each batch (up to
`CRM_TRACKING_DRAIN_ENTRIES` accepted requests, each up to 100 events) is one transaction:

1. upsert the batch's visitors (first and last seen), locking their rows in id order, which
   says which of them are identified (their contact cannot change until the commit);
2. COPY the events straight into the events table (an event of a visitor already identified
   takes the visitor's contact and is marked rolled up). When one of them is stored already (a
   batch sent or drained twice), the COPY fails on its id and is undone to a savepoint; the
   events then go through a temporary table and one `INSERT ... SELECT ... ON CONFLICT (id) DO
   NOTHING RETURNING`, so that an event already stored is inserted, and rolled up, nowhere;
3. roll those events onto their contacts' timelines and scores (tracking.rollup);
4. apply the batch's identifications (tracking.identity.visitor_identify), which roll up the
   visitors' earlier anonymous events.

Only after the commit are the entries acknowledged and deleted from the stream. A drain that dies
mid-batch commits nothing and leaves its entries pending in the consumer group: the same process
reads its own pending entries first on its next run, and any drain claims (XAUTOCLAIM) entries
left pending longer than `CRM_TRACKING_CLAIM_IDLE_SECONDS` by a process that is gone. An entry
that cannot be read, or names another tenant's schema, is never written: it is moved to the
tenant's dead-letter stream and counted.

Scheduling (see tracking.tasks): the ingest endpoint marks a tenant "dirty" in the same Lua call
as its append; every second beat's dispatcher queues one drain task for each dirty tenant, and a
sweep every minute queues one for every tenant, for entries left pending by a killed worker.
"""

import contextlib
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import msgspec
import psycopg
import redis
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import DataError, IntegrityError, connection, transaction
from django.utils import timezone

from contacts.models import Contact
from tracking import buffer
from tracking.identity import contact_for_email, visitor_identify
from tracking.ingest import Custom, ProductView, Purchase, Stored, decode_stored
from tracking.models import Event, Visitor
from tracking.rollup import bound_cursor, events_roll_up

logger = logging.getLogger(__name__)

LOCK_SECONDS = 60
# One name per worker process: a process reads its own pending entries back at once; those of
# a process that is gone are claimed after CRM_TRACKING_CLAIM_IDLE_SECONDS.
CONSUMER = f"{socket.gethostname()}-{os.getpid()}"
# Consumers with nothing pending and idle this long (processes gone) are removed from the group.
CONSUMER_FORGET_MS = 24 * 3600 * 1000

_json = msgspec.json.Encoder()

_VISITORS_UPSERT = f"""
INSERT INTO {Visitor._meta.db_table} AS visitor (id, first_seen_at, last_seen_at)
SELECT * FROM unnest(%s::uuid[], %s::timestamptz[], %s::timestamptz[])
ON CONFLICT (id) DO UPDATE SET
    first_seen_at = LEAST(visitor.first_seen_at, excluded.first_seen_at),
    last_seen_at = GREATEST(visitor.last_seen_at, excluded.last_seen_at)
RETURNING visitor.id, visitor.contact_id
"""

# The events go in with COPY (binding thousands of array elements as parameters costs more than
# the insert). When some may be stored already, they are copied into a temporary table of the
# session and moved in one statement; the table lives as long as the connection and is emptied
# before each use.
_INCOMING = "tracking_incoming_events"
_INCOMING_COLUMNS = (
    "id, visitor_id, session_key, kind, name, occurred_at, received_at, url, title, referrer, "
    "utm, properties"
)
_INCOMING_CREATE = f"""
CREATE TEMPORARY TABLE IF NOT EXISTS {_INCOMING} (
    id uuid, visitor_id uuid, session_key text, kind text, name text, occurred_at timestamptz,
    received_at timestamptz, url text, title text, referrer text, utm jsonb, properties jsonb
)
"""
# What comes back is the count, and the ids and contacts of the identified events only (most
# events are anonymous; reading every row back, two timestamps each parsed by the driver, cost
# about a third of a batch). The identified events are built from what was sent.
_EVENTS_INSERT = f"""
WITH inserted AS (
    INSERT INTO {Event._meta.db_table} AS event (
        id, visitor_id, contact_id, session_key, kind, name, occurred_at, received_at, url,
        title, referrer, utm, properties, rolled_up_at
    )
    SELECT e.id, e.visitor_id, visitor.contact_id, e.session_key, e.kind, e.name, e.occurred_at,
        e.received_at, e.url, e.title, e.referrer, e.utm, e.properties,
        CASE WHEN visitor.contact_id IS NULL THEN NULL ELSE %s::timestamptz END
    FROM pg_temp.{_INCOMING} AS e
    LEFT JOIN {Visitor._meta.db_table} AS visitor ON visitor.id = e.visitor_id
    ON CONFLICT (id) DO NOTHING
    RETURNING event.id, event.contact_id
)
SELECT count(*),
    array_agg(id) FILTER (WHERE contact_id IS NOT NULL),
    array_agg(contact_id) FILTER (WHERE contact_id IS NOT NULL)
FROM inserted
"""
# What the drain knows of an event it writes, in this order.
_WRITTEN = (
    "id",
    "visitor_id",
    "session_key",
    "kind",
    "name",
    "occurred_at",
    "received_at",
    "url",
    "title",
    "referrer",
    "utm",
    "properties",
)
# Event's fields in the model's order, in which instances are built positionally (the fast way).
_EVENT_FIELDS = [field.attname for field in Event._meta.concrete_fields]
_EVENTS_COPY = f"""
COPY {Event._meta.db_table} (
    id, visitor_id, contact_id, session_key, kind, name, occurred_at, received_at, url, title,
    referrer, utm, properties, rolled_up_at
) FROM STDIN
"""


def _moment(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def _properties(event) -> dict:
    if isinstance(event, ProductView):
        props = {"sku": event.sku, "category": event.category, "name": event.name}
        props = {key: value for key, value in props.items() if value}
        if event.price is not None:
            props["price"] = event.price
        return props
    if isinstance(event, Purchase):
        return {
            "order_id": event.order_id,
            "amount": event.amount,
            "currency": event.currency.upper(),
            "items": msgspec.to_builtins(event.items),
        }
    if isinstance(event, Custom):
        return event.props
    return {}


@dataclass
class BatchResult:
    inserted: int = 0
    rolled_up: int = 0
    identified: int = 0


@dataclass
class DrainResult:
    entries: int = 0
    inserted: int = 0
    rolled_up: int = 0
    identified: int = 0
    dead_lettered: int = 0
    batches: int = 0

    def add(self, done: BatchResult, *, entries: int) -> None:
        self.entries += entries
        self.inserted += done.inserted
        self.rolled_up += done.rolled_up
        self.identified += done.identified


def _visitors_upsert(batches: list[Stored]) -> dict[uuid.UUID, int]:
    """Upsert the batches' visitors, locking their rows; the contacts of those identified."""
    seen: dict[uuid.UUID, tuple[int, int]] = {}
    for stored in batches:
        times = [event.ts for event in stored.events] or [stored.r]
        first, last = min(times), max(times)
        if stored.v in seen:
            first, last = min(first, seen[stored.v][0]), max(last, seen[stored.v][1])
        seen[stored.v] = (first, last)
    ids = sorted(seen)
    with bound_cursor() as cursor:
        cursor.execute(
            _VISITORS_UPSERT,
            [
                ids,
                [_moment(seen[i][0]) for i in ids],
                [_moment(seen[i][1]) for i in ids],
            ],
        )
        return {visitor: contact for visitor, contact in cursor.fetchall() if contact}


def _events_gather(batches: list[Stored]) -> dict[uuid.UUID, tuple]:
    """The batches' events once each: id -> its values in _WRITTEN order."""
    written: dict[uuid.UUID, tuple] = {}
    for stored in batches:
        received = _moment(stored.r)
        for event in stored.events:
            if event.id in written:
                continue
            written[event.id] = (
                event.id,
                stored.v,
                stored.s,
                type(event).__struct_config__.tag,
                event.name if isinstance(event, Custom) else "",
                _moment(event.ts),
                received,
                event.url,
                event.title,
                event.referrer,
                msgspec.to_builtins(event.utm) if event.utm is not None else {},
                _properties(event),
            )
    return written


def _event(values: tuple, contact_id: int, now: datetime) -> Event:
    """An identified event's instance, from its values in _WRITTEN order."""
    fields = dict(zip(_WRITTEN, values, strict=True))
    fields.update(contact_id=contact_id, rolled_up_at=now)
    return Event(*(fields[name] for name in _EVENT_FIELDS))


def _events_insert(
    batches: list[Stored], now: datetime, contacts: dict[uuid.UUID, int]
) -> tuple[int, list[Event]]:
    """Insert the batches' events (`contacts`: the identified visitors' contacts, locked);
    returns how many were inserted now (not before), and those of them whose visitor is
    identified, with their contact."""
    written = _events_gather(batches)
    if not written:
        return 0, []
    try:
        # A savepoint: a COPY that meets an event stored before fails, and is undone.
        with transaction.atomic(), bound_cursor() as cursor, cursor.copy(_EVENTS_COPY) as copy:
            for values in written.values():
                contact_id = contacts.get(values[1])
                copy.write_row(
                    (
                        *values[:2],
                        contact_id,
                        *values[2:10],
                        _json.encode(values[10]).decode(),
                        _json.encode(values[11]).decode(),
                        now if contact_id else None,
                    )
                )
    except psycopg.errors.UniqueViolation:
        return _events_insert_new(written, now)
    identified = [
        _event(values, contacts[values[1]], now)
        for values in written.values()
        if values[1] in contacts
    ]
    return len(written), identified


def _events_insert_new(written: dict[uuid.UUID, tuple], now: datetime) -> tuple[int, list[Event]]:
    """_events_insert for events some of which are stored already: only the others go in."""
    with bound_cursor() as cursor:
        cursor.execute(_INCOMING_CREATE)
        cursor.execute(f"TRUNCATE pg_temp.{_INCOMING}")
        with cursor.copy(f"COPY pg_temp.{_INCOMING} ({_INCOMING_COLUMNS}) FROM STDIN") as copy:
            for values in written.values():
                copy.write_row(
                    (
                        *values[:10],
                        _json.encode(values[10]).decode(),
                        _json.encode(values[11]).decode(),
                    )
                )
        cursor.execute(_EVENTS_INSERT, [now])
        inserted, ids, contacts = cursor.fetchone()
    identified = [
        _event(written[event_id], contact_id, now)
        for event_id, contact_id in zip(ids or (), contacts or (), strict=True)
    ]
    return inserted, identified


def _identify(stored: Stored) -> bool:
    identity = stored.identity
    if identity.contact:
        contact = Contact.objects.filter(pk=identity.contact).first()
    else:
        contact = contact_for_email(identity.email)
    if contact is None:
        return False
    visitor_identify(visitor_id=stored.v, contact=contact, how=identity.how, at=_moment(stored.r))
    return True


@transaction.atomic
def batch_process(batches: list[Stored]) -> BatchResult:
    """Write one batch of stored requests into the current tenant's schema, in one
    transaction (see the module's docstring). Processing the same batch again changes
    nothing."""
    result = BatchResult()
    if not batches:
        return result
    now = timezone.now()
    contacts = _visitors_upsert(batches)
    result.inserted, identified = _events_insert(batches, now, contacts)
    events_roll_up(identified)
    result.rolled_up = len(identified)
    for stored in batches:
        if stored.identity is not None and _identify(stored):
            result.identified += 1
    return result


# --- reading the stream -------------------------------------------------------------------------


def _group_ensure(client: redis.Redis, stream: str) -> None:
    try:
        client.xgroup_create(stream, buffer.GROUP, id="0", mkstream=True)
    except redis.ResponseError as error:
        if "BUSYGROUP" not in str(error):
            raise


def _recovered(client: redis.Redis, stream: str) -> list[tuple[bytes, dict]]:
    """Entries read before but never acknowledged: this process's own (left by a failed run),
    else those of a process that is gone (pending longer than CRM_TRACKING_CLAIM_IDLE_SECONDS)."""
    count = settings.CRM_TRACKING_DRAIN_ENTRIES
    found = client.xreadgroup(buffer.GROUP, CONSUMER, {stream: "0"}, count=count)
    entries = found[0][1] if found else []
    if entries:
        return entries
    claimed = client.xautoclaim(
        stream,
        buffer.GROUP,
        CONSUMER,
        min_idle_time=int(settings.CRM_TRACKING_CLAIM_IDLE_SECONDS * 1000),
        start_id="0-0",
        count=count,
    )
    # Entries deleted meanwhile come back without fields.
    return [entry for entry in claimed[1] if entry[1]]


def _fresh(client: redis.Redis, stream: str) -> list[tuple[bytes, dict]]:
    found = client.xreadgroup(
        buffer.GROUP, CONSUMER, {stream: ">"}, count=settings.CRM_TRACKING_DRAIN_ENTRIES
    )
    return found[0][1] if found else []


def _consumers_prune(client: redis.Redis, stream: str) -> None:
    for consumer in client.xinfo_consumers(stream, buffer.GROUP):
        name = consumer["name"]
        name = name.decode() if isinstance(name, bytes) else name
        if name != CONSUMER and not consumer["pending"] and consumer["idle"] > CONSUMER_FORGET_MS:
            client.xgroup_delconsumer(stream, buffer.GROUP, name)


def _decode(entries, schema: str) -> tuple[list[tuple[bytes, dict, Stored]], list]:
    """The readable entries of this tenant, and the rest (to set aside)."""
    good, bad = [], []
    for entry_id, fields in entries:
        try:
            stored = decode_stored(fields[b"b"])
        except (KeyError, msgspec.ValidationError, msgspec.DecodeError):
            bad.append((entry_id, fields))
            continue
        if stored.t != schema:
            bad.append((entry_id, fields))
        else:
            good.append((entry_id, fields, stored))
    return good, bad


def _done(client: redis.Redis, stream: str, entry_ids: list[bytes]) -> None:
    with client.pipeline(transaction=False) as pipe:
        pipe.xack(stream, buffer.GROUP, *entry_ids)
        pipe.xdel(stream, *entry_ids)
        pipe.execute()


def _set_aside(client: redis.Redis, schema: str, entries, reason: str) -> None:
    """Move entries the drain cannot write to the tenant's dead-letter stream, counted."""
    stream = buffer.stream_key(schema)
    entry_ids = [entry_id for entry_id, _ in entries]
    with client.pipeline(transaction=True) as pipe:
        for entry_id, fields in entries:
            pipe.xadd(
                buffer.dead_key(schema),
                {**fields, b"entry": entry_id, b"reason": reason[:500]},
                maxlen=10_000,
                approximate=True,
            )
        pipe.hincrby(buffer.counters_key(schema), "drain_dead_lettered", len(entries))
        pipe.xack(stream, buffer.GROUP, *entry_ids)
        pipe.xdel(stream, *entry_ids)
        pipe.execute()
    logger.warning("tracking drain set %d entries of %s aside: %s", len(entries), schema, reason)


# Errors in the data itself (rare: ingest validated it), as opposed to a database or Redis that
# is away, after which the whole batch is simply read again.
# (The events go in through psycopg's own cursor, whose errors Django does not wrap.)
DATA_ERRORS = (
    # A row the models refuse (say, an identify's address a contact may not have).
    ValidationError,
    IntegrityError,
    DataError,
    psycopg.IntegrityError,
    psycopg.DataError,
    ValueError,
)


def _process(client: redis.Redis, schema: str, entries, result: DrainResult) -> None:
    good, bad = _decode(entries, schema)
    if bad:
        _set_aside(client, schema, bad, "unreadable, or made for another tenant")
        result.dead_lettered += len(bad)
    if not good:
        return
    try:
        done = batch_process([stored for _, _, stored in good])
    except DATA_ERRORS:
        # Entry by entry, so that one bad entry does not hold up the others (it is set aside).
        for item in good:
            _process_one(client, schema, item, result)
        return
    _done(client, buffer.stream_key(schema), [entry_id for entry_id, _, _ in good])
    result.add(done, entries=len(good))


def _process_one(client: redis.Redis, schema: str, item, result: DrainResult) -> None:
    entry_id, fields, stored = item
    try:
        done = batch_process([stored])
    except DATA_ERRORS as error:
        _set_aside(client, schema, [(entry_id, fields)], repr(error))
        result.dead_lettered += 1
        return
    _done(client, buffer.stream_key(schema), [entry_id])
    result.add(done, entries=1)


def drain(*, seconds: float | None = None) -> DrainResult | None:
    """Drain the current tenant's stream until it is empty or `seconds` (default
    CRM_TRACKING_DRAIN_SECONDS) have passed; None when another drain of this tenant is
    running. Runs in the tenant's schema and holds the tenant's drain lock meanwhile."""
    schema = connection.schema_name
    client = buffer.client()
    stream = buffer.stream_key(schema)
    client.delete(buffer.queued_key(schema))
    lock = client.lock(buffer.lock_key(schema), timeout=LOCK_SECONDS)
    if not lock.acquire(blocking=False):
        return None
    result = DrainResult()
    try:
        # Entries appended from now on mark the tenant dirty again, for the next dispatch.
        client.srem(buffer.DIRTY, schema)
        if not client.exists(stream):
            return result
        _group_ensure(client, stream)
        _consumers_prune(client, stream)
        deadline = time.monotonic() + (seconds or settings.CRM_TRACKING_DRAIN_SECONDS)
        recovering = True
        while time.monotonic() < deadline:
            entries = _recovered(client, stream) if recovering else []
            if not entries:
                recovering = False
                entries = _fresh(client, stream)
            if not entries:
                break
            _process(client, schema, entries, result)
            result.batches += 1
            lock.reacquire()
        else:
            # Out of time with entries left: the next dispatch carries on.
            client.sadd(buffer.DIRTY, schema)
        return result
    except Exception:
        # Left pending: the next dispatch reads them again.
        with contextlib.suppress(redis.RedisError):
            client.sadd(buffer.DIRTY, schema)
        raise
    finally:
        try:
            lock.release()
        except redis.exceptions.LockError:
            logger.warning("tracking drain of %s outlived its lock", schema)
