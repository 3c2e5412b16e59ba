"""Sending an e-mail campaign: freeze the audience, then send it in chunks, each message once.

The audience is frozen when the send starts, in one INSERT ... SELECT into OutboxMessage (one row
per recipient, unique per campaign and contact), so later edits of a segment change nothing.
`campaign_dispatch` (a task) cuts the queued rows into ranges of ids and queues one chunk task per
range; a chunk claims its rows with a conditional UPDATE (queued -> sending) under a lease, so a
chunk task run twice (a retry, or Redis redelivering it) claims nothing twice. Each row becomes
`sent` only after the SMTP server answered 250 for it, or `failed` with the server's refusal.
The governor (campaigns.governor) paces every message; pause, cancel and the end of the sending
window stop a chunk between two messages and put its untried rows back in the queue.

Nothing is lost when a worker dies or Redis restarts: the claiming worker renews its lease while
it sends, and the beat sweep puts rows whose lease ran out back in the queue and dispatches again
any send that no worker has been at for a lease (its tasks lost with Redis). The one message a
killed worker had in flight cannot be known to have reached the server or not (it may have said
250 just before the kill): it is sent again, under the same Message-ID, which mail systems use to
drop duplicates. That is the only case of a second hand-over, at most one message per worker
killed, and never a second Message-ID.

A scheduled send queues no task with an ETA (Redis would hand a late-acknowledged task held
past its visibility timeout to a second worker): the beat sweep starts it once it is due, with a
conditional UPDATE in `campaign_start`, so two sweeps cannot both start it.
"""

import smtplib
import time
from contextlib import contextmanager, suppress
from datetime import datetime, timedelta

import psycopg
from anymail.exceptions import AnymailRecipientsRefused
from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.mail import get_connection
from django.core.mail.backends.smtp import EmailBackend as SmtpBackend
from django.db import connection, transaction
from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet
from django.db.models.functions import Lower
from django.utils import timezone

from campaigns.engagement import EmailTracker
from campaigns.esp import outbox_metadata
from campaigns.governor import Governor, in_window
from campaigns.mime import CampaignMime
from campaigns.models import Campaign, CampaignMember, OutboxMessage, Suppression
from campaigns.segments import segment_contacts
from campaigns.services import campaign_members_add, campaign_update
from campaigns.templating import (
    contact_segment_names,
    email_contacts,
    email_context,
    email_message,
    email_template_compile,
)
from campaigns.unsubscribe import UnsubscribeLinks, message_headers
from contacts.models import Contact
from crm.merge_fields import MergeFieldError
from crm.tenants.models import Tenant
from tracking.services import audit_record

# Rows per chunk task: the template is compiled and the contacts loaded once per chunk.
CHUNK_SIZE = 500
MAX_ATTEMPTS = 5
# How often a chunk looks whether its campaign was paused or cancelled, or left its window.
CHECK_SECONDS = 1.0
WORKER_STOPPED = "A worker stopped while sending this message {n} times; it is not tried again."
State = Campaign.SendState
Row = OutboxMessage.Status


def audience(*, segments, user=None) -> QuerySet[Contact]:
    """The contacts a send would reach: on any of the segments (within the user's reach), with
    an address, not marked do-not-e-mail, and not suppressed."""
    on_segments = Q(pk__in=[])
    for segment in segments:
        on_segments |= Q(pk__in=segment_contacts(segment, user=user).order_by().values("pk"))
    suppression = Suppression.objects.annotate(address=Lower("email")).filter(
        address=Lower(OuterRef("email"))
    )
    return (
        Contact.objects.filter(on_segments)
        .exclude(email="")
        .filter(do_not_email=False)
        .exclude(Exists(suppression))
    )


def _host() -> str:
    tenant = Tenant.objects.only("slug").get(schema_name=connection.schema_name)
    return f"{tenant.slug}.{settings.CRM_BASE_DOMAIN}"


def audience_freeze(*, campaign: Campaign, contacts: QuerySet[Contact]) -> int:
    """Write one queued OutboxMessage per contact in one statement; returns how many."""
    table = OutboxMessage._meta.db_table
    chosen, params = contacts.order_by().values("pk", "email").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {table} (id, campaign_id, contact_id, email, status, message_id, error)
            SELECT row.id, %s, row.contact_id, row.email, %s,
                   '<' || %s || '.' || row.id || '@' || %s || '>', ''
            FROM (
                -- Ids in contact order, so chunks send in a predictable order.
                SELECT nextval(pg_get_serial_sequence('{table}', 'id')) AS id,
                       ordered.contact_id, ordered.email
                FROM (
                    SELECT chosen.contact_id, chosen.email
                    FROM ({chosen}) AS chosen (contact_id, email)
                    ORDER BY chosen.contact_id
                ) AS ordered
            ) AS row
            ON CONFLICT (campaign_id, contact_id) DO NOTHING
            """,
            [campaign.pk, Row.QUEUED, campaign.pk, _host(), *params],
        )
        return cursor.rowcount


@transaction.atomic
def campaign_send(*, actor, campaign: Campaign, at: datetime | None = None) -> int:
    """Send an e-mail campaign to its segments now, or at `at`: freezes the audience, makes them
    members (targeted), and queues the dispatch once the transaction commits (a scheduled send
    is started by the beat sweep when due). Raises
    ValidationError for a campaign that cannot be sent. Returns the number of recipients."""
    from campaigns.tasks import campaign_dispatch

    campaign = Campaign.objects.select_for_update().get(pk=campaign.pk)
    errors = {}
    if campaign.kind != Campaign.Kind.EMAIL:
        errors["kind"] = "Only e-mail campaigns are sent."
    if campaign.send_state != State.DRAFT:
        errors["send_state"] = f"This campaign is already {campaign.get_send_state_display()}."
    if campaign.email_template_id is None:
        errors["email_template"] = "Choose an e-mail template."
    else:
        try:
            email_template_compile(campaign.email_template)
        except ValidationError as error:
            errors["email_template"] = f"The template does not compile: {error.messages[0]}"
    segments = list(campaign.segments.all())
    if not segments:
        errors["segments"] = "Choose at least one segment."
    if at is not None and at <= timezone.now():
        at = None
    if errors:
        raise ValidationError(errors)

    count = audience_freeze(campaign=campaign, contacts=audience(segments=segments, user=actor))
    campaign_members_add(
        actor=actor,
        campaign=campaign,
        contacts=Contact.objects.filter(
            pk__in=OutboxMessage.objects.filter(campaign=campaign).values("contact_id")
        ),
    )
    campaign.send_state = State.SCHEDULED if at else State.SENDING
    campaign.scheduled_at = at
    campaign.save(update_fields=["send_state", "scheduled_at"])
    audit_record(instance=campaign, action="sent" if at is None else "scheduled", actor=actor)
    if at is None:
        transaction.on_commit(lambda: campaign_dispatch.delay(campaign.pk))
    return count


def _move(*, actor, campaign: Campaign, frm: tuple, to: str, action: str) -> bool:
    moved = Campaign.objects.filter(pk=campaign.pk, send_state__in=frm).update(send_state=to)
    if moved:
        campaign.send_state = to
        audit_record(instance=campaign, action=action, actor=actor)
    return bool(moved)


@transaction.atomic
def campaign_pause(*, actor, campaign: Campaign) -> bool:
    """Stop sending: chunks not yet started return at once (a chunk under way finishes)."""
    return _move(
        actor=actor, campaign=campaign, frm=(State.SENDING,), to=State.PAUSED, action="paused"
    )


@transaction.atomic
def campaign_resume(*, actor, campaign: Campaign) -> bool:
    """Go on with a paused send: the rows still queued are dispatched again."""
    from campaigns.tasks import campaign_dispatch

    resumed = _move(
        actor=actor, campaign=campaign, frm=(State.PAUSED,), to=State.SENDING, action="resumed"
    )
    if resumed:
        transaction.on_commit(lambda: campaign_dispatch.delay(campaign.pk))
    return resumed


@transaction.atomic
def campaign_cancel(*, actor, campaign: Campaign) -> bool:
    """Stop for good; what was sent stays sent, the queued rows are never sent."""
    return _move(
        actor=actor,
        campaign=campaign,
        frm=(State.SCHEDULED, State.SENDING, State.PAUSED),
        to=State.CANCELLED,
        action="cancelled",
    )


def dispatch_ranges(*, campaign_id: int, size: int = CHUNK_SIZE):
    """(first id, last id) of each run of `size` queued rows, streamed by key."""
    ids = (
        OutboxMessage.objects.filter(campaign_id=campaign_id, status=Row.QUEUED)
        .order_by("id")
        .values_list("id", flat=True)
        .iterator(chunk_size=size * 10)
    )
    first = last = None
    n = 0
    for row_id in ids:
        first = row_id if first is None else first
        last, n = row_id, n + 1
        if n == size:
            yield first, last
            first, n = None, 0
    if first is not None:
        yield first, last


def campaign_start(*, campaign_id: int) -> bool:
    """A scheduled campaign whose time has come starts sending (a conditional UPDATE, so two
    sweeps cannot both start it); True if it is sending now and in its
    window (outside it, the sweep dispatches it again when the window opens)."""
    Campaign.objects.filter(
        pk=campaign_id, send_state=State.SCHEDULED, scheduled_at__lte=timezone.now()
    ).update(send_state=State.SENDING)
    campaign = Campaign.objects.filter(pk=campaign_id, send_state=State.SENDING).first()
    if campaign is None or not in_window(campaign):
        return False
    send_alive(campaign_id)
    return True


def campaign_finish(*, campaign_id: int) -> bool:
    """Mark a sending campaign sent once no row is queued or sending."""
    pending = OutboxMessage.objects.filter(
        campaign_id=OuterRef("pk"), status__in=(Row.QUEUED, Row.SENDING)
    )
    return bool(
        Campaign.objects.filter(pk=campaign_id, send_state=State.SENDING)
        .exclude(Exists(pending))
        .update(send_state=State.SENT, sent_at=timezone.now())
    )


def _lease() -> timedelta:
    return timedelta(seconds=settings.CRM_OUTBOX_LEASE_SECONDS)


def _alive_key(campaign_id: int) -> str:
    return f"campaign-send-alive:{campaign_id}"


def send_alive(campaign_id: int) -> None:
    """Note that a worker is at this campaign's send (a dispatch or a chunk started), so the
    sweep leaves it alone for a lease."""
    cache.set(_alive_key(campaign_id), 1, timeout=settings.CRM_OUTBOX_LEASE_SECONDS)


# The mark of a message, once per message: only rows this chunk still holds (its lease token).
_MARK = {
    status: f"""
        UPDATE {OutboxMessage._meta.db_table}
        SET status = '{status}', error = %s, sent_at = {sent_at}
        WHERE id = %s AND status = '{Row.SENDING}' AND claimed_at = %s
        """
    for status, sent_at in ((Row.SENT, "now()"), (Row.FAILED, "NULL"))
}


def _claim(*, campaign_id: int, first_id: int, last_id: int, token: datetime) -> list[tuple]:
    table = OutboxMessage._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            UPDATE {table} SET status = %s, claimed_at = %s, attempts = attempts + 1
            WHERE campaign_id = %s AND id BETWEEN %s AND %s AND status = %s
            RETURNING id, contact_id, email, message_id
            """,
            [Row.SENDING, token, campaign_id, first_id, last_id, Row.QUEUED],
        )
        return sorted(cursor.fetchall())


class _Claim:
    """The rows one chunk holds, under a lease whose token is their `claimed_at`: renewed while
    the chunk sends, so the sweep never gives a live worker's rows to another, and checked on
    every write, so a worker that lost its lease (stalled past it) writes nothing."""

    def __init__(self, campaign: Campaign):
        self.campaign = campaign
        self.token = timezone.now()
        # Row ids in sending order (a dict: looked up and removed once per message).
        self.untried: dict[int, None] = {}
        self.checked = self.renewed = time.monotonic()
        self.cursor = None

    @contextmanager
    def marking(self):
        """Within it, `mark` writes through a prepared statement of its own on this thread's
        connection: a quarter of the CPU of a plain statement in the worker and in PostgreSQL.
        Each mark is still its own commit; it does not wait for its WAL flush (a fifth of a
        millisecond each): only a crash of PostgreSQL itself within a second of it can lose it,
        and then the message is sent again under its Message-ID, as after a kill."""
        connection.ensure_connection()
        raw = connection.connection
        # Django's own cursors bind on the client and never prepare, whatever this says.
        threshold, raw.prepare_threshold = raw.prepare_threshold, 0
        with connection.cursor() as cursor:
            cursor.execute("SET synchronous_commit TO off")
        try:
            with psycopg.Cursor(raw) as self.cursor:
                yield
        finally:
            self.cursor = None
            raw.prepare_threshold = threshold
            with connection.cursor() as cursor:
                cursor.execute("RESET synchronous_commit")

    def mark(self, row_id: int, status: str, error: str = "") -> None:
        with connection.wrap_database_errors:
            self.cursor.execute(_MARK[status], [error[:1000], row_id, self.token], prepare=True)

    def give_back(self) -> None:
        """Put the rows not tried yet back in the queue (not counted as an attempt)."""
        OutboxMessage.objects.filter(
            pk__in=list(self.untried), status=Row.SENDING, claimed_at=self.token
        ).update(status=Row.QUEUED, claimed_at=None, attempts=F("attempts") - 1)
        self.untried = {}

    def may_go_on(self) -> bool:
        """About once a second: whether the campaign is still sending and in its window; and a
        third of a lease after the last renewal, renew it (rows another worker took since are
        dropped from this chunk)."""
        now = time.monotonic()
        if now - self.checked < CHECK_SECONDS:
            return True
        self.checked = now
        # Read again: a marketer may have paused it, or changed its window, since.
        campaign = (
            Campaign.objects.filter(pk=self.campaign.pk)
            .only("send_state", "window_start", "window_end", "window_timezone")
            .first()
        )
        if campaign is None or campaign.send_state != State.SENDING or not in_window(campaign):
            return False
        if now - self.renewed >= settings.CRM_OUTBOX_LEASE_SECONDS / 3:
            self._renew()
        return True

    def _renew(self) -> None:
        token = timezone.now()
        table = OutboxMessage._meta.db_table
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                UPDATE {table} SET claimed_at = %s
                WHERE id = ANY(%s) AND status = %s AND claimed_at = %s RETURNING id
                """,
                [token, list(self.untried), Row.SENDING, self.token],
            )
            kept = {row_id for (row_id,) in cursor.fetchall()}
        self.token, self.renewed = token, time.monotonic()
        self.untried = {row_id: None for row_id in self.untried if row_id in kept}
        send_alive(self.campaign.pk)


def _refusal(error: smtplib.SMTPException) -> str:
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return "; ".join(
            f"{code} {reply.decode(errors='replace')}" for code, reply in error.recipients.values()
        )
    return f"{error.smtp_code} {error.smtp_error.decode(errors='replace')}"


def _hand_over(smtp, mime: CampaignMime | None, rendered, *, to, headers, outbox_id) -> None:
    """Give one message to the mail server (or the ESP); raises its refusal."""
    if mime is None:
        # Any other backend (an ESP through Anymail, make run's catcher): Django's message.
        message = email_message(rendered, to=to, headers=headers)
        # Through an ESP, its events about the message find the row by this.
        message.metadata = outbox_metadata(outbox_id=outbox_id)
        message.connection = smtp
        message.send()
        return
    if smtp.connection.sock is None:
        # The SMTP server closed the connection after refusing the last one (421): this
        # message has not been handed over yet, so open a new one.
        smtp.close()
        smtp.open()
    _sendmail(smtp.connection, mime, to, mime.message(rendered, to=to, headers=headers))


def _sendmail(server: smtplib.SMTP, mime: CampaignMime, to: str, data: bytes) -> None:
    """smtplib's `sendmail` for one recipient: the same commands, replies and refusals, with the
    sender's address quoted once per chunk (smtplib parses both addresses for every message)."""
    server.ehlo_or_helo_if_needed()
    size = f" size={len(data)}" if server.does_esmtp and server.has_extn("size") else ""
    server.putcmd("mail", f"FROM:{mime.mail_from}{size}")
    code, reply = server.getreply()
    if code != 250:
        _reset(server, code)
        raise smtplib.SMTPSenderRefused(code, reply, mime.envelope_from)
    recipient = mime.envelope_to(to)
    server.putcmd("rcpt", f"TO:{mime.rcpt_to(recipient)}")
    code, reply = server.getreply()
    if code not in (250, 251):
        _reset(server, code)
        raise smtplib.SMTPRecipientsRefused({recipient: (code, reply)})
    code, reply = server.data(data)
    if code != 250:
        _reset(server, code)
        raise smtplib.SMTPDataError(code, reply)


def _reset(server: smtplib.SMTP, code: int) -> None:
    # As smtplib after a refusal: a 421 closes the connection, any other is followed by RSET.
    if code == 421:
        server.close()
        return
    with suppress(smtplib.SMTPServerDisconnected):
        server.rset()


def _turn(governor: Governor, claim: _Claim, email: str) -> bool:
    """Wait until the governor lets a message to `email` go; False if the chunk must stop."""
    while (wait := governor.wait(email)) > 0:
        time.sleep(wait)
        if not claim.may_go_on():
            return False
    return True


def chunk_send(*, campaign_id: int, first_id: int, last_id: int) -> int:
    """Send the queued rows of one id range over one SMTP connection, as the governor allows;
    returns how many were sent. A refused message fails alone. A pause, a cancel or the end of
    the sending window stops the chunk between two messages and puts the rest back. On any other
    error (the connection dropped) the rows not yet tried go back to queued and the error is
    raised (the task retries); the one in flight stays `sending` until its lease ends, and is
    then sent again by the sweep under the same Message-ID (see the module docstring)."""
    campaign = (
        Campaign.objects.select_related("email_template")
        .filter(pk=campaign_id, send_state=State.SENDING)
        .first()
    )
    if campaign is None or campaign.email_template is None or not in_window(campaign):
        return 0
    send_alive(campaign_id)
    claim = _Claim(campaign)
    rows = _claim(campaign_id=campaign_id, first_id=first_id, last_id=last_id, token=claim.token)
    if not rows:
        campaign_finish(campaign_id=campaign_id)
        return 0
    claim.untried = dict.fromkeys(row_id for row_id, _, _, _ in rows)
    compiled = email_template_compile(campaign.email_template)
    links = UnsubscribeLinks(campaign=campaign)
    tracker = EmailTracker(campaign)
    governor = Governor(email for _, _, email, _ in rows)
    contact_ids = [contact_id for _, contact_id, _, _ in rows]
    contacts = email_contacts(contact_ids)
    segments = contact_segment_names(contact_ids)
    sent: list[int] = []
    smtp = get_connection(fail_silently=False)
    mime = CampaignMime() if type(smtp) is SmtpBackend else None
    try:
        smtp.open()
        with claim.marking():
            for row_id, contact_id, email, message_id in rows:
                if row_id not in claim.untried:
                    continue
                # After the governor's wait: a pause may have come in meanwhile.
                if not (_turn(governor, claim, email) and claim.may_go_on()):
                    break
                if row_id not in claim.untried:
                    # The lease was renewed meanwhile, and another worker holds this row now.
                    continue
                del claim.untried[row_id]
                contact = contacts.get(contact_id)
                if contact is None:
                    claim.mark(row_id, Row.FAILED, "The contact was deleted.")
                    continue
                url = links.url(contact_id=contact_id, email=email)
                try:
                    rendered = compiled.render(
                        email_context(
                            contact, segments=segments.get(contact_id, ()), unsubscribe_url=url
                        )
                    )
                except MergeFieldError as error:
                    claim.mark(row_id, Row.FAILED, f"The template failed: {error}")
                    continue
                rendered = tracker.track(rendered, outbox_id=row_id, unsubscribe_url=url)
                headers = {**message_headers(url=url), "Message-ID": message_id}
                try:
                    _hand_over(smtp, mime, rendered, to=email, headers=headers, outbox_id=row_id)
                except (smtplib.SMTPRecipientsRefused, smtplib.SMTPResponseException) as error:
                    # The server answered with a refusal: this message is not delivered, the
                    # connection is still good for the next.
                    claim.mark(row_id, Row.FAILED, _refusal(error))
                    continue
                except AnymailRecipientsRefused as error:
                    claim.mark(row_id, Row.FAILED, str(error))
                    continue
                claim.mark(row_id, Row.SENT)
                sent.append(contact_id)
    finally:
        claim.give_back()
        smtp.close()
        CampaignMember.objects.filter(
            campaign_id=campaign_id, contact_id__in=sent, status=CampaignMember.Status.TARGETED
        ).update(status=CampaignMember.Status.SENT, updated_at=timezone.now())
    campaign_finish(campaign_id=campaign_id)
    return len(sent)


def outbox_sweep(*, now: datetime | None = None) -> int:
    """Give the rows of workers that stopped (their lease ran out while `sending`) back to the
    queue, so they are sent again; a row that stopped MAX_ATTEMPTS workers is failed instead.
    Returns how many rows went back."""
    now = now or timezone.now()
    expired = OutboxMessage.objects.filter(status=Row.SENDING, claimed_at__lt=now - _lease())
    campaigns = set(expired.values_list("campaign_id", flat=True).distinct())
    expired.filter(attempts__gte=MAX_ATTEMPTS).update(
        status=Row.FAILED, error=WORKER_STOPPED.format(n=MAX_ATTEMPTS)
    )
    requeued = expired.update(status=Row.QUEUED, claimed_at=None)
    for campaign_id in campaigns:
        campaign_finish(campaign_id=campaign_id)
    return requeued


def stalled_campaigns(*, now: datetime | None = None) -> list[int]:
    """Sending campaigns with queued rows that no worker has been at for a lease (their tasks
    were lost, say with a Redis restart, or they waited for their window): dispatch them again."""
    queued = OutboxMessage.objects.filter(campaign_id=OuterRef("pk"), status=Row.QUEUED)
    return [
        campaign.pk
        for campaign in Campaign.objects.filter(send_state=State.SENDING).filter(Exists(queued))
        if in_window(campaign, now=now)
        and cache.get(_alive_key(campaign.pk)) is None
        # Its chunk tasks may only be waiting behind other work: queue them again at most once
        # per CRM_CAMPAIGN_REDISPATCH_SECONDS, so a busy queue does not grow by a whole
        # campaign's chunks every sweep.
        and cache.add(
            f"campaign-redispatched:{campaign.pk}",
            1,
            timeout=settings.CRM_CAMPAIGN_REDISPATCH_SECONDS,
        )
    ]


def due_campaigns(*, now: datetime | None = None) -> list[int]:
    return list(
        Campaign.objects.filter(
            send_state=State.SCHEDULED, scheduled_at__lte=now or timezone.now()
        ).values_list("pk", flat=True)
    )


def send_progress(campaign: Campaign) -> dict:
    """Counts of the campaign's outbox rows by status, and the share done, in one query."""
    counts = dict.fromkeys(Row.values, 0)
    counts.update(
        OutboxMessage.objects.filter(campaign=campaign)
        .values_list("status")
        .annotate(n=Count("id"))
        .order_by()
    )
    total = sum(counts.values())
    done = counts[Row.SENT] + counts[Row.FAILED]
    return {
        "counts": counts,
        "total": total,
        "done": done,
        "percent": round(100 * done / total) if total else 0,
    }


@transaction.atomic
def campaign_send_with(
    *,
    actor,
    campaign: Campaign,
    email_template,
    segments,
    at: datetime | None = None,
    window: tuple = (None, None, "UTC"),
) -> int:
    """Choose the template, segments and sending window (start, end, time zone; no start and
    end for none) and send (see campaign_send); a refusal changes nothing."""
    changes = {}
    if campaign.email_template_id != getattr(email_template, "pk", None):
        changes["email_template"] = email_template
    start, end, zone = window
    if (campaign.window_start, campaign.window_end, campaign.window_timezone) != window:
        changes.update(window_start=start, window_end=end, window_timezone=zone)
    if changes:
        campaign_update(actor=actor, campaign=campaign, **changes)
    campaign.segments.set(segments)
    return campaign_send(actor=actor, campaign=campaign, at=at)
