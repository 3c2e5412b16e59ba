"""The ingest endpoint: what it accepts into the buffer, and what bad input gets (a 4xx with a
JSON body, counted, nothing stored, and the endpoint keeps serving)."""

import json
import uuid

import pytest

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
from tracking import buffer
from tracking.ingest import MAX_BODY, decode_stored, identify_signature
from tracking.selectors import ingest_status, tracking_settings

pytestmark = pytest.mark.django_db


def stored_batches(tenant):
    entries = buffer.client().xrange(buffer.stream_key(tenant.schema_name))
    return [decode_stored(fields[b"b"]) for _id, fields in entries]


def counters(tenant) -> dict[str, int]:
    raw = buffer.client().hgetall(buffer.counters_key(tenant.schema_name))
    return {key.decode(): int(value) for key, value in raw.items()}


def test_a_batch_is_appended_to_the_tenants_buffer_in_one_entry_and_answered_202(alpha_site):
    visitor = uuid.uuid4()
    events = [page_view(title=f"Page {n}") for n in range(20)]

    answer = post(host(alpha_site), batch(visitor, events, session="visit-1"))

    assert answer.status == 202
    assert answer.json == {"accepted": 20, "dropped": 0}
    assert answer.headers["Access-Control-Allow-Origin"] == SITE
    (stored,) = stored_batches(alpha_site)
    assert stored.t == alpha_site.schema_name
    assert stored.v == visitor and stored.s == "visit-1"
    assert [str(e.id) for e in stored.events] == [e["id"] for e in events]
    assert counters(alpha_site) == {"accepted_requests": 1, "accepted_events": 20}
    assert buffer.client().sismember(buffer.DIRTY, alpha_site.schema_name)


def test_every_kind_of_event_and_application_json_are_accepted(alpha_site):
    ts = now_ms()
    events = [
        page_view(utm={"source": "news", "campaign": "spring"}, referrer="https://search.test/"),
        {"kind": "product_view", "id": str(uuid.uuid4()), "ts": ts, "sku": "A-1", "price": 9.5},
        {
            "kind": "purchase",
            "id": str(uuid.uuid4()),
            "ts": ts,
            "order_id": "1001",
            "amount": 120,
            "currency": "eur",
            "items": [{"sku": "A-1", "quantity": 2, "price": 60}],
        },
        {"kind": "custom", "id": str(uuid.uuid4()), "ts": ts, "name": "video", "props": {"s": 3}},
    ]

    answer = post(host(alpha_site), batch(uuid.uuid4(), events), content_type="application/json")

    assert answer.status == 202, answer.body
    (stored,) = stored_batches(alpha_site)
    assert [type(e).__name__ for e in stored.events] == [
        "PageView",
        "ProductView",
        "Purchase",
        "Custom",
    ]
    assert stored.events[0].utm.campaign == "spring"


def test_an_events_time_is_the_servers_less_its_age_when_sent(alpha_site):
    """A browser whose clock is an hour fast: its events keep their age, not its clock."""
    fast = now_ms() + 3_600_000
    event = {**page_view(), "ts": fast - 5_000}

    before = now_ms()
    post(host(alpha_site), {**batch(uuid.uuid4(), [event]), "sent_at": fast})

    (stored,) = stored_batches(alpha_site)
    assert before - 5_000 <= stored.events[0].ts <= now_ms() - 5_000


def test_events_too_old_or_in_the_future_are_dropped_and_counted(alpha_site):
    day = 24 * 3600 * 1000
    events = [
        {**page_view(), "ts": now_ms() - 8 * day},
        {**page_view(), "ts": now_ms() + 3_600_000},
        page_view(title="kept"),
    ]

    answer = post(host(alpha_site), batch(uuid.uuid4(), events))

    assert answer.status == 202
    assert answer.json == {"accepted": 1, "dropped": 2}
    (stored,) = stored_batches(alpha_site)
    assert [e.title for e in stored.events] == ["kept"]
    found = counters(alpha_site)
    assert found["dropped_too_old"] == 1 and found["dropped_too_new"] == 1


def test_a_batch_with_every_event_dropped_stores_nothing(alpha_site):
    answer = post(host(alpha_site), batch(uuid.uuid4(), [{**page_view(), "ts": 1}]))

    assert answer.status == 202 and answer.json == {"accepted": 0, "dropped": 1}
    assert stream_length(alpha_site) == 0


BAD_BATCHES = {
    "malformed JSON": '{"v": "',
    "not an object": "[1, 2]",
    "no visitor": {"events": []},
    "visitor not a uuid": {"v": "me"},
    "unknown kind": {"v": str(uuid.uuid4()), "events": [{**page_view(), "kind": "email_open"}]},
    "wrong type": {"v": str(uuid.uuid4()), "events": [{**page_view(), "ts": "yesterday"}]},
    "string too long": {"v": str(uuid.uuid4()), "events": [page_view(title="x" * 301)]},
    "purchase without amount": {
        "v": str(uuid.uuid4()),
        "events": [{"kind": "purchase", "id": str(uuid.uuid4()), "ts": 1, "order_id": "1"}],
    },
    "nested custom property": {
        "v": str(uuid.uuid4()),
        "events": [
            {"kind": "custom", "id": str(uuid.uuid4()), "ts": 1, "name": "x", "props": {"a": []}}
        ],
    },
    "too many events": {"v": str(uuid.uuid4()), "events": [page_view() for _ in range(101)]},
    "bad session key": {"v": str(uuid.uuid4()), "s": "<script>", "events": [page_view()]},
    "NUL character": {"v": str(uuid.uuid4()), "events": [page_view(title="a\x00b")]},
}


@pytest.mark.parametrize("body", BAD_BATCHES.values(), ids=BAD_BATCHES.keys())
def test_bad_batches_get_400_with_the_reason_are_counted_and_store_nothing(alpha_site, body):
    answer = post(host(alpha_site), body)

    assert answer.status == 400
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.json["error"] == "invalid" and answer.json["detail"]
    assert stream_length(alpha_site) == 0
    assert counters(alpha_site) == {"refused_invalid": 1}
    # The endpoint keeps serving.
    assert post(host(alpha_site), batch(uuid.uuid4(), [page_view()])).status == 202


def test_a_body_over_64_kb_gets_413(alpha_site):
    body = json.dumps(batch(uuid.uuid4(), [page_view(url=SITE + "/" + "x" * 1900)] * 40))
    assert len(body) > MAX_BODY

    answer = post(host(alpha_site), body)

    assert answer.status == 413 and answer.json["error"] == "too_large"
    assert counters(alpha_site) == {"refused_too_large": 1}
    assert stream_length(alpha_site) == 0


def test_other_content_types_and_methods_are_refused(alpha_site):
    form = post(host(alpha_site), "v=1", content_type="application/x-www-form-urlencoded")
    get = post(host(alpha_site), "", method="GET")

    assert form.status == 415 and form.json["error"] == "unsupported_media_type"
    assert get.status == 405 and get.headers["Allow"] == "POST, OPTIONS"
    assert stream_length(alpha_site) == 0


def test_an_unknown_host_gets_404_and_is_counted_apart(alpha_site):
    answer = post("nobody.localhost", batch(uuid.uuid4(), [page_view()]))
    public = post("localhost", batch(uuid.uuid4(), [page_view()]))
    stranger = post("evil.example", batch(uuid.uuid4(), [page_view()]))

    assert answer.status == 404 and answer.json["error"] == "unknown_site"
    assert public.status == 404 and stranger.status == 404
    assert "Access-Control-Allow-Origin" not in answer.headers
    unknown = buffer.client().hgetall(buffer.counters_key(buffer.UNKNOWN))
    assert unknown == {b"refused_unknown_host": b"3"}
    assert counters(alpha_site) == {}


def test_only_registered_site_origins_may_post_and_get_cors_headers(alpha_site):
    stranger = post(
        host(alpha_site), batch(uuid.uuid4(), [page_view()]), origin="https://evil.test"
    )
    server = post(host(alpha_site), batch(uuid.uuid4(), [page_view()]), origin=None)

    assert stranger.status == 403 and stranger.json["error"] == "origin_not_allowed"
    assert "Access-Control-Allow-Origin" not in stranger.headers
    assert server.status == 202 and "Access-Control-Allow-Origin" not in server.headers
    assert counters(alpha_site)["refused_origin"] == 1
    assert stream_length(alpha_site) == 1


def test_the_preflight_allows_registered_origins_only(alpha_site):
    allowed = post(host(alpha_site), "", method="OPTIONS")
    other = post(host(alpha_site), "", method="OPTIONS", origin="https://evil.test")

    assert allowed.status == 204
    assert allowed.headers["Access-Control-Allow-Origin"] == SITE
    assert allowed.headers["Access-Control-Allow-Methods"] == "POST, OPTIONS"
    assert allowed.headers["Access-Control-Allow-Headers"] == "Content-Type"
    assert other.status == 403 and "Access-Control-Allow-Origin" not in other.headers


def test_a_tenants_origins_do_not_open_another_tenants_endpoint(alpha_site, beta):
    site_origins_set(beta, ["https://beta-site.test"])

    answer = post(host(beta), batch(uuid.uuid4(), [page_view()]), origin=SITE)

    assert answer.status == 403
    assert stream_length(beta) == 0 and stream_length(alpha_site) == 0


def test_each_tenants_batches_go_to_its_own_stream(alpha_site, beta):
    site_origins_set(beta, [SITE])

    post(host(alpha_site), batch(uuid.uuid4(), [page_view(title="for alpha")]))
    post(host(beta), batch(uuid.uuid4(), [page_view(title="for beta")]))

    assert [b.events[0].title for b in stored_batches(alpha_site)] == ["for alpha"]
    assert [b.events[0].title for b in stored_batches(beta)] == ["for beta"]
    assert [b.t for b in stored_batches(beta)] == [beta.schema_name]


def test_an_address_hammering_the_endpoint_gets_429_with_retry_after(alpha_site, settings):
    settings.CRM_TRACKING_IP_LIMIT = 3

    answers = [
        post(host(alpha_site), batch(uuid.uuid4(), [page_view()]), ip="10.0.0.9") for _ in range(5)
    ]
    other_address = post(host(alpha_site), batch(uuid.uuid4(), [page_view()]), ip="10.0.0.10")

    assert [a.status for a in answers] == [202, 202, 202, 429, 429]
    assert answers[-1].json["error"] == "rate_limited"
    assert int(answers[-1].headers["Retry-After"]) >= 1
    assert other_address.status == 202
    assert stream_length(alpha_site) == 4
    assert counters(alpha_site)["refused_rate_limited"] == 2


def test_a_full_backlog_gets_503_and_keeps_what_it_had(alpha_site, settings):
    settings.CRM_TRACKING_BACKLOG_MAX = 2
    statuses = [post(host(alpha_site), batch(uuid.uuid4(), [page_view()])).status for _ in range(3)]

    assert statuses == [202, 202, 503]
    assert stream_length(alpha_site) == 2
    assert counters(alpha_site)["refused_backlog"] == 1


def test_identify_with_the_tenants_signature_is_stored_with_the_batch(alpha_site):
    secret = tracking_settings_of(alpha_site).identify_secret
    email = "Ada@Example.test"
    body = batch(
        uuid.uuid4(),
        [page_view()],
        identify={"email": email, "signature": identify_signature(secret, email)},
    )

    answer = post(host(alpha_site), body)

    assert answer.status == 202
    (stored,) = stored_batches(alpha_site)
    assert stored.identity.how == "identify" and stored.identity.email == email


@pytest.mark.parametrize(
    "identify",
    [
        {"email": "ada@example.test", "signature": "0" * 64},
        {"email": "ada@example.test"},
        {"token": "forged:token"},
    ],
    ids=["forged signature", "no signature", "forged token"],
)
def test_a_forged_identify_gets_403_and_stores_nothing(alpha_site, identify):
    answer = post(host(alpha_site), batch(uuid.uuid4(), [page_view()], identify=identify))

    assert answer.status == 403 and answer.json["error"] == "bad_signature"
    assert stream_length(alpha_site) == 0
    assert counters(alpha_site) == {"refused_signature": 1}


@pytest.mark.parametrize(
    ("email", "signature", "error"),
    [
        ("jörg@intranet", None, "bad_email"),
        ("ada@example.test", "é" * 64, "invalid"),
    ],
    ids=["signed address no contact may have", "non-hex signature"],
)
def test_an_identify_that_could_never_be_stored_gets_400_and_stores_nothing(
    alpha_site, email, signature, error
):
    secret = tracking_settings_of(alpha_site).identify_secret
    identify = {"email": email, "signature": signature or identify_signature(secret, email)}

    answer = post(host(alpha_site), batch(uuid.uuid4(), [page_view()], identify=identify))

    assert answer.status == 400 and answer.json["error"] == error
    assert stream_length(alpha_site) == 0


def test_a_signature_made_with_another_tenants_secret_is_refused(alpha_site, beta):
    email = "ada@example.test"
    beta_secret = tracking_settings_of(beta).identify_secret
    body = batch(
        uuid.uuid4(), identify={"email": email, "signature": identify_signature(beta_secret, email)}
    )

    assert post(host(alpha_site), body).status == 403


def test_the_counters_are_read_for_the_status_page(alpha_site):
    post(host(alpha_site), batch(uuid.uuid4(), [page_view(), page_view()]))
    post(host(alpha_site), "{")

    from django_tenants.utils import schema_context

    with schema_context(alpha_site.schema_name):
        status = ingest_status()

    assert status.count("accepted_events") == 2
    assert status.count("refused_invalid") == 1
    assert status.backlog_entries == 1


def tracking_settings_of(tenant):
    from django_tenants.utils import schema_context

    with schema_context(tenant.schema_name):
        return tracking_settings()


def test_when_redis_is_away_the_answer_is_503_not_a_crash(alpha_site, monkeypatch):
    import redis

    from crm.embedded import free_port
    from tracking import ingest

    away = redis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=0.5)
    monkeypatch.setattr(buffer, "client", lambda: away)
    monkeypatch.setattr(ingest, "_script", None)

    answer = post(host(alpha_site), batch(uuid.uuid4(), [page_view()]))

    assert answer.status == 503 and answer.json["error"] == "unavailable"
    assert answer.headers["Retry-After"] == "30"
