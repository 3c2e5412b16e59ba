"""Writing a customer's history: timeline entries and the audit trail. Callers run these inside
the transaction of the change they describe, so history and change commit together."""

from datetime import datetime
from decimal import Decimal

from django.db import models
from django.utils import timezone

from tracking.models import AuditEntry, TimelineEntry

SKIPPED_FIELDS = {"id", "created_at", "updated_at"}


def timeline_add(
    *,
    kind: str,
    summary: str,
    contact=None,
    account=None,
    actor=None,
    detail: str = "",
    occurred_at: datetime | None = None,
) -> TimelineEntry:
    """Add an entry to a contact's (and so their account's) timeline, or to an account's."""
    if account is None and contact is not None:
        account = contact.account
    return TimelineEntry.objects.create(
        kind=kind,
        summary=summary[:300],
        detail=detail,
        contact=contact,
        account=account,
        actor=actor,
        occurred_at=occurred_at or timezone.now(),
    )


def field_values(instance: models.Model) -> dict[str, object]:
    """The instance's concrete field values, as JSON-friendly values, for diffing."""
    values = {}
    for field in instance._meta.concrete_fields:
        if field.name in SKIPPED_FIELDS:
            continue
        value = getattr(instance, field.attname)
        if isinstance(field, models.DecimalField) and value is not None:
            # As stored: "5000.00" whether the value came from the database or from "5000".
            value = Decimal(value).quantize(Decimal(10) ** -field.decimal_places)
        values[field.name] = (
            value if isinstance(value, (str, int, bool, list, type(None))) else str(value)
        )
    return values


def audit_record(
    *, instance: models.Model, action: str, actor, before: dict | None = None
) -> AuditEntry | None:
    """Record a create or an update of `instance`. For updates, pass the `field_values()` taken
    before the change; only fields that changed are kept, and nothing is written if none did."""
    entry = audit_entry(instance=instance, action=action, actor=actor, before=before)
    if entry is not None:
        entry.save()
    return entry


def audit_entry(
    *, instance: models.Model, action: str, actor, before: dict | None = None
) -> AuditEntry | None:
    """The unsaved audit entry for `audit_record` (or for many at once, with bulk_create)."""
    after = field_values(instance)
    if before is None:
        changes = {
            name: [None, value] for name, value in after.items() if value not in ("", None, [])
        }
    else:
        changes = {
            name: [before[name], value]
            for name, value in after.items()
            if before.get(name) != value
        }
        if not changes:
            return None
    return AuditEntry(
        model=instance._meta.label_lower,
        object_id=instance.pk,
        action=action,
        changes=changes,
        actor=actor,
    )


def audited_update(
    *, actor, instance: models.Model, fields: dict, validate=None
) -> AuditEntry | None:
    """Write `fields` onto `instance`, validate and save it, and record in the audit trail what
    changed; returns that entry (None when nothing did). Run it inside the caller's transaction.

    The "before" comes from the stored row, locked until commit, not from `instance`: that may
    already carry the new values (a bound ModelForm writes them into its instance while
    validating). `validate(instance)` runs after `full_clean()`, for rules across models."""
    stored = type(instance).objects.select_for_update().get(pk=instance.pk)
    before = field_values(stored)
    for name, value in fields.items():
        setattr(instance, name, value)
    instance.full_clean()
    if validate is not None:
        validate(instance)
    instance.save()
    return audit_record(instance=instance, action="updated", actor=actor, before=before)
