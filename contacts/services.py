"""Writes on accounts, contacts, activities and tasks. Each runs in the current tenant's schema
and writes the record's timeline entry and audit trail in the same transaction."""

from collections.abc import Callable
from datetime import date, datetime, timedelta

from django.db import transaction
from django.db.models import DurationField, F
from django.db.models.functions import Cast
from django.utils import timezone

from contacts.models import Account, Activity, Appointment, Contact, Task
from crm.bulk_insert import copy_insert, copy_update
from integrations.webhooks import webhook_emit, webhook_emit_many
from tracking import lifecycle, scoring
from tracking.models import AuditEntry, TimelineEntry
from tracking.services import (
    audit_entry,
    audit_record,
    audited_update,
    field_values,
    timeline_add,
)


def _create(*, actor, instance, name: str, **timeline_target):
    if instance.owner_id is None:
        instance.owner = actor
    instance.full_clean()
    instance.save()
    audit_record(instance=instance, action="created", actor=actor)
    timeline_add(
        kind=TimelineEntry.Kind.RECORD,
        actor=actor,
        # No actor: the customer did it themselves (a web form), not a user of the CRM.
        summary=f"{actor} added {name} to the CRM" if actor else f"{name} was added to the CRM",
        **timeline_target,
    )
    webhook_emit(event=f"{instance._meta.model_name}.created", instance=instance)
    return instance


def _update(*, actor, instance, fields: dict, **timeline_target):
    entry = audited_update(actor=actor, instance=instance, fields=fields)
    if entry is not None:
        changed = ", ".join(name.replace("_", " ") for name in entry.changes)
        timeline_add(
            kind=TimelineEntry.Kind.RECORD,
            actor=actor,
            summary=f"{actor} changed {changed}" if actor else f"Changed {changed}",
            **timeline_target,
        )
        webhook_emit(event=f"{instance._meta.model_name}.updated", instance=instance)
    return instance


@transaction.atomic
def records_bulk_save(
    *, actor, created: list, changed: list[tuple], summary: Callable[[object], str]
) -> list:
    """Save many new and changed accounts and contacts at once (a CSV import, the API's bulk
    upsert): new rows with COPY and changes with an UPDATE per chunk, the audit trail and the
    new records' timeline entries with COPY too, never a query per record.

    `created` holds unsaved records, accounts before the contacts that may point at them;
    `changed` holds (record with its new values, `field_values()` of it before). Callers have
    validated every record. Returns the changed records that really changed."""
    now = timezone.now()
    for model in (Account, Contact):
        new = [r for r in created if isinstance(r, model)]
        for record in new:
            if record.owner_id is None:
                record.owner = actor
        copy_insert(new)
    really_changed = []
    for record, before in changed:
        changes = {n: [before[n], v] for n, v in field_values(record).items() if before.get(n) != v}
        if changes:
            record.updated_at = now
            really_changed.append((record, changes))
    for model in (Account, Contact):
        rows = [(r, c) for r, c in really_changed if isinstance(r, model)]
        if rows:
            fields = sorted({n for _, changes in rows for n in changes} | {"updated_at"})
            copy_update([r for r, _ in rows], fields)
    lifecycle.lifecycle_manual_changes(
        changes=[
            (r, *c["lifecycle_stage"])
            for r, c in really_changed
            if isinstance(r, Contact) and "lifecycle_stage" in c
        ],
        actor=actor,
    )
    copy_insert(
        [audit_entry(instance=r, action="created", actor=actor) for r in created]
        + [
            AuditEntry(
                model=r._meta.label_lower, object_id=r.pk, action="updated", changes=c, actor=actor
            )
            for r, c in really_changed
        ]
    )
    copy_insert(
        [
            TimelineEntry(
                kind=TimelineEntry.Kind.RECORD,
                summary=summary(r)[:300],
                contact=r if isinstance(r, Contact) else None,
                account_id=r.account_id if isinstance(r, Contact) else r.pk,
                actor=actor,
                occurred_at=now,
            )
            for r in created
        ]
    )
    for model in (Account, Contact):
        name = model._meta.model_name
        webhook_emit_many(
            event=f"{name}.created", instances=[r for r in created if isinstance(r, model)]
        )
        webhook_emit_many(
            event=f"{name}.updated",
            instances=[r for r, _ in really_changed if isinstance(r, model)],
        )
    return [r for r, _ in really_changed]


@transaction.atomic
def contact_create(*, actor, **fields) -> Contact:
    contact = Contact(**fields)
    return _create(actor=actor, instance=contact, name=contact.full_name, contact=contact)


@transaction.atomic
def contact_update(*, actor, contact: Contact, **fields) -> Contact:
    stage = Contact.objects.select_for_update().values_list("lifecycle_stage", flat=True)
    before = stage.get(pk=contact.pk)
    _update(actor=actor, instance=contact, fields=fields, contact=contact)
    lifecycle.lifecycle_manual_changes(
        changes=[(contact, before, contact.lifecycle_stage)], actor=actor
    )
    return contact


@transaction.atomic
def account_create(*, actor, **fields) -> Account:
    account = Account(**fields)
    return _create(actor=actor, instance=account, name=account.name, account=account)


@transaction.atomic
def account_update(*, actor, account: Account, **fields) -> Account:
    return _update(actor=actor, instance=account, fields=fields, account=account)


def _delete(*, actor, instance, name: str, account_id: int | None) -> None:
    """Delete a record, keeping its last values in the audit trail and, when it belonged to an
    account, a line on that account's timeline."""
    audit_record(instance=instance, action="deleted", actor=actor)
    if account_id and account_id != instance.pk:
        timeline_add(
            kind=TimelineEntry.Kind.RECORD,
            actor=actor,
            account=Account(pk=account_id),
            summary=f"{actor} deleted {name}",
        )
    webhook_emit(
        event=f"{instance._meta.model_name}.deleted", instance=instance, data={"id": instance.pk}
    )
    instance.delete()


@transaction.atomic
def contact_delete(*, actor, contact: Contact) -> None:
    """Delete a contact with their history (activities, tasks and timeline go with them)."""
    _delete(actor=actor, instance=contact, name=contact.full_name, account_id=contact.account_id)


@transaction.atomic
def account_delete(*, actor, account: Account) -> None:
    """Delete an account with its opportunities; its contacts stay, without an account."""
    _delete(actor=actor, instance=account, name=account.name, account_id=account.parent_id)


@transaction.atomic
def activity_log(
    *,
    actor,
    kind: str,
    subject: str,
    notes: str = "",
    outcome: str = "",
    occurred_at: datetime | None = None,
    contact: Contact | None = None,
    account: Account | None = None,
    opportunity=None,
) -> Activity:
    """Log a call, meeting, e-mail, letter or note against a record."""
    activity = Activity(
        kind=kind,
        subject=subject,
        notes=notes,
        outcome=outcome,
        occurred_at=occurred_at or timezone.now(),
        contact=contact,
        account=account or (contact.account if contact else None),
        opportunity=opportunity,
        user=actor,
    )
    activity.full_clean()
    activity.save()
    timeline_add(
        kind=kind,
        summary=_activity_summary(activity),
        detail=notes,
        **_timeline_place(activity),
        actor=actor,
        occurred_at=activity.occurred_at,
    )
    if kind == Activity.Kind.MEETING and contact is not None:
        scoring.exposure_record(
            contact=contact,
            kind="meeting",
            reason=f"Meeting: {subject}",
            occurred_at=activity.occurred_at,
        )
    webhook_emit(event="activity.created", instance=activity)
    return activity


def _activity_summary(activity: Activity) -> str:
    summary = f"{activity.get_kind_display()}: {activity.subject}"
    return f"{summary} ({activity.outcome})" if activity.outcome else summary


def letters_bulk_log(*, actor, letters: list[tuple[Contact, str, str]]) -> list[Activity]:
    """Log many letters at once, (contact, subject, text) each, as `activity_log` logs one: a
    letter activity by `actor` and its timeline entry. Two inserts in all, where `activity_log`
    takes some nine queries a letter. The caller built the values (a subject of at most 200
    characters), so they are not checked again."""
    now = timezone.now()
    activities = Activity.objects.bulk_create(
        Activity(
            kind=Activity.Kind.LETTER,
            subject=subject,
            notes=text,
            occurred_at=now,
            contact=contact,
            account=contact.account,
            user=actor,
        )
        for contact, subject, text in letters
    )
    TimelineEntry.objects.bulk_create(
        TimelineEntry(
            kind=TimelineEntry.Kind.LETTER,
            summary=_activity_summary(activity)[:300],
            detail=activity.notes,
            contact=activity.contact,
            account=activity.account,
            actor=actor,
            occurred_at=now,
        )
        for activity in activities
    )
    webhook_emit_many(event="activity.created", instances=activities)
    return activities


@transaction.atomic
def task_create(
    *,
    actor,
    title: str,
    assignee=None,
    due_on: date | None = None,
    priority: int = Task.Priority.NORMAL,
    notes: str = "",
    contact: Contact | None = None,
    account: Account | None = None,
    opportunity=None,
) -> Task:
    task = Task(
        title=title,
        assignee=assignee or actor,
        due_on=due_on,
        priority=priority,
        notes=notes,
        contact=contact,
        account=account or (contact.account if contact else None),
        opportunity=opportunity,
        created_by=actor,
    )
    task.full_clean()
    task.save()
    audit_record(instance=task, action="created", actor=actor)
    webhook_emit(event="task.created", instance=task)
    due = f", due {due_on:%d %b %Y}" if due_on else ""
    timeline_add(
        kind=TimelineEntry.Kind.TASK,
        **_timeline_place(task),
        actor=actor,
        summary=f"Task for {task.assignee}: {title}{due}",
    )
    return task


def _timeline_place(row: Activity | Task) -> dict:
    """Whose timeline an activity's or a task's news goes on: its contact's and account's, or for
    one filed on a deal alone, the deal's account's (whose page shows the deal's news already;
    the row itself stays the deal's, for those who may see the deal: crm.access)."""
    account = row.account or (row.opportunity.account if row.opportunity_id else None)
    return {"contact": row.contact, "account": account}


@transaction.atomic
def task_update(*, actor, task: Task, **fields) -> Task:
    if audited_update(actor=actor, instance=task, fields=fields) is not None:
        webhook_emit(event="task.updated", instance=task)
    return task


@transaction.atomic
def task_set_done(*, actor, task: Task, done: bool) -> Task:
    """Mark a task done or not done. Doing it twice changes nothing the second time."""
    if done == task.is_done:
        return task
    before = field_values(task)
    task.done_at = timezone.now() if done else None
    task.save(update_fields=["done_at", "updated_at"])
    audit_record(instance=task, action="updated", actor=actor, before=before)
    webhook_emit(event="task.updated", instance=task)
    verb = "completed" if done else "reopened"
    timeline_add(
        kind=TimelineEntry.Kind.TASK,
        **_timeline_place(task),
        actor=actor,
        summary=f"{actor} {verb} the task: {task.title}",
    )
    return task


@transaction.atomic
def appointment_create(
    *,
    actor,
    title: str,
    starts_at: datetime,
    ends_at: datetime,
    location: str = "",
    notes: str = "",
    users=(),
    contacts=(),
    account: Account | None = None,
    remind_minutes_before: int = 15,
) -> Appointment:
    """Book an appointment; it shows on each attending contact's timeline."""
    appointment = Appointment(
        title=title,
        starts_at=starts_at,
        ends_at=ends_at,
        location=location,
        notes=notes,
        organizer=actor,
        account=account,
        remind_minutes_before=remind_minutes_before,
    )
    appointment.full_clean()
    appointment.save()
    appointment.users.set({actor, *users})
    appointment.contacts.set(contacts)
    audit_record(instance=appointment, action="created", actor=actor)
    webhook_emit(event="appointment.created", instance=appointment)
    when = timezone.localtime(starts_at).strftime("%d %b %Y %H:%M")
    for contact in contacts:
        timeline_add(
            kind=TimelineEntry.Kind.APPOINTMENT,
            contact=contact,
            actor=actor,
            summary=f"Appointment: {title}, {when}",
            detail=location,
        )
    return appointment


def appointment_reminders_claim(*, now: datetime) -> list[Appointment]:
    """Claim the appointments whose reminder is due and not yet sent, marking them sent in the
    same UPDATE, so two workers (or a retried task) never remind twice."""
    due = Appointment.objects.filter(
        reminder_sent_at__isnull=True,
        starts_at__gt=now,
        starts_at__lte=now
        + Cast(F("remind_minutes_before") * timedelta(minutes=1), DurationField()),
    )
    with transaction.atomic():
        ids = list(due.select_for_update(skip_locked=True).values_list("id", flat=True))
        Appointment.objects.filter(id__in=ids).update(reminder_sent_at=now)
    return list(Appointment.objects.filter(id__in=ids).prefetch_related("users", "contacts"))


EMAIL_QUEUED, EMAIL_SENDING, EMAIL_SENT = "queued", "sending", "sent"


class EmailRefused(ValueError):
    """The contact cannot be e-mailed (no address, or they asked not to be)."""


@transaction.atomic
def contact_email(*, actor, contact: Contact, subject: str, body: str) -> Activity:
    """Write an e-mail to a contact: it is logged at once as an activity (outcome "queued") on the
    timeline, and a Celery task sends it after the commit."""
    from contacts.tasks import contact_email_send

    if not contact.email:
        raise EmailRefused(f"{contact.full_name} has no e-mail address.")
    if contact.do_not_email:
        raise EmailRefused(f"{contact.full_name} asked not to be e-mailed.")
    activity = activity_log(
        actor=actor,
        kind=Activity.Kind.EMAIL,
        subject=subject,
        notes=body,
        outcome=EMAIL_QUEUED,
        contact=contact,
    )
    transaction.on_commit(lambda: contact_email_send.delay(activity.pk))
    return activity


def contact_email_claim(*, activity_id: int) -> Activity | None:
    """Move a queued e-mail to "sending" and return it; None if another run already took it."""
    claimed = Activity.objects.filter(
        pk=activity_id, kind=Activity.Kind.EMAIL, outcome=EMAIL_QUEUED
    ).update(outcome=EMAIL_SENDING)
    if not claimed:
        return None
    return Activity.objects.select_related("contact", "user").get(pk=activity_id)
