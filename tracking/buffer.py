"""The durable buffer between the ingest endpoint and the drain: one Redis stream per tenant.

Each accepted request is one stream entry (field `b`: the validated batch as JSON, carrying the
tenant's schema), appended by `tracking.ingest` in the same Lua call that counts it. The drain
(`tracking.drain`) reads a tenant's stream through the consumer group `drain`, writes the
events in one transaction, and only then acknowledges and deletes the entries, so the stream
holds exactly what is not yet in the database. It is never trimmed by length: when a tenant's
backlog reaches `CRM_TRACKING_BACKLOG_MAX` entries the endpoint refuses with 503 (counted)
instead of dropping what it had accepted. Redis must keep its data across restarts (the
embedded one runs with the append-only file).

Keys carry the schema in braces, so a tenant's keys stay together on a Redis cluster too.
"""

from functools import cache

import redis
from django.conf import settings

GROUP = "drain"
# Names the schemas whose streams got entries since their last drain began
# (tracking.tasks.tracking_drains_dispatch reads it every second).
DIRTY = "tracking:dirty"
# Requests refused for a host that is no tenant's.
UNKNOWN = "_unknown"

# What the counters hash holds, in the words the status page shows.
COUNTERS = {
    "accepted_requests": "Requests accepted",
    "accepted_events": "Events accepted",
    "dropped_too_old": "Events dropped: time too far in the past",
    "dropped_too_new": "Events dropped: time in the future",
    "refused_invalid": "Refused: malformed JSON or wrong fields",
    "refused_too_large": "Refused: body too large",
    "refused_origin": "Refused: site origin not registered",
    "refused_signature": "Refused: bad identify signature or token",
    "refused_rate_limited": "Refused: too many requests from one address",
    "refused_backlog": "Refused: backlog full (the drain is behind)",
    "drain_dead_lettered": "Set aside by the drain (unreadable)",
}


@cache
def client() -> redis.Redis:
    """The buffer's Redis (the app's REDIS_URL); one connection pool per process."""
    return redis.Redis.from_url(settings.REDIS_URL)


def stream_key(schema: str) -> str:
    return f"tracking:{{{schema}}}:events"


def dead_key(schema: str) -> str:
    """Entries the drain could not read, kept for a developer to look at."""
    return f"tracking:{{{schema}}}:dead"


def counters_key(schema: str) -> str:
    return f"tracking:{{{schema}}}:counters"


def lock_key(schema: str) -> str:
    return f"tracking:{{{schema}}}:drain-lock"


def queued_key(schema: str) -> str:
    return f"tracking:{{{schema}}}:drain-queued"
