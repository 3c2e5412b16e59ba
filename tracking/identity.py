"""Who a browser is: linking the snippet's anonymous visitor to a contact (identity stitching),
and the signed token that an e-mail click carries to the tenant's site.

A visitor is identified in three ways, each proven: the tenant's own site calls `identify` with
the e-mail and its HMAC under the tenant's identify secret (checked by `tracking.ingest`); the
visitor arrives from a campaign e-mail's click, whose redirect adds `crm_vt=<visitor token>` to
the target when it is one of the tenant's sites (`url_with_visitor_token`); or the visitor fills
a lead form whose post carries the snippet's visitor id.

Identification links the visitor to the contact and rolls all of its earlier anonymous events
into the contact's history. A contact may have several visitors (phone and laptop). A visitor
already linked to another contact stays linked to it: two identified contacts are never merged
automatically (that would break consent and history); a MergeOffer tells the salesperson.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from django.core import signing
from django.db import connection, transaction
from django.utils import timezone

from contacts.models import Contact
from contacts.services import contact_create
from tracking.models import Event, MergeOffer, Visitor
from tracking.rollup import events_roll_up

TOKEN_SALT = "tracking.identity.visitor"
# The redirect makes the token at the moment of the click and the page reads it at once.
TOKEN_MAX_AGE = timedelta(days=2)
TOKEN_PARAM = "crm_vt"
# The field a lead form's post carries the snippet's visitor id in (static/leads/embed.js).
VISITOR_FIELD = "crm_visitor"


class How:
    IDENTIFY = "identify"
    EMAIL_CLICK = "email_click"
    FORM = "form"


def visitor_id_parse(value) -> uuid.UUID | None:
    """The visitor id in a value a browser sent, or None when it is not one."""
    if not isinstance(value, str) or len(value) > 36:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def visitor_token(*, contact_id: int) -> str:
    """A token naming a contact of the current tenant, for `crm_vt` on an e-mail click."""
    return signing.dumps({"t": connection.schema_name, "c": contact_id}, salt=TOKEN_SALT)


def visitor_token_read(token: str, *, schema: str) -> int | None:
    """The contact id a visitor token names, if it is intact, recent and made for `schema`."""
    try:
        data = signing.loads(token, salt=TOKEN_SALT, max_age=TOKEN_MAX_AGE)
    except signing.BadSignature:
        return None
    if not isinstance(data, dict) or data.get("t") != schema:
        return None
    contact_id = data.get("c")
    return contact_id if isinstance(contact_id, int) and contact_id > 0 else None


def origin_of(url: str) -> str:
    """scheme://host[:port] of a URL, lower case ('' when it has none)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    if not parts.scheme or not parts.netloc:
        return ""
    return f"{parts.scheme}://{parts.netloc}".lower()


def url_with_visitor_token(url: str, *, contact_id: int, site_origins) -> str:
    """`url` with the contact's visitor token added when it points at one of the tenant's
    sites (`site_origins`); any other URL unchanged, so no token leaves for a third party."""
    if origin_of(url) not in {origin.lower() for origin in site_origins}:
        return url
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != TOKEN_PARAM]
    query.append((TOKEN_PARAM, visitor_token(contact_id=contact_id)))
    return urlunsplit(parts._replace(query=urlencode(query)))


def _email_lock(email: str) -> None:
    """Hold, until the transaction ends, a lock on this address in this tenant, so that two
    identifications of one new address make one contact."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
            [f"tracking.identity:{connection.schema_name}:{email.lower()}"],
        )


@transaction.atomic
def contact_for_email(email: str) -> Contact:
    """The contact with this e-mail (the oldest, in any case), or a new one from the website:
    the tenant's own server vouched for the address by signing it."""
    _email_lock(email)
    found = Contact.objects.filter(email__iexact=email).order_by("pk").first()
    if found is not None:
        return found
    return contact_create(
        actor=None, email=email, first_name=email.split("@")[0][:100], source="website"
    )


@dataclass(frozen=True)
class Identification:
    visitor: Visitor
    # The contact whose history the visitor's events join (the earlier one, on a conflict).
    contact_id: int
    # Set when the visitor was already another contact's: the merge offered instead.
    offer: MergeOffer | None
    rolled_up: int


@transaction.atomic
def visitor_identify(
    *, visitor_id, contact: Contact, how: str, at: datetime | None = None
) -> Identification:
    """Link the visitor (the snippet's id) to `contact` and roll its waiting anonymous events
    into the contact's timeline and score, in one transaction. A visitor already linked to
    another contact keeps that link and a MergeOffer records the other identity. Safe to call
    again: nothing is rolled up twice.

    Locks the visitor's row: the drain upserts visitors before it inserts their events, so an
    event is either inserted after this commits (and takes the contact) or before this reads
    the waiting events (and is rolled up here)."""
    at = at or timezone.now()
    visitor_id = uuid.UUID(str(visitor_id))
    Visitor.objects.bulk_create(
        [Visitor(id=visitor_id, first_seen_at=at, last_seen_at=at)], ignore_conflicts=True
    )
    visitor = Visitor.objects.select_for_update().get(pk=visitor_id)
    offer = None
    if visitor.contact_id is None:
        visitor.contact = contact
        visitor.identified_at = at
        visitor.save(update_fields=["contact", "identified_at"])
    elif visitor.contact_id != contact.pk:
        offer = MergeOffer(
            contact_id=visitor.contact_id,
            other=contact,
            visitor_id=visitor_id,
            how=how,
            created_at=at,
        )
        MergeOffer.objects.bulk_create([offer], ignore_conflicts=True)
    rolled_up = _waiting_roll_up(visitor)
    return Identification(
        visitor=visitor, contact_id=visitor.contact_id, offer=offer, rolled_up=rolled_up
    )


def _waiting_roll_up(visitor: Visitor) -> int:
    """Give the visitor's events that wait for an identity to its contact, and roll them up."""
    waiting = list(
        Event.objects.select_for_update().filter(visitor_id=visitor.pk, rolled_up_at__isnull=True)
    )
    if not waiting:
        return 0
    now = timezone.now()
    Event.objects.filter(pk__in=[event.pk for event in waiting]).update(
        contact=visitor.contact_id, rolled_up_at=now
    )
    for event in waiting:
        event.contact_id, event.rolled_up_at = visitor.contact_id, now
    events_roll_up(waiting)
    return len(waiting)
