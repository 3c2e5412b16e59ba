"""Reads for website tracking: the tenant's settings, what the ingest endpoint counted, and the
merges a browser's identities suggest. All of them run in the current tenant's schema."""

from dataclasses import dataclass

from django.db import connection
from django.db.models import F, Q

from contacts.models import Contact
from crm import access
from tracking import buffer
from tracking.models import MergeOffer, TrackingSettings


def tracking_settings() -> TrackingSettings:
    """The tenant's tracking settings row, created with the defaults on first use."""
    found = TrackingSettings.objects.order_by("pk").first()
    if found is None:
        found, _ = TrackingSettings.objects.get_or_create(pk=1)
    return found


@dataclass(frozen=True)
class IngestStatus:
    """What the ingest endpoint counted for the tenant since the counters began, and how far
    the drain is behind (entries = accepted requests not yet in the database)."""

    counters: list[tuple[str, str, int]]  # (key, label, count)
    backlog_entries: int
    dead_entries: int

    def count(self, key: str) -> int:
        return next((value for name, _label, value in self.counters if name == key), 0)


def ingest_status() -> IngestStatus:
    schema = connection.schema_name
    with buffer.client().pipeline(transaction=False) as pipe:
        pipe.hgetall(buffer.counters_key(schema))
        pipe.xlen(buffer.stream_key(schema))
        pipe.xlen(buffer.dead_key(schema))
        raw, backlog, dead = pipe.execute()
    values = {key.decode(): int(value) for key, value in raw.items()}
    return IngestStatus(
        counters=[(key, label, values.get(key, 0)) for key, label in buffer.COUNTERS.items()],
        backlog_entries=backlog,
        dead_entries=dead,
    )


@dataclass(frozen=True)
class MergeSuggestion:
    """Another contact the same browser identified as, and the merge page for the pair."""

    other: Contact
    kept: Contact
    merged: Contact
    how: str


# A browser shared by many people (a kiosk, a family computer) can link a contact to many
# others; the page offers the first 20 the user may see, out of this many.
OFFERS_READ = 200


def merge_suggestions(user, contact: Contact) -> list[MergeSuggestion]:
    """Contacts that share a browser with `contact`, among those the user may see and merge;
    the contact the browser was linked to first is the one kept by default.

    The contact's offers come first (on most pages there are none, and that is one plain
    query); only then is the user's reach asked about the contacts they name."""
    if not access.can(user, "records.merge"):
        return []
    offers = list(
        MergeOffer.objects.filter(Q(contact=contact) | Q(other=contact))
        .exclude(contact=F("other"))
        .select_related("contact", "other")
        .order_by("created_at", "pk")[:OFFERS_READ]
    )
    if not offers:
        return []
    named = {offer.contact_id for offer in offers} | {offer.other_id for offer in offers}
    seen = set(access.contacts_for(user).filter(pk__in=named).values_list("pk", flat=True))
    return [
        MergeSuggestion(
            other=offer.other if offer.contact_id == contact.pk else offer.contact,
            kept=offer.contact,
            merged=offer.other,
            how=offer.how,
        )
        for offer in offers
        if offer.contact_id in seen and offer.other_id in seen
    ][:20]
