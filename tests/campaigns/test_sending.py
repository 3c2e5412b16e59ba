"""Sending an e-mail campaign: the frozen audience, each message exactly once, refusals, pause,
resume and cancel, through a real SMTP server and (once) the real Celery worker."""

import threading

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import schema_context

from campaigns import sending
from campaigns.models import Campaign, CampaignMember, OutboxMessage, Suppression
from campaigns.services import campaign_create
from contacts.services import contact_create
from crm.users.models import Role, User
from crm.users.services import user_create
from tests.campaigns.conftest import DROPPED, GOING_AWAY, REFUSED, campaign_ready, send_all
from tests.conftest import PASSWORD, body_of

ALPHA = {"HTTP_HOST": "alpha.localhost"}
BETA = {"HTTP_HOST": "beta.localhost"}


@pytest.mark.django_db
def test_the_audience_is_frozen_in_one_statement_without_suppressed_or_unreachable(admin):
    campaign = campaign_ready(admin, n=3)
    for name, fields in {
        "Sup": {"email": "Sup@Example.test"},
        "Dne": {"email": "dne@example.test", "do_not_email": True},
        "Nomail": {"email": ""},
        "Other": {"email": "other@example.test", "lifecycle_stage": "purchase"},
    }.items():
        contact_create(actor=admin, first_name=name, **{"lifecycle_stage": "evaluation", **fields})
    Suppression.objects.create(email="sup@example.TEST", reason="manual")

    with CaptureQueriesContext(connection) as queries:
        count = sending.campaign_send(actor=admin, campaign=campaign)

    table = OutboxMessage._meta.db_table
    inserts = [q for q in queries if q["sql"].lstrip().startswith(f"INSERT INTO {table}")]
    assert len(inserts) == 1
    assert count == 3
    rows = OutboxMessage.objects.filter(campaign=campaign)
    assert sorted(rows.values_list("email", flat=True)) == [
        "p0@example.test",
        "p1@example.test",
        "p2@example.test",
    ]
    assert all(r.message_id == f"<{campaign.pk}.{r.pk}@alpha.localhost>" for r in rows)
    assert CampaignMember.objects.filter(campaign=campaign, status="targeted").count() == 3
    campaign.refresh_from_db()
    assert campaign.send_state == "sending"


@pytest.mark.django_db
def test_a_campaign_without_template_or_segment_is_refused(admin):
    campaign = campaign_create(actor=admin, name="Bare", kind="email")
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as error:
        sending.campaign_send(actor=admin, campaign=campaign)
    assert set(error.value.message_dict) == {"email_template", "segments"}
    assert not OutboxMessage.objects.exists()


@pytest.mark.django_db
def test_a_refused_recipient_fails_with_the_reason_and_the_rest_are_sent_once(admin, sink):
    campaign = campaign_ready(admin, n=4)
    # The server hangs up after refusing Busy: Ref, next in the same chunk, needs a new connection.
    contact_create(actor=admin, first_name="Busy", email=GOING_AWAY, lifecycle_stage="evaluation")
    contact_create(actor=admin, first_name="Ref", email=REFUSED, lifecycle_stage="evaluation")
    contact_create(
        actor=admin, first_name="Z", email="z@example.test", lifecycle_stage="evaluation"
    )
    sending.campaign_send(actor=admin, campaign=campaign)

    send_all(campaign)
    send_all(campaign)
    for row in OutboxMessage.objects.filter(campaign=campaign):
        sending.chunk_send(campaign_id=campaign.pk, first_id=row.pk, last_id=row.pk)

    refused = OutboxMessage.objects.get(email=REFUSED)
    assert refused.status == "failed" and "550" in refused.error
    busy = OutboxMessage.objects.get(email=GOING_AWAY)
    assert busy.status == "failed" and "421" in busy.error
    assert OutboxMessage.objects.filter(status="sent").count() == 5
    assert sorted(sink.ids()) == sorted(
        OutboxMessage.objects.filter(status="sent").values_list("message_id", flat=True)
    )
    assert CampaignMember.objects.filter(campaign=campaign, status="sent").count() == 5
    campaign.refresh_from_db()
    assert campaign.send_state == "sent" and campaign.sent_at


@pytest.mark.django_db
def test_pause_stops_further_chunks_resume_finishes_and_cancel_stops(admin, sink):
    campaign = campaign_ready(admin, n=4)
    sending.campaign_send(actor=admin, campaign=campaign)
    ranges = list(sending.dispatch_ranges(campaign_id=campaign.pk, size=2))

    sending.chunk_send(campaign_id=campaign.pk, first_id=ranges[0][0], last_id=ranges[0][1])
    assert sending.campaign_pause(actor=admin, campaign=campaign)
    assert (
        sending.chunk_send(campaign_id=campaign.pk, first_id=ranges[1][0], last_id=ranges[1][1])
        == 0
    )
    assert len(sink.messages) == 2

    assert sending.campaign_resume(actor=admin, campaign=campaign)
    send_all(campaign)
    assert len(set(sink.ids())) == len(sink.messages) == 4
    assert Campaign.objects.get(pk=campaign.pk).send_state == "sent"

    other = campaign_create(
        actor=admin, name="Other", kind="email", email_template=campaign.email_template
    )
    other.segments.set(campaign.segments.all())
    sending.campaign_send(actor=admin, campaign=other)
    assert sending.campaign_cancel(actor=admin, campaign=other)
    send_all(other)
    assert len(sink.messages) == 4
    assert not sending.campaign_resume(actor=admin, campaign=other)


@pytest.mark.django_db
def test_a_dropped_connection_puts_the_untried_rows_back_and_leaves_the_one_in_flight(admin, sink):
    import smtplib

    campaign = campaign_ready(admin, n=0)
    for i, email in enumerate(["a@example.test", DROPPED, "b@example.test", "c@example.test"]):
        contact_create(actor=admin, first_name=f"D{i}", email=email, lifecycle_stage="evaluation")
    sending.campaign_send(actor=admin, campaign=campaign)
    [(first, last)] = sending.dispatch_ranges(campaign_id=campaign.pk)

    with pytest.raises(smtplib.SMTPException):
        sending.chunk_send(campaign_id=campaign.pk, first_id=first, last_id=last)

    statuses = dict(OutboxMessage.objects.values_list("email", "status"))
    assert statuses == {
        "a@example.test": "sent",
        DROPPED: "sending",
        "b@example.test": "queued",
        "c@example.test": "queued",
    }
    assert sending.chunk_send(campaign_id=campaign.pk, first_id=first, last_id=last) == 2
    assert [m["To"] for m in sink.messages] == [
        "a@example.test",
        "b@example.test",
        "c@example.test",
    ]
    assert Campaign.objects.get(pk=campaign.pk).send_state == "sending"


@pytest.mark.django_db
def test_a_scheduled_campaign_starts_when_due_and_only_once(admin, sink):
    from datetime import timedelta

    from django.utils import timezone

    campaign = campaign_ready(admin, n=2)
    at = timezone.now() + timedelta(hours=2)
    sending.campaign_send(actor=admin, campaign=campaign, at=at)
    campaign.refresh_from_db()
    assert (campaign.send_state, campaign.scheduled_at) == ("scheduled", at)

    assert not sending.campaign_start(campaign_id=campaign.pk)
    assert sending.due_campaigns() == []
    assert sending.due_campaigns(now=at) == [campaign.pk]
    Campaign.objects.filter(pk=campaign.pk).update(scheduled_at=timezone.now())
    assert sending.campaign_start(campaign_id=campaign.pk)
    assert Campaign.objects.get(pk=campaign.pk).send_state == "sending"
    assert sending.due_campaigns() == []


@pytest.mark.django_db
def test_the_sweep_gives_rows_of_a_stopped_worker_back_and_fails_one_that_keeps_stopping_them(
    admin, sink
):
    from datetime import timedelta

    from django.utils import timezone

    campaign = campaign_ready(admin, n=3)
    sending.campaign_send(actor=admin, campaign=campaign)
    rows = OutboxMessage.objects.filter(campaign=campaign).order_by("id")
    gone = timezone.now() - timedelta(hours=1)
    rows.update(status="sending", claimed_at=gone, attempts=1)
    # A live worker's lease is still running: its row stays with it.
    live = rows[0]
    OutboxMessage.objects.filter(pk=live.pk).update(claimed_at=timezone.now())
    # This one stopped a worker every time it was tried.
    poison = rows[2]
    OutboxMessage.objects.filter(pk=poison.pk).update(attempts=sending.MAX_ATTEMPTS)

    assert sending.outbox_sweep() == 1
    assert dict(rows.values_list("pk", "status")) == {
        live.pk: "sending",
        rows[1].pk: "queued",
        poison.pk: "failed",
    }
    assert OutboxMessage.objects.get(pk=poison.pk).error == sending.WORKER_STOPPED.format(
        n=sending.MAX_ATTEMPTS
    )
    send_all(campaign)
    assert [m["Message-ID"] for m in sink.messages] == [rows[1].message_id]
    assert Campaign.objects.get(pk=campaign.pk).send_state == "sending"


def test_a_send_through_the_worker_delivers_one_personal_message_to_each_recipient(
    committed_tenant, celery_worker, mailbox
):
    tenant = committed_tenant("send")
    with schema_context(tenant.schema_name):
        admin = User.objects.get()
        campaign = campaign_ready(admin, n=20)
        campaign.email_template.html_body = (
            "<html><body><p>Hi {{ contact.first_name }} &amp; "
            "{{ contact.last_name }}</p></body></html>"
        )
        campaign.email_template.save()
        contact_create(
            actor=admin,
            first_name="<b>Eve</b>",
            email="eve@example.test",
            lifecycle_stage="evaluation",
        )
        sending.campaign_send(actor=admin, campaign=campaign)
        ids = set(OutboxMessage.objects.values_list("message_id", flat=True))
    connection.set_schema_to_public()

    eve = mailbox.wait_for("eve@example.test", timeout=30)
    for i in range(20):
        mailbox.wait_for(f"p{i}@example.test", timeout=30)
    mine = [m for m in mailbox.messages if m["Message-ID"] in ids]
    assert len(mine) == len({m["Message-ID"] for m in mine}) == 21
    assert all(f"://{tenant.slug}." in m["List-Unsubscribe"] for m in mine), mine[0][
        "List-Unsubscribe"
    ]
    assert all(m["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click" for m in mine)
    assert "Hi P3" in body_of(mailbox.to("p3@example.test")[0])
    assert "<b>Eve</b>" in eve["Subject"]
    html = eve.get_payload(1).get_payload(decode=True).decode()
    assert "&lt;b&gt;Eve&lt;/b&gt;" in html and "<b>Eve</b>" not in html
    with schema_context(tenant.schema_name):
        for _ in range(100):
            if Campaign.objects.get(pk=campaign.pk).send_state == "sent":
                break
            threading.Event().wait(0.1)
        assert Campaign.objects.get(pk=campaign.pk).send_state == "sent"
        assert set(OutboxMessage.objects.values_list("status", flat=True)) == {"sent"}
    connection.set_schema_to_public()


@pytest.mark.django_db
def test_send_pages_are_for_marketing_roles_and_never_cross_tenants(client, admin, beta, sink):
    campaign = campaign_ready(admin, n=3)
    sales = user_create(email="s@alpha.test", password=PASSWORD, full_name="S", role=Role.SALES)
    client.post("/login/", {"username": sales.email, "password": PASSWORD}, **ALPHA)
    assert client.get(f"/campaigns/{campaign.pk}/send/", **ALPHA).status_code == 403
    assert client.post(f"/campaigns/{campaign.pk}/send/pause/", **ALPHA).status_code == 403
    client.post("/logout/", **ALPHA)

    client.post("/login/", {"username": admin.email, "password": PASSWORD}, **ALPHA)
    page = client.get(f"/campaigns/{campaign.pk}/send/", **ALPHA)
    assert page.status_code == 200 and page.context["audience"] == 3
    assert (
        b'href="/campaigns/%d/send/"' % campaign.pk
        in client.get(f"/campaigns/{campaign.pk}/", **ALPHA).content
    )
    segment_ids = list(campaign.segments.values_list("pk", flat=True))
    counted = client.get(
        f"/campaigns/{campaign.pk}/send/audience/", {"segments": [*segment_ids, "x"]}, **ALPHA
    )
    assert counted.context["audience"] == 3
    bad = client.post(f"/campaigns/{campaign.pk}/send/", {"when": "later"}, **ALPHA)
    assert bad.status_code == 200 and bad.context["form"].errors
    assert not OutboxMessage.objects.exists()
    done = client.post(
        f"/campaigns/{campaign.pk}/send/",
        {
            "email_template": campaign.email_template_id,
            "segments": list(campaign.segments.values_list("pk", flat=True)),
            "when": "now",
        },
        **ALPHA,
    )
    assert done.status_code == 302
    assert OutboxMessage.objects.filter(campaign=campaign).count() == 3
    progress = client.get(f"/campaigns/{campaign.pk}/send/progress/", **ALPHA)
    assert b'hx-trigger="every 1s"' in progress.content
    assert client.post(f"/campaigns/{campaign.pk}/send/pause/", **ALPHA).status_code == 302
    assert Campaign.objects.get(pk=campaign.pk).send_state == "paused"

    with schema_context(beta.schema_name):
        beta_admin = User.objects.get(email="admin@beta.test")
    client.post("/logout/", **ALPHA)
    client.post("/login/", {"username": beta_admin.email, "password": PASSWORD}, **BETA)
    assert client.get(f"/campaigns/{campaign.pk}/send/", **BETA).status_code == 404
    assert client.post(f"/campaigns/{campaign.pk}/send/resume/", **BETA).status_code == 404
    assert client.get(f"/campaigns/{campaign.pk}/send/audience/", **BETA).status_code == 404
    assert client.get(f"/campaigns/{campaign.pk}/send/progress/", **BETA).status_code == 404


@pytest.mark.django_db
def test_through_an_esp_each_message_carries_its_outbox_row_for_the_esps_events(admin, settings):
    from django.core import mail

    settings.EMAIL_BACKEND = "anymail.backends.test.EmailBackend"
    campaign = campaign_ready(admin, n=3)
    sending.campaign_send(actor=admin, campaign=campaign)
    send_all(campaign)

    rows = OutboxMessage.objects.filter(campaign=campaign)
    assert set(rows.values_list("status", flat=True)) == {"sent"}
    assert sorted(m.metadata["crm_outbox"] for m in mail.outbox) == sorted(
        str(pk) for pk in rows.values_list("pk", flat=True)
    )
    assert {m.metadata["crm_tenant"] for m in mail.outbox} == {connection.schema_name}
    assert {m.extra_headers["Message-ID"] for m in mail.outbox} == set(
        rows.values_list("message_id", flat=True)
    )


@pytest.mark.django_db
def test_chunks_of_two_tenants_in_turn_on_one_connection_each_mark_their_own_rows(
    admin, beta, sink
):
    # The mark is a statement prepared once per connection, which a worker's chunks of every
    # tenant share: it must write to the schema of the chunk at hand.
    alpha_campaign = campaign_ready(admin, n=3)
    sending.campaign_send(actor=admin, campaign=alpha_campaign)
    with schema_context(beta.schema_name):
        beta_admin = User.objects.get(email="admin@beta.test")
        beta_campaign = campaign_ready(beta_admin, n=3)
        sending.campaign_send(actor=beta_admin, campaign=beta_campaign)
        beta_ranges = list(sending.dispatch_ranges(campaign_id=beta_campaign.pk, size=2))
    alpha_ranges = list(sending.dispatch_ranges(campaign_id=alpha_campaign.pk, size=2))

    for (alpha_first, alpha_last), (beta_first, beta_last) in zip(
        alpha_ranges, beta_ranges, strict=True
    ):
        sending.chunk_send(campaign_id=alpha_campaign.pk, first_id=alpha_first, last_id=alpha_last)
        with schema_context(beta.schema_name):
            sending.chunk_send(campaign_id=beta_campaign.pk, first_id=beta_first, last_id=beta_last)

    assert set(OutboxMessage.objects.values_list("status", flat=True)) == {"sent"}
    with schema_context(beta.schema_name):
        assert set(OutboxMessage.objects.values_list("status", flat=True)) == {"sent"}
    assert len(sink.messages) == 6
