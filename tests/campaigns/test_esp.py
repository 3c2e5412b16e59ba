"""Deliveries, bounces and complaints from the ESP: real Postmark (and Mailgun) webhook payloads
posted to a tenant's host, found by their metadata or our Message-ID, recorded once, and the
address suppressed so the next send leaves it out."""

import base64
import hashlib
import hmac
import json

import pytest
from django.test import Client
from django_tenants.utils import schema_context

from campaigns import sending
from campaigns.esp import outbox_metadata
from campaigns.models import OutboxMessage, Suppression
from campaigns.segments import segment_create
from campaigns.services import campaign_create
from contacts.services import contact_create
from crm.users.models import User
from tracking.models import TimelineEntry

pytestmark = pytest.mark.django_db

SECRET = "postmark:a-long-webhook-secret"
POSTMARK = "/anymail/postmark/tracking/"
MAILGUN = "/anymail/mailgun/tracking/"
MAILGUN_KEY = "mailgun-signing-key"
EVALUATING = {
    "op": "and",
    "rules": [{"field": "lifecycle_stage", "operator": "eq", "value": "evaluation"}],
}


@pytest.fixture(autouse=True)
def webhook_secret(settings):
    settings.ANYMAIL = {"WEBHOOK_SECRET": [SECRET], "MAILGUN_WEBHOOK_SIGNING_KEY": MAILGUN_KEY}


def _auth(secret: str = SECRET) -> dict:
    return {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(secret.encode()).decode()}


def post(tenant, path: str, payload: dict, **extra):
    return Client().post(
        path,
        data=json.dumps(payload),
        content_type="application/json",
        HTTP_HOST=f"{tenant.slug}.localhost",
        **{**_auth(), **extra},
    )


def sent_message(tenant, email: str, pk: int | None = None) -> OutboxMessage:
    """A campaign message sent to a new contact in the tenant's schema (with the id `pk`, to
    give two tenants' rows the same id), its Message-ID written the way campaigns.sending
    writes it."""
    with schema_context(tenant.schema_name):
        admin = User.objects.get(email=f"admin@{tenant.slug}.test")
        contact = contact_create(
            actor=admin, first_name="Ann", email=email, lifecycle_stage="evaluation"
        )
        campaign = campaign_create(actor=admin, name=f"Spring {email}", kind="email")
        outbox = OutboxMessage.objects.create(
            pk=pk, campaign=campaign, contact=contact, email=email, status=OutboxMessage.Status.SENT
        )
        outbox.message_id = f"<{campaign.pk}.{outbox.pk}@{tenant.slug}.localhost>"
        outbox.save(update_fields=["message_id"])
        return outbox


def metadata(tenant, outbox: OutboxMessage) -> dict:
    with schema_context(tenant.schema_name):
        return outbox_metadata(outbox_id=outbox.pk)


def delivery(tenant, outbox: OutboxMessage) -> dict:
    return {
        "RecordType": "Delivery",
        "ServerID": 23,
        "MessageStream": "outbound",
        "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
        "Recipient": outbox.email,
        "Tag": "",
        "DeliveredAt": "2025-03-05T16:33:54.9070259Z",
        "Details": "Test delivery webhook details",
        "Metadata": metadata(tenant, outbox),
    }


def bounce(tenant, outbox: OutboxMessage, kind: str = "HardBounce") -> dict:
    return {
        "RecordType": "Bounce" if kind != "SpamComplaint" else "SpamComplaint",
        "MessageStream": "outbound",
        "ID": 4323372036854775807,
        "Type": kind,
        "TypeCode": 1 if kind == "HardBounce" else 512,
        "Name": "Hard bounce" if kind == "HardBounce" else "Spam complaint",
        "Tag": "",
        "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
        "Metadata": metadata(tenant, outbox),
        "ServerID": 23,
        "Description": "The server was unable to deliver your message (ex: unknown user, "
        "mailbox not found).",
        "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
        "Email": outbox.email,
        "From": "no-reply@localhost",
        "BouncedAt": "2025-03-05T16:40:00.0000000Z",
        "DumpAvailable": True,
        "Inactive": True,
        "CanActivate": True,
        "Subject": "Spring",
    }


def row(tenant, outbox: OutboxMessage) -> OutboxMessage:
    with schema_context(tenant.schema_name):
        return OutboxMessage.objects.get(pk=outbox.pk)


def suppressions(tenant) -> list[tuple[str, str]]:
    with schema_context(tenant.schema_name):
        return list(Suppression.objects.values_list("email", "reason"))


def test_a_delivery_is_stamped_once(alpha):
    outbox = sent_message(alpha, "ann@deliver.test")

    for _ in range(2):
        assert post(alpha, POSTMARK, delivery(alpha, outbox)).status_code == 200

    delivered = row(alpha, outbox).delivered_at
    assert delivered is not None and delivered.isoformat().startswith("2025-03-05T16:33:54")
    assert suppressions(alpha) == []


def test_a_hard_bounce_suppresses_the_address_once_and_the_next_send_leaves_it_out(alpha):
    outbox = sent_message(alpha, "Bob@Bounce.test")
    other = sent_message(alpha, "carol@bounce.test")

    for _ in range(2):
        assert post(alpha, POSTMARK, bounce(alpha, outbox)).status_code == 200

    bounced = row(alpha, outbox)
    assert bounced.bounced_at is not None
    assert "unknown user" in bounced.bounce_reason and "550 5.1.1" in bounced.bounce_reason
    assert suppressions(alpha) == [("Bob@Bounce.test", "bounced")]
    with schema_context(alpha.schema_name):
        suppression = Suppression.objects.get()
        assert suppression.campaign_id == outbox.campaign_id
        assert TimelineEntry.objects.filter(
            contact_id=outbox.contact_id, summary="Marketing e-mail stopped: bounced"
        ).exists()
        admin = User.objects.get(email="admin@alpha.test")
        segment = segment_create(actor=admin, name="Evaluating", rules=EVALUATING)
        audience = set(sending.audience(segments=[segment]).values_list("email", flat=True))
    assert "Bob@Bounce.test" not in audience
    assert other.email in audience


def test_a_spam_complaint_suppresses_the_address(alpha):
    outbox = sent_message(alpha, "dave@complain.test")

    response = post(alpha, POSTMARK, bounce(alpha, outbox, kind="SpamComplaint"))

    assert response.status_code == 200
    complained = row(alpha, outbox)
    assert complained.complained_at is not None and complained.bounced_at is None
    assert suppressions(alpha) == [("dave@complain.test", "complained")]


def test_an_event_on_betas_host_never_touches_alphas_rows(alpha, beta):
    in_alpha = sent_message(alpha, "erin@two.test")
    in_beta = sent_message(beta, "erin@two.test", pk=in_alpha.pk)

    # Alpha's event posted to beta's host: its metadata names alpha, so beta ignores it.
    assert post(beta, POSTMARK, bounce(alpha, in_alpha)).status_code == 200
    assert row(alpha, in_alpha).bounced_at is None
    assert row(beta, in_beta).bounced_at is None
    assert suppressions(alpha) == suppressions(beta) == []

    # Beta's own event changes beta only.
    assert post(beta, POSTMARK, bounce(beta, in_beta)).status_code == 200
    assert row(beta, in_beta).bounced_at is not None
    assert suppressions(beta) == [("erin@two.test", "bounced")]
    assert row(alpha, in_alpha).bounced_at is None
    assert suppressions(alpha) == []


@pytest.mark.parametrize(
    "auth",
    [{}, _auth("postmark:wrong"), {"HTTP_AUTHORIZATION": "Bearer a-long-webhook-secret"}],
)
def test_a_post_without_the_secret_is_refused_and_changes_nothing(alpha, auth):
    outbox = sent_message(alpha, "frank@auth.test")
    response = Client().post(
        POSTMARK,
        data=json.dumps(bounce(alpha, outbox)),
        content_type="application/json",
        HTTP_HOST="alpha.localhost",
        **auth,
    )

    assert response.status_code == 400
    assert row(alpha, outbox).bounced_at is None
    assert suppressions(alpha) == []


def test_without_a_configured_secret_the_webhook_does_not_exist(alpha, settings):
    outbox = sent_message(alpha, "gina@nosecret.test")
    settings.ANYMAIL = {}

    assert post(alpha, POSTMARK, bounce(alpha, outbox)).status_code == 404
    assert row(alpha, outbox).bounced_at is None


def test_an_unconfigured_esp_answers_404_not_500(alpha, settings):
    settings.ANYMAIL = {"WEBHOOK_SECRET": [SECRET]}

    assert post(alpha, MAILGUN, {"event-data": {}}).status_code == 404


def test_events_about_unknown_messages_are_ignored_with_200(alpha):
    outbox = sent_message(alpha, "hal@unknown.test")
    unknown_row = bounce(alpha, outbox)
    unknown_row["Metadata"] = {**unknown_row["Metadata"], "crm_outbox": str(outbox.pk + 1000)}
    no_metadata = bounce(alpha, outbox)
    del no_metadata["Metadata"]
    other_recipient = bounce(alpha, outbox)
    other_recipient["Email"] = "someone-else@unknown.test"

    for payload in (unknown_row, no_metadata, other_recipient):
        assert post(alpha, POSTMARK, payload).status_code == 200

    assert row(alpha, outbox).bounced_at is None
    assert suppressions(alpha) == []


def _mailgun(event: dict) -> dict:
    token, timestamp = "a" * 50, "1741193634"
    signature = hmac.new(
        MAILGUN_KEY.encode(), f"{timestamp}{token}".encode(), hashlib.sha256
    ).hexdigest()
    return {
        "signature": {"token": token, "timestamp": timestamp, "signature": signature},
        "event-data": event,
    }


def test_an_esp_that_reports_our_message_id_finds_the_message_by_it(alpha, beta):
    """Mailgun gives back the Message-ID header: the same receiver finds the row by it (and a
    Message-ID of another tenant's host matches nothing)."""
    outbox = sent_message(alpha, "ivy@mailgun.test")
    failed = {
        "event": "failed",
        "severity": "permanent",
        "reason": "bounce",
        "timestamp": 1741193634.5,
        "recipient": outbox.email,
        "message": {"headers": {"message-id": outbox.message_id.strip("<>")}},
        "delivery-status": {"code": 550, "message": "5.1.1 No such user", "description": ""},
    }
    in_beta = sent_message(beta, "ivy@mailgun.test", pk=outbox.pk)

    assert post(beta, MAILGUN, _mailgun(failed)).status_code == 200
    assert row(beta, in_beta).bounced_at is None

    assert post(alpha, MAILGUN, _mailgun(failed)).status_code == 200
    assert row(alpha, outbox).bounce_reason.startswith("5.1.1 No such user")
    assert suppressions(alpha) == [("ivy@mailgun.test", "bounced")]
    assert suppressions(beta) == []
