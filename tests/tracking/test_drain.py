"""The drain: buffer -> events, visitors, timelines and scores, once, whatever happens."""

import uuid

import pytest
from django_tenants.utils import schema_context

from contacts.models import Contact
from contacts.services import contact_create
from tests.tracking.conftest import (
    SITE,
    batch,
    host,
    now_ms,
    page_view,
    post,
    site_origins_set,
    stream_length,
)
from tracking import buffer, drain
from tracking.identity import visitor_identify
from tracking.ingest import decode_stored
from tracking.models import Event, ScoreChange, TimelineEntry, Visitor

pytestmark = pytest.mark.django_db


@pytest.fixture
def ada(alpha_site):
    with schema_context(alpha_site.schema_name):
        yield contact_create(actor=None, first_name="Ada", email="ada@example.test")


def known_visitor(contact) -> uuid.UUID:
    visitor = uuid.uuid4()
    visitor_identify(visitor_id=visitor, contact=contact, how="identify")
    return visitor


def send(tenant, visitor, events, session="visit-1", **extra):
    answer = post(host(tenant), batch(visitor, events, session=session, **extra))
    assert answer.status == 202, answer.body
    return answer


def timeline(contact, kind=None):
    entries = TimelineEntry.objects.filter(contact=contact).order_by("occurred_at", "id")
    return list(entries.filter(kind=kind) if kind else entries)


def test_page_views_of_one_visit_are_one_timeline_entry_with_a_count(alpha_site, ada):
    visitor = known_visitor(ada)
    home, a = page_view(f"{SITE}/", "Home"), page_view(f"{SITE}/a", "A")
    send(alpha_site, visitor, [home, {**a, "ts": home["ts"] + 1}])
    send(alpha_site, visitor, [page_view(f"{SITE}/pricing", "Pricing")])
    send(alpha_site, visitor, [page_view(f"{SITE}/b", "B")], session="visit-2")

    result = drain.drain()

    assert result.entries == 3 and result.inserted == 4 and result.rolled_up == 4
    first, second = timeline(ada, "page_view")
    assert (first.count, first.session_key) == (3, "visit-1")
    assert first.summary == "Viewed 3 pages in one visit"
    assert first.detail.splitlines() == [
        f"Home — {SITE}/",
        f"A — {SITE}/a",
        f"Pricing — {SITE}/pricing",
    ]
    assert first.account_id == ada.account_id
    assert (second.count, second.summary) == (1, "Viewed B")
    events = Event.objects.filter(visitor_id=visitor)
    assert events.count() == 4
    assert not events.filter(contact__isnull=True).exists()
    assert not events.filter(rolled_up_at__isnull=True).exists()
    # Scored in the same transaction (tracking.scoring), one change per event.
    assert ScoreChange.objects.filter(contact=ada).count() == 4
    # Acknowledged and deleted: the stream holds only what is not in the database.
    assert stream_length(alpha_site) == 0


def test_products_purchases_and_custom_events_get_entries_of_their_own(alpha_site, ada):
    visitor = known_visitor(ada)
    ts = now_ms()
    events = [
        {"kind": "product_view", "id": str(uuid.uuid4()), "ts": ts, "sku": "K-1", "name": "Kettle"},
        {
            "kind": "purchase",
            "id": str(uuid.uuid4()),
            "ts": ts + 1,
            "order_id": "A-77",
            "amount": 59.9,
            "currency": "eur",
            "items": [{"sku": "K-1", "name": "Kettle", "quantity": 2}],
        },
        {"kind": "custom", "id": str(uuid.uuid4()), "ts": ts + 2, "name": "chat", "props": {}},
    ]
    send(alpha_site, visitor, events)

    drain.drain()

    entries = {entry.kind: entry for entry in timeline(ada)}
    assert entries["product_view"].summary == "Viewed the product Kettle"
    assert entries["purchase"].summary == "Bought order A-77 for 59.90 EUR"
    assert entries["purchase"].detail == "2 x Kettle"
    assert entries["custom"].summary == "Website event: chat"
    purchase = Event.objects.get(kind="purchase")
    assert purchase.properties["currency"] == "EUR" and purchase.properties["amount"] == 59.9


def test_an_anonymous_visitors_events_wait_for_an_identity(alpha_site, ada):
    visitor = uuid.uuid4()
    send(alpha_site, visitor, [page_view(), page_view()])

    result = drain.drain()

    assert result.inserted == 2 and result.rolled_up == 0
    assert Event.objects.filter(visitor_id=visitor, rolled_up_at__isnull=True).count() == 2
    seen = Visitor.objects.get(pk=visitor)
    assert seen.contact_id is None and seen.first_seen_at <= seen.last_seen_at
    assert timeline(ada, "page_view") == []


def test_a_batch_sent_twice_is_stored_and_counted_once(alpha_site, ada):
    visitor = known_visitor(ada)
    body = batch(visitor, [page_view(), page_view()], session="v")
    post(host(alpha_site), body)
    drain.drain()
    post(host(alpha_site), body)

    result = drain.drain()

    assert result.entries == 1 and result.inserted == 0
    (entry,) = timeline(ada, "page_view")
    assert entry.count == 2
    assert Event.objects.count() == 2
    assert ScoreChange.objects.filter(contact=ada).count() == 2


def test_a_batch_with_some_events_stored_before_inserts_and_rolls_up_only_the_others(
    alpha_site, ada
):
    visitor, stranger = known_visitor(ada), uuid.uuid4()
    seen = page_view(f"{SITE}/a", "A")
    send(alpha_site, visitor, [seen])
    drain.drain()
    # A browser resending an event along with new ones; an anonymous visitor in the same batch.
    send(alpha_site, visitor, [seen, page_view(f"{SITE}/b", "B")])
    send(alpha_site, stranger, [page_view(f"{SITE}/c", "C")])

    result = drain.drain()

    assert (result.entries, result.inserted, result.rolled_up) == (2, 2, 1)
    (entry,) = timeline(ada, "page_view")
    assert entry.count == 2
    assert ScoreChange.objects.filter(contact=ada).count() == 2
    assert Event.objects.filter(visitor_id=visitor, rolled_up_at__isnull=False).count() == 2
    waiting = Event.objects.get(visitor_id=stranger)
    assert waiting.contact_id is None and waiting.rolled_up_at is None


def test_processing_the_same_entries_twice_changes_nothing(alpha_site, ada):
    visitor = known_visitor(ada)
    send(alpha_site, visitor, [page_view(), page_view(f"{SITE}/x", "X")])
    entries = buffer.client().xrange(buffer.stream_key(alpha_site.schema_name))
    stored = [decode_stored(fields[b"b"]) for _id, fields in entries]

    first = drain.batch_process(stored)
    again = drain.batch_process(stored)

    assert (first.inserted, again.inserted) == (2, 0)
    (entry,) = timeline(ada, "page_view")
    assert entry.count == 2
    assert ScoreChange.objects.filter(contact=ada).count() == 2


def test_a_drain_that_fails_mid_batch_commits_nothing_and_the_next_one_loses_nothing(
    alpha_site, ada, monkeypatch
):
    visitor = known_visitor(ada)
    send(alpha_site, visitor, [page_view(), page_view()])
    send(alpha_site, uuid.uuid4(), [page_view()])
    roll_up = drain.events_roll_up

    def roll_up_then_crash(events):
        roll_up(events)
        raise RuntimeError("worker lost")

    monkeypatch.setattr(drain, "events_roll_up", roll_up_then_crash)
    with pytest.raises(RuntimeError):
        drain.drain()

    assert Event.objects.count() == 0 and timeline(ada, "page_view") == []
    assert stream_length(alpha_site) == 2
    assert buffer.client().sismember(buffer.DIRTY, alpha_site.schema_name)

    monkeypatch.setattr(drain, "events_roll_up", roll_up)
    result = drain.drain()

    assert result.entries == 2 and result.inserted == 3
    (entry,) = timeline(ada, "page_view")
    assert entry.count == 2
    assert stream_length(alpha_site) == 0


def test_entries_a_dead_worker_left_pending_are_claimed(alpha_site, ada, settings):
    visitor = known_visitor(ada)
    send(alpha_site, visitor, [page_view()])
    stream = buffer.stream_key(alpha_site.schema_name)
    client = buffer.client()
    # A worker in another process read the entry and was killed before it committed.
    drain._group_ensure(client, stream)
    (read,) = client.xreadgroup(buffer.GROUP, "gone-123", {stream: ">"}, count=10)
    assert len(read[1]) == 1
    settings.CRM_TRACKING_CLAIM_IDLE_SECONDS = 0

    result = drain.drain()

    assert result.entries == 1 and result.inserted == 1
    assert client.xpending(stream, buffer.GROUP)["pending"] == 0
    assert len(timeline(ada, "page_view")) == 1


def test_entries_pending_for_less_than_the_claim_time_are_left_to_their_worker(alpha_site, ada):
    send(alpha_site, uuid.uuid4(), [page_view()])
    stream = buffer.stream_key(alpha_site.schema_name)
    client = buffer.client()
    drain._group_ensure(client, stream)
    client.xreadgroup(buffer.GROUP, "busy-1", {stream: ">"}, count=10)

    result = drain.drain()

    assert result.entries == 0 and Event.objects.count() == 0


def test_a_second_drain_of_the_tenant_waits_for_the_first(alpha_site, ada):
    send(alpha_site, uuid.uuid4(), [page_view()])
    lock = buffer.client().lock(buffer.lock_key(alpha_site.schema_name), timeout=30)
    assert lock.acquire(blocking=False)
    try:
        assert drain.drain() is None
    finally:
        lock.release()
    assert Event.objects.count() == 0
    assert drain.drain().inserted == 1


def test_each_tenants_events_go_to_its_own_schema(alpha_site, in_alpha, beta):
    site_origins_set(beta, [SITE])
    visitor = uuid.uuid4()
    send(alpha_site, visitor, [page_view(title="alpha page")])
    send(beta, visitor, [page_view(title="beta page"), page_view(title="beta page")])

    with schema_context(beta.schema_name):
        drained = drain.drain()
        assert drained.inserted == 2
        assert list(Event.objects.values_list("title", flat=True)) == ["beta page"] * 2

    assert Event.objects.count() == 0
    assert stream_length(alpha_site) == 1
    assert drain.drain().inserted == 1
    assert list(Event.objects.values_list("title", flat=True)) == ["alpha page"]


def test_an_entry_naming_another_tenant_is_set_aside_and_never_written(alpha_site, in_alpha, beta):
    """Defence in depth: even if an entry reached the wrong stream, its schema is checked."""
    site_origins_set(beta, [SITE])
    send(beta, uuid.uuid4(), [page_view(title="beta only")])
    client = buffer.client()
    ((_id, fields),) = client.xrange(buffer.stream_key(beta.schema_name))
    client.xadd(buffer.stream_key(alpha_site.schema_name), fields)

    result = drain.drain()

    assert result.dead_lettered == 1 and result.inserted == 0
    assert Event.objects.count() == 0
    assert client.xlen(buffer.dead_key(alpha_site.schema_name)) == 1
    assert stream_length(alpha_site) == 0
    counters = client.hgetall(buffer.counters_key(alpha_site.schema_name))
    assert counters[b"drain_dead_lettered"] == b"1"


def test_identify_in_a_batch_joins_the_earlier_anonymous_events(alpha_site, ada):
    from tests.tracking.test_ingest import tracking_settings_of
    from tracking.ingest import identify_signature

    visitor = uuid.uuid4()
    send(alpha_site, visitor, [page_view(title="Before")], session="visit-9")
    drain.drain()
    secret = tracking_settings_of(alpha_site).identify_secret
    identify = {
        "email": "ADA@example.test",
        "signature": identify_signature(secret, "ADA@example.test"),
    }
    send(alpha_site, visitor, [page_view(title="After")], session="visit-9", identify=identify)

    result = drain.drain()

    assert result.identified == 1
    assert Visitor.objects.get(pk=visitor).contact == ada
    (entry,) = timeline(ada, "page_view")
    assert entry.count == 2
    assert "Before" in entry.detail and "After" in entry.detail
    assert not Event.objects.filter(rolled_up_at__isnull=True).exists()


def test_identify_with_an_unknown_address_makes_a_contact(alpha_site, in_alpha):
    from tests.tracking.test_ingest import tracking_settings_of
    from tracking.ingest import identify_signature

    visitor = uuid.uuid4()
    secret = tracking_settings_of(alpha_site).identify_secret
    identify = {
        "email": "new@example.test",
        "signature": identify_signature(secret, "new@example.test"),
    }
    send(alpha_site, visitor, [page_view()], identify=identify)

    drain.drain()

    contact = Contact.objects.get(email="new@example.test")
    assert contact.source == "website"
    assert Visitor.objects.get(pk=visitor).contact == contact
    assert len(timeline(contact, "page_view")) == 1


def test_an_entry_the_database_refuses_is_set_aside_and_the_others_go_in(alpha_site, ada):
    from tracking.ingest import _encode

    visitor = known_visitor(ada)
    send(alpha_site, visitor, [page_view(title="Before")])
    poison = decode_stored(
        buffer.client().xrange(buffer.stream_key(alpha_site.schema_name))[0][1][b"b"]
    )
    poison.events[0].id, poison.events[0].title = uuid.uuid4(), "a\x00b"
    buffer.client().xadd(buffer.stream_key(alpha_site.schema_name), {"b": _encode(poison)})
    send(alpha_site, visitor, [page_view(title="After")])

    result = drain.drain()

    assert (result.entries, result.dead_lettered) == (2, 1)
    assert sorted(Event.objects.values_list("title", flat=True)) == ["After", "Before"]
    assert buffer.client().xlen(buffer.dead_key(alpha_site.schema_name)) == 1
    assert stream_length(alpha_site) == 0
