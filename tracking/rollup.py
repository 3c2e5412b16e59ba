"""Rolling website events into contacts' histories: the 360-degree timeline and the score.

Two callers: the drain, for events of visitors already identified when they arrive, and identity
stitching, for a visitor's earlier anonymous events. Both mark the events rolled up in the same
transaction as they call `events_roll_up`, and pass only events they have just inserted or just
claimed, so that an event is rolled up once however often its batch is processed.

The page views of one visit (the snippet's session key) are one timeline entry with a count,
kept by the unique index on (contact, kind, session key): a later batch of the same visit adds
to that entry's count in the same statement. Product views, purchases and custom events get an
entry each.
"""

from collections import defaultdict
from contextlib import contextmanager
from urllib.parse import urlsplit

import psycopg
from django.db import connection

from contacts.models import Contact
from tracking.models import Event, TimelineEntry
from tracking.scoring import score_events

DETAIL_MAX = 4000

_COLUMNS = "contact_id, account_id, kind, occurred_at, summary, detail, session_key, count"
_ROWS = """SELECT * FROM unnest(
    %s::bigint[], %s::bigint[], %s::varchar[], %s::timestamptz[], %s::varchar[], %s::text[],
    %s::varchar[], %s::integer[]
)"""
_SINGLES_INSERT = f"INSERT INTO {TimelineEntry._meta.db_table} ({_COLUMNS}) {_ROWS}"
_VISITS_UPSERT = f"""
INSERT INTO {TimelineEntry._meta.db_table} AS entry ({_COLUMNS}) {_ROWS}
ON CONFLICT (contact_id, kind, session_key) WHERE NOT (session_key = '')
DO UPDATE SET
    count = entry.count + excluded.count,
    occurred_at = GREATEST(entry.occurred_at, excluded.occurred_at),
    summary = 'Viewed ' || (entry.count + excluded.count) || ' pages in one visit',
    detail = left(entry.detail || E'\\n' || excluded.detail, {DETAIL_MAX})
"""


@contextmanager
def bound_cursor():
    """A cursor on Django's connection (its transaction and the tenant's search path) that
    binds parameters on the server. Django's own cursor binds on the client, spelling every
    element of an array parameter out in the SQL text, which costs more than the statement."""
    with connection.cursor(), psycopg.Cursor(connection.connection) as cursor:
        yield cursor


def _path(url: str) -> str:
    try:
        return urlsplit(url).path or "/"
    except ValueError:
        return url[:200]


def _page(event: Event) -> str:
    """One line of a visit's detail: the page's title and address."""
    return f"{event.title} — {event.url}" if event.title else event.url


def _describe(event: Event) -> tuple[str, str]:
    """The summary and detail of an event's own timeline entry."""
    props = event.properties or {}
    if event.kind == Event.Kind.PAGE_VIEW:
        return f"Viewed {event.title or _path(event.url)}", event.url
    if event.kind == Event.Kind.PRODUCT_VIEW:
        label = props.get("name") or props.get("sku") or _path(event.url)
        lines = [
            f"{name}: {props[key]}"
            for key, name in (("sku", "SKU"), ("category", "Category"))
            if props.get(key)
        ]
        return f"Viewed the product {label}", "\n".join([*lines, event.url]).strip()
    if event.kind == Event.Kind.PURCHASE:
        amount = f"{props.get('amount', 0):.2f} {props.get('currency', '')}".strip()
        items = [
            f"{item.get('quantity', 1)} x {item.get('name') or item.get('sku') or 'item'}"
            for item in props.get("items", [])
        ]
        return f"Bought order {props.get('order_id', '')} for {amount}", "\n".join(items)
    detail = "\n".join(f"{key}: {value}" for key, value in props.items())
    return f"Website event: {event.name}", detail


def _entries(events: list[Event], accounts: dict[int, int | None]) -> tuple[list, list]:
    """Timeline rows (in the order of _COLUMNS): one per visit's page views, to upsert, and
    one per other event."""
    by_visit: dict[tuple[int, str], list[Event]] = defaultdict(list)
    singles = []
    for event in sorted(events, key=lambda e: e.occurred_at):
        if event.kind == Event.Kind.PAGE_VIEW and event.session_key:
            by_visit[(event.contact_id, event.session_key)].append(event)
            continue
        summary, detail = _describe(event)
        singles.append(
            (
                event.contact_id,
                accounts.get(event.contact_id),
                event.kind,
                event.occurred_at,
                summary[:300],
                detail[:DETAIL_MAX],
                "",
                1,
            )
        )
    visits = []
    for (contact_id, session_key), views in by_visit.items():
        summary = (
            _describe(views[0])[0] if len(views) == 1 else f"Viewed {len(views)} pages in one visit"
        )
        visits.append(
            (
                contact_id,
                accounts.get(contact_id),
                TimelineEntry.Kind.PAGE_VIEW,
                views[-1].occurred_at,
                summary[:300],
                "\n".join(_page(view) for view in views)[:DETAIL_MAX],
                session_key,
                len(views),
            )
        )
    return visits, singles


def events_roll_up(events: list[Event]) -> None:
    """Put events that carry their contact on the contacts' timelines and into their scores,
    in the caller's transaction (see the module's docstring: once per event)."""
    events = [event for event in events if event.contact_id is not None]
    if not events:
        return
    accounts = dict(
        Contact.objects.filter(pk__in={event.contact_id for event in events}).values_list(
            "pk", "account_id"
        )
    )
    visits, singles = _entries(events, accounts)
    with bound_cursor() as cursor:
        for statement, rows in ((_VISITS_UPSERT, visits), (_SINGLES_INSERT, singles)):
            if rows:
                cursor.execute(statement, [list(column) for column in zip(*rows, strict=True)])
    score_events(events=events)
