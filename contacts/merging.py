"""Duplicate contacts and accounts: finding them across the tenant, merging two into one, and
undoing a merge from the merge journal.

A merge keeps one record (the "kept" one), takes the field values the user chose from the other
(the "merged" one), moves everything that hangs off the merged record onto the kept one and
deletes the merged row. The journal entry holds all that is needed to put both back exactly:
the merged record's full values, the kept record's values before, and the ids of every row that
was moved. Everything here runs in the current tenant's schema.
"""

import json
import operator
import time
from dataclasses import dataclass
from functools import reduce

from django.apps import apps
from django.core import serializers
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, connection, models, transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.db.models.deletion import Collector
from django.utils import timezone

from contacts.models import Account, Contact, MergeJournal, RecordKind
from crm import access
from integrations.webhooks import webhook_emit
from tracking.models import AuditEntry, TimelineEntry
from tracking.services import timeline_add

NAME_LIKENESS = 0.6
# Looser threshold for the first and last name on their own: it only picks candidates from the
# trigram indexes, and the full name must then reach NAME_LIKENESS.
PART_LIKENESS = 0.3
PER_ROW = 5
BLOCK = 200
TIME_BUDGET = 0.8
JOURNAL_PAGE = 50

MODELS = {RecordKind.CONTACT: Contact, RecordKind.ACCOUNT: Account}
KEEP_SIDES = ("kept", "merged")
# Stands for the block's ids in a query's parameter list.
_BLOCK = object()


class MergeRefused(Exception):
    """A merge or an undo that cannot be done; the message says why, in the user's words."""


def reach(user, kind: str) -> QuerySet:
    """The contacts or accounts the user may see, the only ones they may merge."""
    return access.contacts_for(user) if kind == RecordKind.CONTACT else access.accounts_for(user)


def display_name(record) -> str:
    return record.full_name if isinstance(record, Contact) else record.name


# --- the duplicate finder -----------------------------------------------------------------------


@dataclass
class DuplicatePair:
    first: models.Model
    second: models.Model
    reasons: list[str]


@dataclass
class DuplicatePage:
    pairs: list[DuplicatePair]
    # The id to continue after ("show more"); None when the whole tenant has been looked at.
    next_after: int | None


REASONS = {
    "email": "same e-mail",
    "other_email": "e-mail among the other's addresses",
    "name": "similar name at the same account",
    "domain": "same domain",
    "account_name": "similar name",
}

_FULL_NAME = "concat({t}.first_name, ' ', {t}.last_name)"
_NAMES_ALIKE = (
    "(upper({c}.last_name) %% upper({b}.last_name)"
    " OR upper({c}.first_name) %% upper({b}.first_name))"
    " AND similarity(" + _FULL_NAME.format(t="{c}") + ", " + _FULL_NAME.format(t="{b}") + ") >= %s"
)
# Would the pair (b, c), with c.id < b.id, be found from c's side by one of the other arms?
_FOUND_FROM_C = (
    "(c.email <> '' AND upper(c.email) = upper(b.email))"
    " OR (b.email <> '' AND upper(b.email) IN (SELECT upper(x) FROM unnest(c.other_emails) x))"
    " OR (c.account_id = b.account_id AND " + _NAMES_ALIKE.format(c="c", b="b") + ")"
)


def _reach_sql(visible: QuerySet, alias: str) -> tuple[str, list]:
    """`AND alias.id IN (<the user's reach>)`, or nothing for users who see everything."""
    if not visible.query.where:
        return "", []
    sql, params = visible.order_by().values("pk").query.sql_with_params()
    return f" AND {alias}.id IN ({sql})", list(params)


def _contact_pairs_sql(visible: QuerySet) -> tuple[str, list]:
    where, where_params = _reach_sql(visible, "c")
    limit = f" ORDER BY c.id LIMIT {PER_ROW}"
    sql = f"""
        SELECT b.id, m.id, 'email' FROM contacts_contact b CROSS JOIN LATERAL (
            SELECT c.id FROM contacts_contact c
            WHERE b.email <> '' AND upper(c.email) = upper(b.email) AND c.id > b.id{where}{limit}
        ) m WHERE b.id = ANY(%s)
        UNION ALL
        SELECT b.id, m.id, 'other_email' FROM contacts_contact b CROSS JOIN LATERAL (
            SELECT c.id FROM unnest(b.other_emails) AS e(address)
            JOIN contacts_contact c ON upper(c.email) = upper(e.address)
            WHERE c.id <> b.id AND (c.id > b.id OR NOT ({_FOUND_FROM_C})){where}{limit}
        ) m WHERE b.id = ANY(%s) AND cardinality(b.other_emails) > 0
        UNION ALL
        SELECT b.id, m.id, 'name' FROM contacts_contact b CROSS JOIN LATERAL (
            SELECT c.id FROM contacts_contact c
            WHERE c.account_id = b.account_id AND c.id > b.id
              AND {_NAMES_ALIKE.format(c="c", b="b")}{where}{limit}
        ) m WHERE b.id = ANY(%s) AND b.account_id IS NOT NULL
    """
    params = [*where_params, _BLOCK]
    params += [NAME_LIKENESS, *where_params, _BLOCK]
    params += [NAME_LIKENESS, *where_params, _BLOCK]
    return sql, params


def _account_pairs_sql(visible: QuerySet) -> tuple[str, list]:
    where, where_params = _reach_sql(visible, "c")
    sql = f"""
        SELECT anchor, other, 'domain' FROM (
            SELECT b.id AS anchor, c.id AS other,
                   row_number() OVER (PARTITION BY b.id ORDER BY c.id) AS n
            FROM contacts_account b
            JOIN contacts_account c ON lower(c.domain) = lower(b.domain) AND c.id > b.id{where}
            WHERE b.id = ANY(%s) AND b.domain <> ''
        ) same_domain WHERE n <= {PER_ROW}
        UNION ALL
        SELECT b.id, m.id, 'account_name' FROM contacts_account b CROSS JOIN LATERAL (
            SELECT c.id FROM contacts_account c
            WHERE upper(c.name) %% upper(b.name) AND c.id > b.id{where}
            ORDER BY c.id LIMIT {PER_ROW}
        ) m WHERE b.id = ANY(%s)
    """
    return sql, [*where_params, _BLOCK, *where_params, _BLOCK]


def duplicate_pairs(user, kind: str, *, after: int | None = None, want: int = 25) -> DuplicatePage:
    """Pairs of records the user may see that look like the same customer.

    Contacts: the same e-mail (any case, also one's address among the other's other_emails), or
    a similar full name (trigram similarity >= NAME_LIKENESS) at the same account. Accounts: the
    same domain, or a similar name.

    How it stays fast on a million contacts: it never compares every record with every other.
    It walks the user's records in id order, a block of BLOCK at a time (keyset on the primary
    key), and for each record of the block looks up its matches through an index, in one
    set-based query per block: a LATERAL join with a LIMIT of PER_ROW matches per record. E-mail
    equality on upper(email) and the name operator `%` (with pg_trgm.similarity_threshold set for
    this transaction only) are answered by the trigram GIN indexes of 0003_search_indexes; the
    name match is also limited to the same account, so the planner may take the account index.
    Each pair is reported once, from its lower id (or from the record holding the other's
    address in other_emails). Blocks are read until `want` pairs are found, the time budget is
    spent or the table ends; the page then offers "show more" from the last record looked at.
    Account domains have no index: that arm is one hash join per block over the accounts, a
    table far smaller than the contacts.
    """
    model = MODELS[kind]
    visible = reach(user, kind)
    build = _contact_pairs_sql if kind == RecordKind.CONTACT else _account_pairs_sql
    sql, template = build(visible)
    found: dict[tuple[int, int], set[str]] = {}
    deadline = time.monotonic() + TIME_BUDGET
    next_after = after or 0
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT set_config('pg_trgm.similarity_threshold', %s, true)",
            [str(PART_LIKENESS if kind == RecordKind.CONTACT else NAME_LIKENESS)],
        )
        while next_after is not None and len(found) < want and time.monotonic() < deadline:
            block = list(
                visible.filter(pk__gt=next_after)
                .order_by("pk")
                .values_list("pk", flat=True)[:BLOCK]
            )
            cursor.execute(sql, [block if p is _BLOCK else p for p in template])
            next_after = block[-1] if len(block) == BLOCK else None
            last = None
            for anchor, other, reason in sorted(cursor.fetchall()):
                if len(found) >= want and anchor != last:
                    # The page is full; the next one starts after the last record shown, whose
                    # pairs are all on this page.
                    next_after = last
                    break
                found.setdefault((anchor, other), set()).add(reason)
                last = anchor
    return DuplicatePage(pairs=_load_pairs(model, found), next_after=next_after)


def _load_pairs(model, found: dict[tuple[int, int], set[str]]) -> list[DuplicatePair]:
    ids = {pk for pair in found for pk in pair}
    records = model.objects.select_related("account" if model is Contact else "parent").in_bulk(ids)
    return [
        DuplicatePair(
            first=records[min(a, b)],
            second=records[max(a, b)],
            reasons=[REASONS[r] for r in REASONS if r in reasons],
        )
        for (a, b), reasons in sorted(found.items())
        if a in records and b in records
    ]


# --- the merge preview ---------------------------------------------------------------------------

# Fields not chosen from one side but combined from both.
FOLDED = {"other_emails"}


def choosable_fields(model) -> list[models.Field]:
    """The fields whose value the user picks from one of the two records."""
    return [
        field
        for field in model._meta.concrete_fields
        if field.editable
        and not field.primary_key
        and field.name not in FOLDED
        and not getattr(field, "auto_now", False)
        and not getattr(field, "auto_now_add", False)
    ]


def _relations(model) -> list[models.ForeignKey]:
    """Every foreign key that points at `model`: also hidden ones (related_name="+") and those of
    many-to-many tables, the record's own (account.shared_with) and others' (appointment
    contacts). Read from the model meta so that a relation added later moves too."""
    return [
        rel.field
        for rel in model._meta.get_fields(include_hidden=True)
        if rel.auto_created and not rel.concrete and (rel.one_to_many or rel.one_to_one)
    ]


def _display(record, field: models.Field) -> str:
    if field.choices:
        return getattr(record, f"get_{field.name}_display")()
    value = getattr(record, field.name)
    if value is None or value == "" or value == []:
        return ""
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


@dataclass
class FieldChoice:
    name: str
    label: str
    kept: str
    merged: str

    @property
    def differs(self) -> bool:
        return self.kept != self.merged


@dataclass
class MergePreview:
    kind: str
    kept: models.Model
    merged: models.Model
    fields: list[FieldChoice]
    # (what, how many) rows will move from the merged record to the kept one
    moves: list[tuple[str, int]]

    @property
    def differing(self) -> list[FieldChoice]:
        return [f for f in self.fields if f.differs]


def merge_preview(*, kind: str, kept, merged) -> MergePreview:
    """The two records side by side, and what the merge would move."""
    model = MODELS[kind]
    fields = [
        FieldChoice(
            name=field.name,
            label=str(field.verbose_name).capitalize(),
            kept=_display(kept, field),
            merged=_display(merged, field),
        )
        for field in choosable_fields(model)
    ]
    moves = []
    for fk in _relations(model):
        rows = fk.model._base_manager.filter(**{fk.name: merged.pk})
        if fk.model is model:
            rows = rows.exclude(pk=kept.pk)
        count = rows.count()
        if count:
            moves.append((_relation_label(fk), count))
    return MergePreview(kind=kind, kept=kept, merged=merged, fields=fields, moves=moves)


def _relation_label(fk: models.ForeignKey) -> str:
    meta = fk.model._meta
    if meta.auto_created:
        # A many-to-many table: name it by the field of the model that declares it.
        for field in meta.auto_created._meta.many_to_many:
            if field.remote_field.through is fk.model:
                return f"{meta.auto_created._meta.verbose_name} {field.verbose_name}"
    return f"{meta.verbose_name_plural} ({fk.verbose_name})"


# --- merge and undo -----------------------------------------------------------------------------


def _serialize(records) -> list[dict]:
    """Records as JSON-ready dicts (Django's serialization: every field, arrays and m2m too)."""
    return json.loads(serializers.serialize("json", records))


def _deserialize(data: list[dict]):
    return [item for item in serializers.deserialize("python", data)]


def _unique_sets(model, fk: models.ForeignKey) -> list[tuple[str, ...]]:
    sets = [tuple(s) for s in model._meta.unique_together]
    sets += [
        tuple(c.fields)
        for c in model._meta.constraints
        if isinstance(c, models.UniqueConstraint) and c.fields and c.condition is None
    ]
    if fk.unique:
        sets.append((fk.name,))
    return [s for s in sets if fk.name in s]


def _deletes_only_themselves(rows: list[models.Model]) -> bool:
    collector = Collector(using=connection.alias)
    collector.collect(rows)
    return (
        set(collector.data) == {type(rows[0])}
        and not collector.field_updates
        and not any(qs.exists() for qs in collector.fast_deletes)
    )


def _move_related(*, model, kept, merged) -> tuple[dict[str, list[int]], list[dict]]:
    """Re-point every row that refers to `merged` at `kept`. A row that would then duplicate one
    of kept's (the same appointment linking both contacts, the same partner on both accounts) is
    dropped instead, and returned serialized so that an undo can bring it back."""
    moved: dict[str, list[int]] = {}
    dropped: list[dict] = []
    for fk in _relations(model):
        related = fk.model._base_manager
        rows = related.filter(**{fk.name: merged.pk})
        if fk.model is model:
            rows = rows.exclude(pk=kept.pk)
        unique_sets = _unique_sets(fk.model, fk)
        if unique_sets:
            clash = reduce(
                operator.or_,
                (
                    Exists(
                        related.filter(
                            **{fk.name: kept.pk},
                            **{n: OuterRef(n) for n in fields if n != fk.name},
                        )
                    )
                    for fields in unique_sets
                ),
            )
            clashing = list(rows.filter(clash))
            if clashing:
                if not _deletes_only_themselves(clashing):
                    raise MergeRefused(
                        f"Both records have {fk.model._meta.verbose_name_plural} that cannot "
                        "be combined; remove the duplicate one first."
                    )
                dropped += _serialize(clashing)
                related.filter(pk__in=[r.pk for r in clashing]).delete()
        ids = list(rows.values_list("pk", flat=True))
        if ids:
            related.filter(pk__in=ids).update(**{fk.name: kept.pk})
            _touch(fk.model, ids, moved=fk.name)
            moved[f"{fk.model._meta.label_lower}.{fk.name}"] = ids
    return moved, dropped


def _touch(model, ids: list[int], *, moved: str) -> None:
    """Rows whose field `moved` now points at the other record have changed, for a sync with
    `updated_since`: the rows themselves where their model keeps the time of its last change,
    or for the link table of a many-to-many field (an appointment's contacts) the records it
    links to besides (the appointments). An UPDATE skips `auto_now`, so the time is set here."""
    now = timezone.now()
    if not model._meta.auto_created:
        if _keeps_time(model):
            model._base_manager.filter(pk__in=ids).update(updated_at=now)
        return
    links = model._base_manager.filter(pk__in=ids)
    for field in model._meta.concrete_fields:
        if field.many_to_one and field.name != moved and _keeps_time(field.related_model):
            linked = links.values(field.attname)
            field.related_model._base_manager.filter(pk__in=linked).update(updated_at=now)


def _keeps_time(model) -> bool:
    return any(field.name == "updated_at" for field in model._meta.concrete_fields)


def _fold_emails(kept: Contact, before: list[str], merged: Contact) -> None:
    """Every address either contact had stays on the kept one: the ones that are not its
    e-mail go into other_emails (lower case, as the duplicate check looks them up)."""
    addresses = [*before, merged.email, *merged.other_emails]
    primary = kept.email.lower()
    folded = []
    for address in addresses:
        address = address.lower()
        if address and address != primary and address not in folded:
            folded.append(address)
    kept.other_emails = folded


def _lock_pair(*, actor, kind: str, kept, merged) -> tuple:
    model = MODELS[kind]
    if not access.can(actor, "records.merge"):
        raise PermissionDenied
    if not (isinstance(kept, model) and isinstance(merged, model)):
        raise MergeRefused(f"Only two {RecordKind(kind).label.lower()} can be merged together.")
    if kept.pk == merged.pk:
        raise MergeRefused("A record cannot be merged with itself.")
    # Both rows, locked in id order so that two merges of the same pair cannot deadlock.
    locked = {
        record.pk: record
        for record in reach(actor, kind)
        .select_for_update(of=("self",))
        .filter(pk__in=[kept.pk, merged.pk])
        .order_by("pk")
    }
    if len(locked) < 2:
        raise MergeRefused(
            "One of these records no longer exists (it may have been merged already)."
        )
    return locked[kept.pk], locked[merged.pk]


@transaction.atomic
def _merge(*, actor, kind: str, kept, merged, fields: dict[str, str]) -> MergeJournal:
    kept, merged = _lock_pair(actor=actor, kind=kind, kept=kept, merged=merged)
    model = MODELS[kind]
    choosable = {field.name: field for field in choosable_fields(model)}
    unknown = [n for n, side in fields.items() if n not in choosable or side not in KEEP_SIDES]
    if unknown:
        raise MergeRefused(f"Unknown choice for: {', '.join(sorted(unknown))}.")
    kept_before, merged_values = _serialize([kept])[0], _serialize([merged])[0]
    name = display_name(merged)
    addresses_before = [kept.email, *kept.other_emails] if isinstance(kept, Contact) else []

    for field_name, side in fields.items():
        if side == "merged":
            field = choosable[field_name]
            setattr(kept, field.attname, getattr(merged, field.attname))
    for field in choosable.values():
        # A record cannot be its own parent once the two are one.
        if field.related_model is model and getattr(kept, field.attname) in (kept.pk, merged.pk):
            setattr(kept, field.attname, None)
    if isinstance(kept, Contact):
        _fold_emails(kept, addresses_before, merged)

    moved, dropped = _move_related(model=model, kept=kept, merged=merged)
    merged.delete()
    try:
        kept.full_clean()
    except ValidationError as invalid:
        raise MergeRefused(" ".join(invalid.messages)) from invalid
    kept.save()

    kept_after = _serialize([kept])[0]["fields"]
    changed = {
        name_: [kept_before["fields"][name_], kept_after[name_]]
        for name_ in [*choosable, *(FOLDED & set(kept_after))]
        if kept_before["fields"][name_] != kept_after[name_]
    }
    journal = MergeJournal.objects.create(
        kind=kind,
        kept_id=kept.pk,
        merged_id=merged_values["pk"],
        snapshot={
            "kept_before": kept_before,
            "merged": merged_values,
            "changed": changed,
            "moved": moved,
            "dropped": dropped,
        },
        summary=f"{name} merged into {display_name(kept)}"[:300],
        actor=actor,
    )
    AuditEntry.objects.create(
        model=model._meta.label_lower,
        object_id=kept.pk,
        action="merged",
        changes={"merged record": [f"#{merged_values['pk']} {name}", None], **changed},
        actor=actor,
    )
    timeline_add(
        kind=TimelineEntry.Kind.RECORD,
        actor=actor,
        summary=f"{actor} merged {name} into this record",
        **{kind: kept},
    )
    webhook_emit(
        event=f"{kind}.deleted",
        instance=merged,
        data={"id": merged_values["pk"], "merged_into": kept.pk},
    )
    webhook_emit(event=f"{kind}.updated", instance=kept)
    return journal


def contact_merge(*, actor, kept: Contact, merged: Contact, fields: dict[str, str]) -> MergeJournal:
    """Fold `merged` into `kept`: for each field in `fields` ("kept" or "merged") the value kept;
    all e-mail addresses stay; every activity, task, timeline entry, appointment and opportunity
    of `merged` moves to `kept`; `merged` is deleted. Both must be in the actor's reach. Takes
    row locks on both contacts until the transaction ends. Returns the journal entry."""
    return _merge(actor=actor, kind=RecordKind.CONTACT, kept=kept, merged=merged, fields=fields)


def account_merge(*, actor, kept: Account, merged: Account, fields: dict[str, str]) -> MergeJournal:
    """Fold account `merged` into `kept`, as contact_merge does: its contacts, opportunities,
    subsidiaries, activities, tasks, appointments, timeline and partner sharing move over."""
    return _merge(actor=actor, kind=RecordKind.ACCOUNT, kept=kept, merged=merged, fields=fields)


@transaction.atomic
def merge_undo(*, actor, journal: MergeJournal) -> MergeJournal:
    """Put both records back as they were before the merge: the merged record with its original
    id and values, the rows that moved back onto it, the kept record's merged-in values reverted
    (those nobody changed since). Locks the journal row, so a double click undoes once; refuses,
    changing nothing, when already undone or when a later merge involving the kept record is
    still in place (that one must be undone first)."""
    if not access.can(actor, "records.merge"):
        raise PermissionDenied
    journal = MergeJournal.objects.select_for_update().get(pk=journal.pk)
    if journal.undone_at is not None:
        raise MergeRefused("This merge was already undone.")
    later = MergeJournal.objects.filter(
        Q(kept_id=journal.kept_id) | Q(merged_id=journal.kept_id),
        kind=journal.kind,
        undone_at__isnull=True,
        pk__gt=journal.pk,
    )
    if later.exists():
        raise MergeRefused(
            "A later merge involving this record is still in place; undo that one first."
        )
    model = MODELS[journal.kind]
    kept = reach(actor, journal.kind).select_for_update(of=("self",)).filter(pk=journal.kept_id)
    kept = kept.first()
    if kept is None:
        raise MergeRefused("The record this was merged into no longer exists.")
    snapshot = journal.snapshot
    try:
        with transaction.atomic():
            _restore_kept(kept, snapshot)
            restored = _deserialize([snapshot["merged"]])[0]
            restored.save(save_m2m=False)
            for label, ids in snapshot["moved"].items():
                app_model, field_name = label.rsplit(".", 1)
                related = apps.get_model(app_model)
                related._base_manager.filter(pk__in=ids, **{field_name: kept.pk}).update(
                    **{field_name: journal.merged_id}
                )
                _touch(related, ids, moved=field_name)
            for row in _deserialize(snapshot["dropped"]):
                row.save(save_m2m=False)
    except IntegrityError as clash:
        raise MergeRefused(
            "The merged record cannot be restored: another record now holds one of its "
            "unique values (such as its external ID)."
        ) from clash
    journal.undone_at = timezone.now()
    journal.undone_by = actor
    journal.save(update_fields=["undone_at", "undone_by"])
    merged = model._base_manager.get(pk=journal.merged_id)
    name = display_name(merged)
    for record, action in ((kept, "unmerged"), (merged, "restored")):
        AuditEntry.objects.create(
            model=model._meta.label_lower,
            object_id=record.pk,
            action=action,
            changes={"merge undone": [journal.summary, None]},
            actor=actor,
        )
    timeline_add(
        kind=TimelineEntry.Kind.RECORD,
        actor=actor,
        summary=f"{actor} undid the merge of {name}; it is a separate record again",
        **{journal.kind: kept},
    )
    webhook_emit(event=f"{journal.kind}.created", instance=merged)
    webhook_emit(event=f"{journal.kind}.updated", instance=kept)
    return journal


def _restore_kept(kept, snapshot: dict) -> None:
    """Give back the kept record the values it had before the merge, for each field the merge
    changed and nobody changed since."""
    current = _serialize([kept])[0]["fields"]
    before = _deserialize([snapshot["kept_before"]])[0].object
    restore = [
        name for name, (_, after) in snapshot["changed"].items() if current.get(name) == after
    ]
    for name in restore:
        field = kept._meta.get_field(name)
        setattr(kept, field.attname, getattr(before, field.attname))
    if restore:
        kept.save()


def merge_journal_for(user) -> QuerySet[MergeJournal]:
    """Merges whose kept record the user may see."""
    return MergeJournal.objects.filter(
        Q(kind=RecordKind.CONTACT, kept_id__in=reach(user, RecordKind.CONTACT).values("pk"))
        | Q(kind=RecordKind.ACCOUNT, kept_id__in=reach(user, RecordKind.ACCOUNT).values("pk"))
    )


def merge_journal(
    user, *, before: int | None = None, limit: int = JOURNAL_PAGE
) -> list[MergeJournal]:
    """The newest merges the user may see, `limit` at a time, older than journal id `before`."""
    entries = merge_journal_for(user).select_related("actor", "undone_by")
    if before:
        entries = entries.filter(pk__lt=before)
    return list(entries.order_by("-pk")[:limit])


def merged_away(user, kind: str, pk: int) -> MergeJournal | None:
    """The active merge that folded record `pk` into one the user may see, if any: lets a stale
    link say "already merged" instead of a bare 404."""
    return (
        merge_journal_for(user)
        .filter(kind=kind, merged_id=pk, undone_at__isnull=True)
        .order_by("-pk")
        .first()
    )
