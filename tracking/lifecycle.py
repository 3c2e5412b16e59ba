"""Life-cycle stages: where each contact stands on the way from first hearing of the tenant to
buying again, moved by what they do and by their deals, and kept in an append-only ledger
(LifecycleChange) for the life-cycle reports.

The rules, in the order a contact usually meets them:
- awareness -> education: the first filled form (the contact told us who they are).
- awareness or education -> evaluation: a pricing-page or product view, or an opportunity opened
  (or reopened) with them as its primary contact.
- purchase: the first purchase (a purchase event or a won opportunity), from any earlier stage.
- reorder: every later purchase. A purchase while already in reorder is a new reorder cycle: the
  stage stays, and the ledger gets a reorder -> reorder row, so reports count each cycle.
- A customer (purchase or reorder) with a new opportunity is evaluating again: -> evaluation.
  Website views do not move a customer back: customers read pricing pages all the time.
- Moving back: a lost opportunity, when the contact is in evaluation and is the primary contact
  of no other open opportunity, returns them to the stage they were in before evaluation if
  they had bought before (purchase or reorder), else to education (they know us; no longer
  evaluating).
- Stages never move backwards on website activity alone. A user may set any stage by hand (the
  contact form or the API); that is a change like any other, with the user as its actor.

Every change writes a LifecycleChange with its time and cause and a STAGE timeline entry, in the
transaction of what caused it. A change's time is when the cause happened (the event's time), so
a backlog rolled up late still dates its stages right.
"""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from contacts.models import Contact, LifecycleStage
from crm.bulk_insert import copy_insert
from opportunities.models import Opportunity
from tracking.models import Event, LifecycleChange, TimelineEntry

AWARENESS = LifecycleStage.AWARENESS.value
EDUCATION = LifecycleStage.EDUCATION.value
EVALUATION = LifecycleStage.EVALUATION.value
PURCHASE = LifecycleStage.PURCHASE.value
REORDER = LifecycleStage.REORDER.value
ORDER = {stage: index for index, stage in enumerate(LifecycleStage.values)}
LABELS = dict(LifecycleStage.choices)
BOUGHT = (PURCHASE, REORDER)

# What happened, as far as the rules care.
FORM, INTEREST, PURCHASED, OPENED, WON, LOST = (
    "form",
    "interest",
    "purchased",
    "opened",
    "won",
    "lost",
)


@dataclass
class Move:
    """One stage change of one contact, not yet written."""

    contact_id: int
    account_id: int | None
    from_stage: str
    to_stage: str
    at: datetime
    cause: str
    actor: object = None


def next_stage(
    stage: str, signal: str, *, bought_before: bool, stage_before_evaluation: str = ""
) -> str | None:
    """The stage a signal moves a contact in `stage` to, or None to stay. A purchase by a
    contact in reorder returns REORDER (a new cycle)."""
    if signal == FORM:
        return EDUCATION if stage == AWARENESS else None
    if signal == INTEREST:
        return EVALUATION if ORDER[stage] < ORDER[EVALUATION] else None
    if signal == OPENED:
        return EVALUATION if stage != EVALUATION else None
    if signal in (PURCHASED, WON):
        return REORDER if bought_before or stage in BOUGHT else PURCHASE
    if signal == LOST:
        if stage != EVALUATION:
            return None
        return stage_before_evaluation if stage_before_evaluation in BOUGHT else EDUCATION
    raise ValueError(signal)


def _summary(move: Move) -> str:
    if move.from_stage == move.to_stage:
        return f"Stage: a new {LABELS[move.to_stage]} cycle ({move.cause})"
    before = LABELS.get(move.from_stage, "none")
    return f"Stage: {before} → {LABELS[move.to_stage]} ({move.cause})"[:300]


def _ledger_write(moves: list[Move]) -> None:
    """The ledger rows and timeline entries of moves (COPY each)."""
    copy_insert(
        [
            LifecycleChange(
                contact_id=m.contact_id,
                from_stage=m.from_stage,
                to_stage=m.to_stage,
                at=m.at,
                cause=m.cause[:300],
                actor=m.actor,
            )
            for m in moves
        ]
    )
    copy_insert(
        [
            TimelineEntry(
                kind=TimelineEntry.Kind.STAGE,
                contact_id=m.contact_id,
                account_id=m.account_id,
                summary=_summary(m),
                actor=m.actor,
                occurred_at=m.at,
                # COPY writes every column: the database defaults are spelled out.
                session_key="",
                count=1,
            )
            for m in moves
        ]
    )


def moves_write(moves: list[Move], *, now: datetime | None = None) -> None:
    """Write stage changes: the contacts' stage (one UPDATE per target stage), the ledger and
    the timeline (COPY each). The caller has locked the contacts' rows and checked the moves
    against their stored stage."""
    if not moves:
        return
    now = now or timezone.now()
    last: dict[int, Move] = {}
    for move in sorted(moves, key=lambda m: m.at):
        last[move.contact_id] = move
    by_stage: dict[str, list[int]] = defaultdict(list)
    for move in last.values():
        by_stage[move.to_stage].append(move.contact_id)
    for stage, ids in by_stage.items():
        Contact.objects.filter(pk__in=ids).update(lifecycle_stage=stage, updated_at=now)
    _ledger_write(moves)


def _bought_before(contact_ids: Iterable[int]) -> set[int]:
    """Contacts that reached purchase or reorder at some time (they may have moved since)."""
    return set(
        LifecycleChange.objects.filter(contact_id__in=list(contact_ids), to_stage__in=BOUGHT)
        .values_list("contact_id", flat=True)
        .distinct()
    )


def _locked_stages(contact_ids: Iterable[int]) -> dict[int, tuple[str, int | None]]:
    """The contacts' stage and account, their rows locked until commit (in id order, so two
    batches cannot deadlock)."""
    return {
        pk: (stage, account_id)
        for pk, stage, account_id in Contact.objects.select_for_update(of=("self",))
        .filter(pk__in=list(contact_ids))
        .order_by("pk")
        .values_list("pk", "lifecycle_stage", "account_id")
    }


def event_signal(kind: str) -> str | None:
    """The rule signal of a scored exposure kind (see scoring.event_kind)."""
    return {
        Event.Kind.FORM.value: FORM,
        "pricing_view": INTEREST,
        Event.Kind.PRODUCT_VIEW.value: INTEREST,
        Event.Kind.PURCHASE.value: PURCHASED,
    }.get(kind)


def lifecycle_signals_apply(*, signals: list[tuple[int, str, datetime, str]]) -> list[Move]:
    """Apply (contact id, signal, time, cause) tuples, such as a drained batch of website
    events gives, in time order per contact: lock the contacts, work out the moves, write them.
    A few queries for the whole batch. Runs in the caller's transaction."""
    if not signals:
        return []
    per_contact: dict[int, list[tuple[datetime, str, str]]] = defaultdict(list)
    for contact_id, signal, at, cause in signals:
        per_contact[contact_id].append((at, signal, cause))
    stages = _locked_stages(per_contact)
    buying = [
        cid
        for cid, items in per_contact.items()
        if cid in stages
        and stages[cid][0] not in BOUGHT
        and any(signal == PURCHASED for _, signal, _ in items)
    ]
    bought = _bought_before(buying) if buying else set()
    moves = []
    for cid, items in per_contact.items():
        if cid not in stages:
            continue
        stage, account_id = stages[cid]
        for at, signal, cause in sorted(items, key=lambda item: item[0]):
            to = next_stage(stage, signal, bought_before=cid in bought)
            if to is None:
                continue
            moves.append(Move(cid, account_id, stage, to, at, cause))
            stage = to
            if to in BOUGHT:
                bought.add(cid)
    moves_write(moves)
    return moves


def _stage_before_evaluation(contact_id: int) -> str:
    entered = (
        LifecycleChange.objects.filter(contact_id=contact_id, to_stage=EVALUATION)
        .order_by("-at", "-id")
        .values_list("from_stage", flat=True)
        .first()
    )
    return entered or ""


@transaction.atomic
def lifecycle_signal(
    *, contact_id: int, signal: str, cause: str, at: datetime | None = None, actor=None
) -> Move | None:
    """Apply one signal to one contact (an opportunity opened, won or lost; a form filled);
    locks the contact's row. Returns the move, if any."""
    at = at or timezone.now()
    stages = _locked_stages([contact_id])
    if contact_id not in stages:
        return None
    stage, account_id = stages[contact_id]
    bought = (
        signal in (PURCHASED, WON) and stage not in BOUGHT and bool(_bought_before([contact_id]))
    )
    before_evaluation = _stage_before_evaluation(contact_id) if signal == LOST else ""
    to = next_stage(stage, signal, bought_before=bought, stage_before_evaluation=before_evaluation)
    if to is None:
        return None
    move = Move(contact_id, account_id, stage, to, at, cause, actor)
    moves_write([move])
    return move


def lifecycle_opportunity_changed(*, opportunity, change: str, actor=None) -> Move | None:
    """An opportunity was opened (created or reopened), won or lost: move its primary contact
    by the rules. A lost one moves the contact back only if they are the primary contact of
    no other open opportunity. Runs in the opportunity service's transaction."""
    if opportunity.primary_contact_id is None:
        return None
    if change == LOST:
        still_open = (
            Opportunity.objects.filter(
                primary_contact_id=opportunity.primary_contact_id, closed_at__isnull=True
            )
            .exclude(pk=opportunity.pk)
            .exists()
        )
        if still_open:
            return None
    verb = {OPENED: "opened", WON: "won", LOST: "lost"}[change]
    return lifecycle_signal(
        contact_id=opportunity.primary_contact_id,
        signal=change,
        cause=f"Opportunity {opportunity.name} {verb}",
        actor=actor,
    )


def lifecycle_manual_changes(*, changes: list[tuple[Contact, str, str]], actor) -> None:
    """Record stage changes a user made by hand (the contact form, the API, an import):
    (contact, from stage, to stage) each, already saved on the contact. Runs in the caller's
    transaction."""
    now = timezone.now()
    by = f"Set by {actor}" if actor else "Set by hand"
    moves = [
        Move(contact.pk, contact.account_id, before, after, now, by, actor)
        for contact, before, after in changes
        if before != after
    ]
    _ledger_write(moves)


def stage_history(contact) -> list[LifecycleChange]:
    """The contact's stage changes, oldest first, for the 360-degree page."""
    return list(
        LifecycleChange.objects.filter(contact=contact).select_related("actor").order_by("at", "id")
    )
