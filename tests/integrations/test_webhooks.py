"""Outbound webhooks: which endpoints an event reaches, signing, sending through a real worker to
a real HTTP receiver, retries with backoff, the dead-letter list and its replay, the sweeper,
refused URLs, and the admin pages with access by role and across tenants."""

import json
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test import Client
from django.utils import timezone
from django_tenants.utils import schema_context

from contacts import merging
from contacts import services as contact_services
from crm.embedded import free_port
from crm.users.models import Role, User
from crm.users.services import user_create
from integrations import webhooks
from integrations.keys import api_key_create
from integrations.models import WebhookDelivery, WebhookEndpoint
from integrations.tasks import webhook_deliver
from opportunities import services as opportunity_services
from opportunities.models import Pipeline
from tests.conftest import PASSWORD
from tracking.models import AuditEntry

ALPHA = {"HTTP_HOST": "alpha.localhost"}
BETA = {"HTTP_HOST": "beta.localhost"}


# --- a real HTTP receiver on loopback ---------------------------------------------------------


class Receiver:
    """Records each POST; answers with the next status of `statuses` (then with the last one)."""

    def __init__(self):
        self.requests: list[dict] = []
        self.statuses = [200]
        self.arrived = threading.Condition()
        self.port = free_port()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.arrived:
                    receiver.requests.append(
                        {"path": self.path, "headers": dict(self.headers), "body": body}
                    )
                    status = receiver.statuses.pop(0) if len(receiver.statuses) > 1 else None
                    status = status or receiver.statuses[0]
                    receiver.arrived.notify_all()
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"ok" if status < 300 else b"<h1>broken</h1>")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/crm"

    def wait_for(self, count: int, timeout: float = 20) -> list[dict]:
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.requests) >= count, timeout=timeout)
        assert len(self.requests) >= count, f"{len(self.requests)} of {count} POSTs arrived"
        return self.requests


@pytest.fixture
def receiver(settings):
    settings.CRM_WEBHOOKS_ALLOW_PRIVATE = True
    found = Receiver()
    thread = threading.Thread(target=found.server.serve_forever, daemon=True)
    thread.start()
    yield found
    found.server.shutdown()
    found.server.server_close()


def wait_until(condition, timeout: float = 20):
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)
    return value


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def admin(in_alpha):
    return User.objects.get(email="admin@alpha.test")


@pytest.fixture
def admin_client(client, admin):
    client.post("/login/", {"username": admin.email, "password": PASSWORD}, **ALPHA)
    return client


def endpoint_for(admin, url: str, events: list[str], **extra) -> WebhookEndpoint:
    return webhooks.webhook_endpoint_create(actor=admin, url=url, events=events, **extra)


# --- emitting ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_event_reaches_only_the_active_endpoints_subscribed_to_it(
    admin, receiver, django_capture_on_commit_callbacks
):
    listening = endpoint_for(admin, receiver.url, ["contact.created", "contact.updated"])
    endpoint_for(admin, receiver.url + "/accounts", ["account.created"])
    endpoint_for(admin, receiver.url + "/off", ["contact.created"], is_active=False)

    with django_capture_on_commit_callbacks() as queued:
        contact = contact_services.contact_create(
            actor=admin, first_name="Peter", last_name="Gibbons", email="peter@initech.test"
        )

    delivery = WebhookDelivery.objects.get()
    assert (delivery.endpoint, delivery.event, delivery.status) == (
        listening,
        "contact.created",
        "pending",
    )
    assert delivery.payload["id"] == str(delivery.event_id)
    assert delivery.payload["event"] == "contact.created"
    assert delivery.payload["data"]["id"] == contact.pk
    assert delivery.payload["data"]["email"] == "peter@initech.test"
    assert len(queued) == 1

    contact_services.contact_update(actor=admin, contact=contact, last_name="Gibbons")
    assert WebhookDelivery.objects.count() == 1, "an update that changed nothing is no event"
    contact_services.contact_update(actor=admin, contact=contact, last_name="Bolton")
    updated = WebhookDelivery.objects.get(event="contact.updated")
    assert updated.payload["data"]["last_name"] == "Bolton"


@pytest.mark.django_db
def test_activities_tasks_and_appointments_are_told_as_the_api_shows_them(admin, receiver):
    events = ["activity.created", "task.created", "task.updated", "appointment.created"]
    listening = endpoint_for(admin, receiver.url, events)
    endpoint_for(admin, receiver.url + "/contacts", ["contact.created"])
    peter = contact_services.contact_create(actor=admin, first_name="Peter")
    start = timezone.now() + timedelta(days=1)

    call = contact_services.activity_log(actor=admin, kind="call", subject="Hi", contact=peter)
    letters = contact_services.letters_bulk_log(actor=admin, letters=[(peter, "Offer", "Dear")])
    task = contact_services.task_create(actor=admin, title="Call back", contact=peter)
    contact_services.task_update(actor=admin, task=task, title="Call back")  # no change
    contact_services.task_set_done(actor=admin, task=task, done=True)
    meeting = contact_services.appointment_create(
        actor=admin,
        title="Demo",
        starts_at=start,
        ends_at=start + timedelta(hours=1),
        contacts=[peter],
    )

    told = [
        (d.event, d.payload["data"]["id"])
        for d in WebhookDelivery.objects.filter(endpoint=listening).order_by("id")
    ]
    assert told == [
        ("activity.created", call.pk),
        ("activity.created", letters[0].pk),
        ("task.created", task.pk),
        ("task.updated", task.pk),
        ("appointment.created", meeting.pk),
    ]
    done = WebhookDelivery.objects.get(event="task.updated").payload["data"]
    assert done["done"] is True and done["contact"] == peter.pk
    booked = WebhookDelivery.objects.get(event="appointment.created").payload["data"]
    assert booked["contacts"] == [peter.pk] and booked["users"] == [admin.pk]


@pytest.mark.django_db
def test_without_endpoints_an_event_costs_one_query(admin, django_assert_num_queries):
    account = contact_services.account_create(actor=admin, name="Initech")

    with django_assert_num_queries(1):
        webhooks.webhook_emit(event="account.updated", instance=account)

    assert not WebhookDelivery.objects.exists()


@pytest.mark.django_db
def test_a_stage_move_is_one_stage_changed_event_naming_both_stages(admin, receiver):
    endpoint_for(admin, receiver.url, ["opportunity.stage_changed", "opportunity.updated"])
    first, second = Pipeline.objects.get(name="Sales").stages.order_by("position")[:2]
    account = contact_services.account_create(actor=admin, name="Initech")
    deal = opportunity_services.opportunity_create(
        actor=admin, name="Renewal", account=account, stage=first
    )

    opportunity_services.opportunity_move_stage(actor=admin, opportunity=deal, stage=second)

    delivery = WebhookDelivery.objects.get()
    assert delivery.event == "opportunity.stage_changed"
    assert delivery.payload["data"]["id"] == deal.pk
    assert delivery.payload["data"]["previous_stage"] == {"id": first.pk, "name": first.name}


@pytest.mark.django_db
def test_a_merge_deletes_one_record_and_updates_the_other(admin, receiver):
    endpoint_for(admin, receiver.url, ["contact.deleted", "contact.updated"])
    kept = contact_services.contact_create(actor=admin, first_name="Peter", last_name="Gibbons")
    merged = contact_services.contact_create(
        actor=admin, first_name="Pete", last_name="Gibbons", phone="555-0100"
    )

    merging.contact_merge(actor=admin, kept=kept, merged=merged, fields={"phone": "merged"})

    deleted = WebhookDelivery.objects.get(event="contact.deleted")
    assert deleted.payload["data"] == {"id": merged.pk, "merged_into": kept.pk}
    updated = WebhookDelivery.objects.get(event="contact.updated")
    assert updated.payload["data"]["id"] == kept.pk


# --- signing ----------------------------------------------------------------------------------


def test_a_signature_verifies_only_with_its_secret_its_body_and_in_time():
    body = b'{"event":"contact.created","data":{"id":1}}'
    header = webhooks.signature_header("whsec_right", body)

    assert webhooks.signature_verify("whsec_right", header, body)
    assert webhooks.signature_verify("whsec_right", header, body.decode())
    assert not webhooks.signature_verify("whsec_wrong", header, body)
    assert not webhooks.signature_verify("whsec_right", header, body.replace(b"1", b"2"))
    assert not webhooks.signature_verify("whsec_right", header, body, now=time.time() + 301)
    old = webhooks.signature_header("whsec_right", body, timestamp=int(time.time()) - 3600)
    assert not webhooks.signature_verify("whsec_right", old, body)
    assert not webhooks.signature_verify("whsec_right", "v1=abc", body)
    assert not webhooks.signature_verify("whsec_right", "t=soon,v1=abc", body)


# --- where deliveries may go ------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hook",
        "https://10.0.0.1/hook",
        "https://192.168.1.20/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::1]/hook",
        "https://[fe80::1]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://0.0.0.0/hook",
        "https://224.0.0.1/hook",
        "https://localhost/hook",
        "https://alpha.crm.example/hook",
        "https://crm.example/hook",
        "http://93.184.215.14/hook",
        "ftp://93.184.215.14/hook",
        "https://user:pw@93.184.215.14/hook",
    ],
)
def test_urls_pointing_inside_the_platform_are_refused(settings, url):
    settings.DEBUG = False
    settings.CRM_WEBHOOKS_ALLOW_PRIVATE = False
    settings.CRM_BASE_DOMAIN = "crm.example"

    with pytest.raises(ValidationError):
        webhooks.webhook_url_validate(url)


def test_a_public_address_is_allowed(settings):
    settings.CRM_WEBHOOKS_ALLOW_PRIVATE = False

    assert webhooks.webhook_url_validate("https://93.184.215.14:8443/hook") == ["93.184.215.14"]


@pytest.mark.django_db
def test_a_delivery_checks_the_address_again_before_sending(admin, receiver, settings):
    endpoint = endpoint_for(admin, receiver.url, ["account.created"])
    contact_services.account_create(actor=admin, name="Initech")
    settings.CRM_WEBHOOKS_ALLOW_PRIVATE = False
    settings.DEBUG = True  # plain http is fine; the loopback address is what gets refused

    delivery = webhooks.webhook_delivery_send(delivery_id=endpoint.deliveries.get().pk)

    assert delivery.status == "pending"
    assert "private or internal" in delivery.last_error
    assert receiver.requests == []


# --- sending, retries, dead letters -----------------------------------------------------------


def test_a_delivery_is_sent_signed_by_the_worker_once(committed_tenant, celery_worker, receiver):
    connection.set_schema_to_public()
    tenant = committed_tenant("hook")
    with schema_context(tenant.schema_name):
        admin = User.objects.get()
        endpoint = endpoint_for(admin, receiver.url, ["contact.created"])
        contact = contact_services.contact_create(
            actor=admin, first_name="Peter", email="peter@initech.test"
        )
    connection.set_schema_to_public()

    (request,) = receiver.wait_for(1)
    with schema_context(tenant.schema_name):
        delivery = wait_until(lambda: WebhookDelivery.objects.filter(status="delivered").first())
        again = webhook_deliver.delay(delivery.pk)
    connection.set_schema_to_public()

    assert again.get(timeout=20) is None
    headers, body = request["headers"], request["body"]
    assert request["path"] == "/hooks/crm"
    assert headers["Content-Type"] == "application/json"
    assert headers["X-CRM-Event"] == "contact.created"
    assert headers["X-CRM-Delivery"] == str(delivery.event_id)
    assert webhooks.signature_verify(endpoint.secret, headers["X-CRM-Signature"], body)
    assert not webhooks.signature_verify("whsec_other", headers["X-CRM-Signature"], body)
    payload = json.loads(body)
    assert (payload["event"], payload["data"]["id"]) == ("contact.created", contact.pk)
    assert (delivery.attempts, delivery.last_status_code) == (1, 200)
    assert len(receiver.requests) == 1


@pytest.mark.django_db
def test_a_failing_receiver_gets_retries_further_apart_then_a_dead_letter(
    admin, receiver, settings
):
    settings.CRM_WEBHOOK_MAX_ATTEMPTS = 3
    receiver.statuses = [500]
    endpoint_for(admin, receiver.url, ["account.created"])
    contact_services.account_create(actor=admin, name="Initech")
    pk = WebhookDelivery.objects.get().pk

    waits = []
    for _ in range(2):
        started = timezone.now()
        delivery = webhooks.webhook_delivery_send(delivery_id=pk)
        assert delivery.status == "pending"
        waits.append(delivery.next_attempt_at - started)
        assert webhooks.webhook_delivery_send(delivery_id=pk) is None, "not due yet"
        WebhookDelivery.objects.filter(pk=pk).update(next_attempt_at=timezone.now())
    delivery = webhooks.webhook_delivery_send(delivery_id=pk)

    assert timedelta(seconds=20) < waits[0] < waits[1]
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("dead", 3, 500)
    assert "<h1>broken</h1>" in delivery.last_error
    assert len(receiver.requests) == 3
    assert webhooks.webhook_delivery_send(delivery_id=pk) is None


def test_a_dead_letter_replayed_from_the_admin_page_is_delivered(
    committed_tenant, celery_worker, receiver, settings
):
    settings.CRM_WEBHOOK_MAX_ATTEMPTS = 1
    receiver.statuses = [503, 200]
    connection.set_schema_to_public()
    tenant = committed_tenant("replay")
    with schema_context(tenant.schema_name):
        admin = User.objects.get()
        endpoint_for(admin, receiver.url, ["account.created"])
        contact_services.account_create(actor=admin, name="Initech")
    connection.set_schema_to_public()
    receiver.wait_for(1)
    with schema_context(tenant.schema_name):
        dead = wait_until(lambda: WebhookDelivery.objects.filter(status="dead").first())
        browser = Client(HTTP_HOST=f"{tenant.slug}.localhost")
        browser.force_login(admin)
    connection.set_schema_to_public()

    listed = browser.get("/settings/webhooks/dead/")
    replayed = browser.post(f"/settings/webhooks/deliveries/{dead.pk}/replay/")
    connection.set_schema_to_public()
    receiver.wait_for(2)
    with schema_context(tenant.schema_name):
        delivered = wait_until(lambda: WebhookDelivery.objects.filter(status="delivered").first())
        audited = AuditEntry.objects.filter(action="replayed", object_id=dead.pk).exists()
    connection.set_schema_to_public()

    assert f"/settings/webhooks/deliveries/{dead.pk}/replay/" in listed.content.decode()
    assert replayed.status_code == 302
    assert delivered.pk == dead.pk
    assert delivered.attempts == 1
    assert audited
    assert receiver.requests[0]["body"] == receiver.requests[1]["body"]


@pytest.mark.django_db
def test_the_sweeper_requeues_lost_and_stuck_deliveries_only(admin, receiver):
    endpoint = endpoint_for(admin, receiver.url, ["account.created"])
    now = timezone.now()

    def make(status, next_attempt_at=None, age=timedelta(0)):
        delivery = WebhookDelivery.objects.create(
            endpoint=endpoint,
            event="account.created",
            payload={},
            status=status,
            next_attempt_at=next_attempt_at,
        )
        WebhookDelivery.objects.filter(pk=delivery.pk).update(created_at=now - age)
        return delivery.pk

    lost = make("pending", now - timedelta(minutes=5))
    never_queued = make("pending", None, age=timedelta(minutes=3))
    stuck = make("sending", now - timedelta(minutes=10))
    make("pending", now + timedelta(minutes=5))
    make("pending", None)
    make("sending", now - timedelta(seconds=20))
    make("delivered", now - timedelta(minutes=10))
    make("dead", None, age=timedelta(hours=1))

    first = webhooks.webhook_deliveries_due(now=now)
    second = webhooks.webhook_deliveries_due(now=now)

    assert first == second == sorted([lost, never_queued, stuck])
    assert WebhookDelivery.objects.get(pk=stuck).status == "pending"
    sent = webhooks.webhook_delivery_send(delivery_id=stuck)
    assert sent.status == "delivered"
    assert webhooks.webhook_delivery_send(delivery_id=stuck) is None


# --- admin pages ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_admin_registers_an_endpoint_and_sees_its_secret(admin_client, receiver):
    response = admin_client.post(
        "/settings/webhooks/new/",
        {
            "url": receiver.url,
            "description": "<script>alert(1)</script> ERP",
            "events": ["contact.created", "opportunity.stage_changed"],
            "is_active": "on",
        },
        **ALPHA,
    )

    endpoint = WebhookEndpoint.objects.get()
    assert response.status_code == 302
    page = admin_client.get(response["Location"], **ALPHA).content.decode()
    assert endpoint.secret in page
    assert endpoint.events == ["contact.created", "opportunity.stage_changed"]
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;" in page
    assert AuditEntry.objects.get(model="integrations.webhookendpoint", action="created")
    assert endpoint.secret not in json.dumps(list(AuditEntry.objects.values("changes")))


@pytest.mark.django_db
def test_a_refused_url_is_a_field_error_and_saves_nothing(admin_client, settings):
    settings.CRM_WEBHOOKS_ALLOW_PRIVATE = False

    response = admin_client.post(
        "/settings/webhooks/new/",
        {"url": "https://169.254.169.254/latest", "events": ["contact.created"]},
        **ALPHA,
    )
    no_events = admin_client.post(
        "/settings/webhooks/new/", {"url": "https://93.184.215.14/"}, **ALPHA
    )

    assert response.status_code == no_events.status_code == 200
    assert "private or internal address" in response.content.decode()
    assert "This field is required" in no_events.content.decode()
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.django_db
def test_the_delivery_log_shows_attempts_and_the_payload_as_text(
    admin_client, admin, receiver, django_assert_max_num_queries
):
    endpoint = endpoint_for(admin, receiver.url, ["account.created"])
    for n in range(3):
        contact_services.account_create(actor=admin, name=f"<b>Initech {n}</b>")
    receiver.statuses = [500]
    webhooks.webhook_delivery_send(delivery_id=endpoint.deliveries.order_by("pk").first().pk)

    with django_assert_max_num_queries(8):
        log = admin_client.get(f"/settings/webhooks/{endpoint.pk}/", **ALPHA)
    newest = endpoint.deliveries.order_by("-pk").first()
    detail = admin_client.get(f"/settings/webhooks/deliveries/{newest.pk}/", **ALPHA)

    rows = log.content.decode().count('data-testid="delivery-row"')
    assert rows == 3
    assert "HTTP 500" in log.content.decode()
    assert log.content.decode().index(f"deliveries/{newest.pk}/") < log.content.decode().index(
        f"deliveries/{newest.pk - 2}/"
    )
    assert "&lt;b&gt;Initech 2&lt;/b&gt;" in detail.content.decode()
    assert "<b>Initech" not in detail.content.decode()


@pytest.mark.django_db
def test_editing_and_deleting_an_endpoint(admin_client, admin, receiver):
    endpoint = endpoint_for(admin, receiver.url, ["account.created"])

    admin_client.post(
        f"/settings/webhooks/{endpoint.pk}/edit/",
        {"url": receiver.url + "/v2", "events": ["account.updated"], "description": "v2"},
        **ALPHA,
    )
    endpoint.refresh_from_db()
    assert (endpoint.url, endpoint.events, endpoint.is_active) == (
        receiver.url + "/v2",
        ["account.updated"],
        False,
    )
    admin_client.post(f"/settings/webhooks/{endpoint.pk}/delete/", **ALPHA)
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("role", [Role.MANAGER, Role.SALES, Role.MARKETING, Role.PARTNER])
def test_only_admins_reach_the_webhook_pages(client, admin, receiver, role):
    endpoint = endpoint_for(admin, receiver.url, ["account.created"])
    contact_services.account_create(actor=admin, name="Initech")
    delivery = endpoint.deliveries.get()
    WebhookDelivery.objects.filter(pk=delivery.pk).update(status="dead")
    user = user_create(email=f"{role}@alpha.test", password=PASSWORD, full_name="Me", role=role)
    client.post("/login/", {"username": user.email, "password": PASSWORD}, **ALPHA)

    pages = [
        "/settings/webhooks/",
        "/settings/webhooks/new/",
        "/settings/webhooks/dead/",
        f"/settings/webhooks/{endpoint.pk}/",
        f"/settings/webhooks/{endpoint.pk}/edit/",
        f"/settings/webhooks/deliveries/{delivery.pk}/",
    ]
    assert [client.get(p, **ALPHA).status_code for p in pages] == [403] * len(pages)
    replay = client.post(f"/settings/webhooks/deliveries/{delivery.pk}/replay/", **ALPHA)
    delete = client.post(f"/settings/webhooks/{endpoint.pk}/delete/", **ALPHA)
    assert replay.status_code == delete.status_code == 403
    assert WebhookDelivery.objects.get(pk=delivery.pk).status == "dead"
    assert WebhookEndpoint.objects.exists()


@pytest.mark.django_db
def test_tenants_never_see_or_receive_each_others_webhooks(client, alpha, beta, receiver):
    with schema_context(beta.schema_name):
        beta_admin = User.objects.get(email="admin@beta.test")
        beta_endpoint = endpoint_for(beta_admin, receiver.url + "/beta", ["contact.created"])
    with schema_context(alpha.schema_name):
        alpha_admin = User.objects.get(email="admin@alpha.test")
        endpoint = endpoint_for(alpha_admin, receiver.url + "/alpha", ["contact.created"])
        if endpoint.pk == beta_endpoint.pk:  # an id beta does not have, so 404 means "not here"
            endpoint.delete()
            endpoint = endpoint_for(alpha_admin, receiver.url + "/alpha", ["contact.created"])
        contact_services.contact_create(actor=alpha_admin, first_name="Peter")
        delivery = endpoint.deliveries.get()
        WebhookDelivery.objects.filter(pk=delivery.pk).update(status="dead")
    with schema_context(beta.schema_name):
        assert not WebhookDelivery.objects.exists()
        assert not WebhookDelivery.objects.filter(pk=delivery.pk).exists()
    client.post("/login/", {"username": beta_admin.email, "password": PASSWORD}, **BETA)

    listing = client.get("/settings/webhooks/", **BETA).content.decode()
    dead = client.get("/settings/webhooks/dead/", **BETA).content.decode()
    pages = [
        f"/settings/webhooks/{endpoint.pk}/",
        f"/settings/webhooks/{endpoint.pk}/edit/",
        f"/settings/webhooks/deliveries/{delivery.pk}/",
    ]
    assert [client.get(p, **BETA).status_code for p in pages] == [404] * len(pages)
    replay = client.post(f"/settings/webhooks/deliveries/{delivery.pk}/replay/", **BETA)
    assert replay.status_code == 404
    assert "/alpha" not in listing
    assert "/beta" in listing
    assert "No dead letters." in dead


API_EVENTS = [
    "account.created",
    "account.updated",
    "account.deleted",
    "opportunity.created",
    "opportunity.deleted",
    "contact.deleted",
]


def test_api_writes_reach_each_endpoint_subscribed_to_their_event_signed(
    committed_tenant, celery_worker, receiver
):
    connection.set_schema_to_public()
    tenant = committed_tenant("apihook")
    with schema_context(tenant.schema_name):
        admin = User.objects.get()
        _key, key_text = api_key_create(actor=admin, user=admin, name="ERP", read_only=False)
        # One endpoint for each event, at its own path; one for events these calls never make.
        endpoints = {
            event: endpoint_for(admin, f"{receiver.url}/{event}", [event]) for event in API_EVENTS
        }
        endpoint_for(admin, f"{receiver.url}/other", ["contact.updated", "opportunity.updated"])
        stage = Pipeline.objects.get(name="Sales").stages.order_by("position").first()
    erp = Client(HTTP_HOST=f"{tenant.slug}.localhost", HTTP_AUTHORIZATION=f"Bearer {key_text}")

    def call(method, path, data=None):
        body = {"data": json.dumps(data), "content_type": "application/json"} if data else {}
        response = getattr(erp, method)(f"/api/v1/{path}", **body)
        connection.set_schema_to_public()
        assert response.status_code < 300, response.content
        return response.json() if response.content else None

    account = call("post", "accounts/", {"name": "Initech"})
    call("patch", f"accounts/{account['id']}/", {"industry": "Software"})
    deal = call(
        "post", "opportunities/", {"name": "Printers", "account": account["id"], "stage": stage.pk}
    )
    call("delete", f"opportunities/{deal['id']}/")
    contact = call("post", "contacts/", {"first_name": "Peter", "account": account["id"]})
    call("delete", f"contacts/{contact['id']}/")
    call("delete", f"accounts/{account['id']}/")

    arrived = receiver.wait_for(len(API_EVENTS))
    with schema_context(tenant.schema_name):
        sent = sorted(WebhookDelivery.objects.values_list("endpoint__url", "event"))
        wait_until(lambda: not WebhookDelivery.objects.exclude(status="delivered").exists())
    connection.set_schema_to_public()

    # Each event was written for its own endpoint only, and arrived there, signed with its secret.
    assert sent == sorted((f"{receiver.url}/{event}", event) for event in API_EVENTS)
    by_path = {r["path"].rsplit("/", 1)[1]: r for r in arrived}
    assert sorted(by_path) == sorted(API_EVENTS) and len(arrived) == len(API_EVENTS)
    ids = {"account": account["id"], "opportunity": deal["id"], "contact": contact["id"]}
    for event, request in by_path.items():
        headers, payload = request["headers"], json.loads(request["body"])
        signature = headers["X-CRM-Signature"]
        assert webhooks.signature_verify(endpoints[event].secret, signature, request["body"])
        assert (headers["X-CRM-Event"], payload["event"]) == (event, event)
        assert payload["data"]["id"] == ids[event.split(".")[0]]
    assert json.loads(by_path["account.updated"]["body"])["data"]["industry"] == "Software"
    assert json.loads(by_path["contact.deleted"]["body"])["data"] == {"id": contact["id"]}
