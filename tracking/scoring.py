"""The engagement score with decay, and the threshold of acceptance.

Each exposure (a page view, a form, an e-mail click...) adds the tenant's weight for its kind, and
the score halves every half-life without new exposure. Nothing decays in the database: a contact's
Engagement row keeps the value at one moment (`at`), and the score at any time t is
value * 2 ** (-(t - at) / half-life), exact at read time without a nightly job.

`rank` = ln(value) + at * ln 2 / half-life (at in epoch seconds) is the logarithm of the score
scaled to a common moment, so ordering by rank is ordering by the score now, and "score above X
at time t" is "rank > ln X + t * ln 2 / half-life": a range scan of the rank index.

Crossing the threshold makes a contact sales-ready once: it cannot cross again until the score has
fallen below threshold * rearm_below (hysteresis) and cooldown_days have passed since the last
crossing. The decayed score is lowest just before an exposure, so checking the re-arm level then
sees every fall below it.
"""

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.urls import reverse
from django.utils import timezone

from contacts.models import Contact, Task
from crm.tenants.models import Tenant
from crm.tenants.selectors import tenant_url
from integrations.models import WebhookEvent
from integrations.webhooks import webhook_emit
from tracking import lifecycle
from tracking.models import Engagement, Event, ScoreChange, TimelineEntry, TrackingSettings
from tracking.selectors import tracking_settings
from tracking.services import audited_update, timeline_add

LN2 = math.log(2)
DAY = 86400.0


@dataclass(frozen=True)
class Scale:
    """The tenant's scoring settings, in the units the arithmetic wants."""

    weights: dict[str, float]
    pricing_path: str
    half_life: float  # seconds
    threshold: float
    rearm_level: float
    cooldown: timedelta

    @classmethod
    def of(cls, settings: TrackingSettings) -> "Scale":
        return cls(
            weights={key: float(value) for key, value in settings.weights.items()},
            pricing_path=settings.pricing_path,
            half_life=settings.half_life_days * DAY,
            threshold=settings.threshold,
            rearm_level=settings.threshold * settings.rearm_below,
            cooldown=timedelta(days=settings.cooldown_days),
        )

    def decay(self, seconds: float) -> float:
        """The factor a score is multiplied by over `seconds` (negative: grows back)."""
        return 2.0 ** (-seconds / self.half_life)

    def value_at(self, value: float, at: datetime, when: datetime) -> float:
        return value * self.decay((when - at).total_seconds())

    def rank(self, value: float, at: datetime) -> float:
        if value <= 0:
            return float("-inf")
        return math.log(value) + at.timestamp() * LN2 / self.half_life

    def rank_floor(self, score: float, when: datetime) -> float:
        """The rank above which a contact's score at `when` is above `score`."""
        if score <= 0:
            return float("-inf")
        return math.log(score) + when.timestamp() * LN2 / self.half_life


def url_path(url: str) -> str:
    """The path of an absolute or relative URL, without query or fragment. String operations
    rather than urlsplit: the drain reads this for every page view of a batch."""
    scheme = url.find("://")
    if scheme >= 0:
        slash = url.find("/", scheme + 3)
        url = url[slash:] if slash >= 0 else "/"
    for mark in "?#":
        cut = url.find(mark)
        if cut >= 0:
            url = url[:cut]
    return url[:200] or "/"


def event_kind(event: Event, scale: Scale, path: str) -> str:
    """The weight key of an event: a page view of the pricing path is a pricing view."""
    if event.kind == Event.Kind.PAGE_VIEW and scale.pricing_path and scale.pricing_path in path:
        return "pricing_view"
    return event.kind


def event_reason(event: Event, kind: str, path: str) -> str:
    """What the contact did, in words for the salesperson (`path`: the event URL's path)."""
    if kind in ("page_view", "pricing_view"):
        return f"Viewed {path}"
    props = event.properties if isinstance(event.properties, dict) else {}
    if kind == "product_view":
        label = props.get("name") or props.get("sku") or path
        return f"Viewed product {label}"
    if kind == "purchase":
        amount = props.get("amount")
        currency = props.get("currency") or ""
        order = props.get("order_id")
        text = "Bought"
        if order:
            text += f" order {order}"
        if amount not in (None, ""):
            text += f" ({amount} {currency})".replace(" )", ")")
        return text
    if kind == "form":
        label = props.get("form_name") or props.get("form") or props.get("form_id") or "a form"
        return f"Filled form '{label}'" if label != "a form" else "Filled a form"
    if kind == "email_open":
        campaign = props.get("campaign")
        return f"Opened the '{campaign}' e-mail" if campaign else "Opened an e-mail"
    if kind == "email_click":
        label = props.get("link") or props.get("campaign") or path
        return f"Clicked '{label}' link"
    if kind == "meeting":
        return f"Meeting: {props.get('subject') or event.title or event.name or 'held'}"
    return f"Did {event.name or 'a website action'}"


@dataclass
class Exposure:
    """One scored thing a contact did: its weight key, points, when, and why."""

    contact_id: int
    kind: str
    points: float
    at: datetime
    reason: str
    event_id: object = None


@dataclass
class Crossing:
    """A contact became sales-ready at `at` with `score`; `engagement` is their row."""

    engagement: Engagement
    at: datetime
    score: float


def _locked_engagements(contact_ids: list[int], first_at: dict[int, datetime]) -> dict:
    """The contacts' Engagement rows, locked until commit; missing ones are created first (two
    workers creating the same row at once leave one, which both then lock in turn). Locks are
    taken in contact order so that concurrent batches cannot deadlock."""
    rows = {
        row.contact_id: row
        for row in Engagement.objects.select_for_update()
        .filter(contact_id__in=contact_ids)
        .order_by("contact_id")
    }
    missing = [cid for cid in contact_ids if cid not in rows]
    if missing:
        Engagement.objects.bulk_create(
            [Engagement(contact_id=cid, value=0, at=first_at[cid]) for cid in missing],
            ignore_conflicts=True,
        )
        rows.update(
            (row.contact_id, row)
            for row in Engagement.objects.select_for_update()
            .filter(contact_id__in=missing)
            .order_by("contact_id")
        )
    return rows


def _apply(row: Engagement, exposure: Exposure, scale: Scale, now: datetime) -> bool:
    """Add one exposure to a row (in memory); True when it made the contact sales-ready."""
    if exposure.at >= row.at:
        before = scale.value_at(row.value, row.at, exposure.at)
        row.value = before + exposure.points
        row.at = exposure.at
    else:
        # Arrived late: its points, decayed to the row's moment, join the stored value.
        before = row.value
        row.value += exposure.points * scale.decay((row.at - exposure.at).total_seconds())
    if row.sales_ready and before < scale.rearm_level:
        row.sales_ready = False
        row.ready_since = None
    if row.sales_ready or row.value < scale.threshold:
        return False
    if row.last_crossed_at is not None and exposure.at - row.last_crossed_at < scale.cooldown:
        return False
    # A backlog replayed long after (a visitor identified today, with last month's visits)
    # crosses only if the score is still over the threshold now.
    if scale.value_at(row.value, row.at, max(now, row.at)) < scale.threshold:
        return False
    row.sales_ready = True
    row.ready_since = exposure.at
    row.last_crossed_at = exposure.at
    return True


def score_exposures(
    *, exposures: list[Exposure], settings: TrackingSettings | None = None, now=None
) -> list[Crossing]:
    """Add exposures to their contacts' scores, in a few queries for any number of contacts:
    lock the Engagement rows, compute in Python, write them back with one statement, and copy
    in one ScoreChange per exposure. Returns the crossings; the caller notifies (see
    `crossings_notify`). Runs in the caller's transaction and holds the rows' locks until it
    commits."""
    if not exposures:
        return []
    settings = settings or tracking_settings()
    scale = Scale.of(settings)
    now = now or timezone.now()
    by_contact: dict[int, list[Exposure]] = defaultdict(list)
    for exposure in exposures:
        by_contact[exposure.contact_id].append(exposure)
    first_at = {cid: min(e.at for e in items) for cid, items in by_contact.items()}
    rows = _locked_engagements(sorted(by_contact), first_at)
    changes: list[tuple] = []
    crossings: list[Crossing] = []
    for cid, items in by_contact.items():
        row = rows[cid]
        crossing = None
        for exposure in sorted(items, key=lambda e: e.at):
            crossed = _apply(row, exposure, scale, now)
            changes.append(
                (
                    cid,
                    exposure.event_id,
                    exposure.kind,
                    exposure.reason[:300],
                    exposure.points,
                    exposure.at,
                    # The score just after: at the row's moment when the exposure came late.
                    scale.value_at(row.value, row.at, max(row.at, exposure.at)),
                )
            )
            if crossed:
                crossing = Crossing(engagement=row, at=exposure.at, score=row.value)
        row.rank = scale.rank(row.value, row.at)
        if crossing is not None:
            crossings.append(crossing)
    _engagements_write(list(rows.values()))
    _score_changes_copy(changes)
    return crossings


def _engagements_write(rows: list[Engagement]) -> None:
    """Write the locked rows back in one UPDATE joined to arrays of the new values (Django's
    bulk_update would write a CASE per column, evaluated for every row)."""
    table = connection.ops.quote_name(Engagement._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} AS e SET value = s.value, at = s.at, rank = s.rank, "
            "sales_ready = s.sales_ready, ready_since = s.ready_since, "
            "last_crossed_at = s.last_crossed_at "
            "FROM unnest(%s::bigint[], %s::float8[], %s::timestamptz[], %s::float8[], "
            "%s::boolean[], %s::timestamptz[], %s::timestamptz[]) "
            "AS s(contact_id, value, at, rank, sales_ready, ready_since, last_crossed_at) "
            "WHERE e.contact_id = s.contact_id",
            [
                [row.contact_id for row in rows],
                [row.value for row in rows],
                [row.at for row in rows],
                [row.rank for row in rows],
                [row.sales_ready for row in rows],
                [row.ready_since for row in rows],
                [row.last_crossed_at for row in rows],
            ],
        )


SCORE_CHANGE_COLUMNS = ("contact_id", "event_id", "kind", "reason", "points", "at", "score")


def _score_changes_copy(changes: list[tuple]) -> None:
    """COPY score changes given as tuples in SCORE_CHANGE_COLUMNS order (ids from the
    sequence's default): no model instance per row, as the drain writes one per event."""
    if not changes:
        return
    quote = connection.ops.quote_name
    columns = ", ".join(quote(name) for name in SCORE_CHANGE_COLUMNS)
    table = quote(ScoreChange._meta.db_table)
    with (
        connection.cursor() as cursor,
        cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy,
    ):
        for change in changes:
            copy.write_row(change)


def events_read(events: Iterable[Event], scale: Scale) -> tuple[list[Exposure], list[tuple]]:
    """What a batch of events means, in one pass: the scored exposures (kinds weighted above
    0) and the life-cycle signals (contact id, signal, time, cause)."""
    exposures, signals = [], []
    weights = scale.weights
    for event in events:
        if event.contact_id is None:
            continue
        path = url_path(event.url) if event.url else "/"
        kind = event_kind(event, scale, path)
        points = weights.get(kind, 0.0)
        signal = lifecycle.event_signal(kind)
        if points <= 0 and signal is None:
            continue
        reason = event_reason(event, kind, path)
        if points > 0:
            exposures.append(
                Exposure(event.contact_id, kind, points, event.occurred_at, reason, event.pk)
            )
        if signal is not None:
            signals.append((event.contact_id, signal, event.occurred_at, reason))
    return exposures, signals


def score_events(*, events: Iterable[Event], now=None) -> list[Crossing]:
    """Score a batch of events that carry their contact and have been rolled up (once) by the
    caller, and move the contacts' life-cycle stages, in the caller's transaction: the drain
    calls this per batch. Events without a contact add nothing; a kind weighted 0 adds no
    points but still counts for the stage (a purchase is a purchase). Crossings of the
    threshold get their action item, timeline entry and e-mail (sent after commit)."""
    settings = tracking_settings()
    scale = Scale.of(settings)
    exposures, signals = events_read(events, scale)
    crossings = score_exposures(exposures=exposures, settings=settings, now=now)
    lifecycle.lifecycle_signals_apply(signals=signals)
    crossings_notify(crossings=crossings, settings=settings)
    return crossings


def score_now(engagement: Engagement | None, at=None, settings=None) -> float:
    """A contact's score at `at` (default now), from its stored value and moment."""
    if engagement is None:
        return 0.0
    scale = Scale.of(settings or tracking_settings())
    return scale.value_at(engagement.value, engagement.at, at or timezone.now())


def is_ready(engagement: Engagement | None, *, scale: Scale, at=None) -> bool:
    """Sales-ready as shown now: flagged at a crossing, and not yet fallen below the re-arm
    level (the flag itself is cleared at the next exposure)."""
    if engagement is None or not engagement.sales_ready:
        return False
    return scale.value_at(engagement.value, engagement.at, at or timezone.now()) >= (
        scale.rearm_level
    )


@transaction.atomic
def exposure_record(
    *, contact, kind: str, reason: str, occurred_at=None, event=None
) -> list[Crossing]:
    """Score one exposure recorded by another app (an e-mail open or click, a meeting, a form
    submission) and apply its life-cycle rule, in the caller's transaction. `kind` is a weight
    key (see TrackingSettings.weights)."""
    settings = tracking_settings()
    at = occurred_at or timezone.now()
    points = float(settings.weights.get(kind, 0))
    crossings = []
    if points > 0:
        crossings = score_exposures(
            exposures=[
                Exposure(
                    contact_id=contact.pk,
                    kind=kind,
                    points=points,
                    at=at,
                    reason=reason,
                    event_id=event.pk if event is not None else None,
                )
            ],
            settings=settings,
        )
    signal = lifecycle.event_signal(kind)
    if signal is not None:
        lifecycle.lifecycle_signals_apply(signals=[(contact.pk, signal, at, reason)])
    crossings_notify(crossings=crossings, settings=settings)
    return crossings


# --- the tenant's scoring settings ------------------------------------------------------------


def engagement_ranks_rebuild(*, half_life_days: float) -> int:
    """Recompute every contact's rank for a new half-life, in one statement. The rank is
    ln(value) + at * ln 2 / half-life, so it depends on the half-life; the stored value and
    moment do not, and the scores themselves stay exact."""
    table = connection.ops.quote_name(Engagement._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET rank = CASE WHEN value > 0 "
            "THEN ln(value) + EXTRACT(EPOCH FROM at) * %s / %s "
            "ELSE '-Infinity'::float8 END",
            [math.log(2), half_life_days * DAY],
        )
        return cursor.rowcount


@transaction.atomic
def scoring_settings_update(*, actor, **fields) -> TrackingSettings:
    """Save new settings (validated by the caller's form, checked again by the model). A new
    half-life rebuilds the ranks in the same transaction, so the ready-to-talk list and the
    score conditions of segments never see ranks of two half-lives at once."""
    settings = TrackingSettings.objects.select_for_update().get(pk=tracking_settings().pk)
    before = settings.half_life_days
    audited_update(actor=actor, instance=settings, fields=fields)
    if settings.half_life_days != before:
        engagement_ranks_rebuild(half_life_days=settings.half_life_days)
    return settings


# --- the threshold of acceptance: telling the owner ---------------------------------------------


@dataclass(frozen=True)
class Reason:
    """What moved a score: one kind of exposure with the same description, summed."""

    kind: str
    reason: str
    count: int
    points: float  # what it still counts for at the moment asked about


def reasons_at(
    changes: Iterable[ScoreChange], *, scale: Scale, at: datetime, limit: int | None = None
) -> list[Reason]:
    """The score's breakdown at `at`: each reason's points decayed to `at`, largest first."""
    totals: dict[tuple[str, str], list] = {}
    for change in changes:
        if change.at > at:
            continue
        entry = totals.setdefault((change.kind, change.reason), [0, 0.0])
        entry[0] += 1
        entry[1] += change.points * scale.decay((at - change.at).total_seconds())
    found = [Reason(kind, reason, n, points) for (kind, reason), (n, points) in totals.items()]
    found.sort(key=lambda r: (-r.points, r.reason))
    return found[:limit] if limit else found


def fit_grade(contact, ideal: dict) -> str:
    """A-D by the share of the ideal customer's fields the contact (or its account) matches;
    blank when the tenant has not described its ideal customer. Kept apart from the score:
    a perfect fit may not be interested yet, and an eager visitor may be a poor fit."""
    checks = []
    account = contact.account

    def among(values, *candidates) -> bool:
        wanted = {str(v).strip().lower() for v in values}
        return any((c or "").strip().lower() in wanted for c in candidates if c)

    for name in ("industry", "territory", "customer_type"):
        values = ideal.get(name) or []
        if not values:
            continue
        own = getattr(contact, name, "") if name != "industry" else ""
        theirs = getattr(account, name, "") if account is not None else ""
        checks.append(among(values, own, theirs))
    sizes = ideal.get("size") or []
    if sizes:
        employees = account.employees if account is not None else None
        checks.append(employees is not None and any(size_holds(s, employees) for s in sizes))
    if not checks:
        return ""
    share = sum(checks) / len(checks)
    if share == 1:
        return "A"
    if share >= 0.5:
        return "B"
    return "C" if share > 0 else "D"


def size_holds(size: str, employees: int) -> bool:
    """Whether a company size band ("11-50", "1000+", "200") holds a number of employees."""
    text = str(size).replace(" ", "")
    if text.endswith("+") and text[:-1].isdigit():
        return employees >= int(text[:-1])
    low, _, high = text.partition("-")
    if low.isdigit() and high.isdigit():
        return int(low) <= employees <= int(high)
    return text.isdigit() and employees == int(text)


@dataclass
class Notice:
    """What the owner is told about a crossing."""

    crossing: Crossing
    contact: object
    reasons: list[Reason]

    @property
    def reason_lines(self) -> str:
        return "\n".join(
            f"- {r.reason}" + (f" ({r.count}x)" if r.count > 1 else "") + f": {r.points:+.1f}"
            for r in self.reasons
        )


def crossings_notify(*, crossings: list[Crossing], settings: TrackingSettings) -> None:
    """For each crossing: the fit grade, a SCORE timeline entry with the reasons, an action item
    for the owner and an e-mail to them after commit. Crossings are rare (once per contact per
    cooldown), so a few queries each are fine. Runs in the scoring transaction."""
    if not crossings:
        return

    scale = Scale.of(settings)
    ids = [c.engagement.contact_id for c in crossings]
    contacts = Contact.objects.select_related("owner", "account").in_bulk(ids)
    window = min(c.at for c in crossings) - timedelta(seconds=4 * scale.half_life)
    changes: dict[int, list[ScoreChange]] = defaultdict(list)
    for change in ScoreChange.objects.filter(contact_id__in=ids, at__gte=window):
        changes[change.contact_id].append(change)
    notices = []
    for crossing in crossings:
        contact = contacts.get(crossing.engagement.contact_id)
        if contact is None:
            continue
        grade = fit_grade(contact, settings.ideal_customer or {})
        Engagement.objects.filter(pk=contact.pk).update(fit_grade=grade)
        notice = Notice(
            crossing=crossing,
            contact=contact,
            reasons=reasons_at(changes[contact.pk], scale=scale, at=crossing.at, limit=5),
        )
        summary = (
            f"Sales-ready: engagement score {crossing.score:.0f} reached the threshold "
            f"{settings.threshold:g}"
        )
        timeline_add(
            kind=TimelineEntry.Kind.SCORE,
            summary=summary,
            detail=notice.reason_lines,
            contact=contact,
            occurred_at=crossing.at,
        )
        webhook_emit(
            event=WebhookEvent.CONTACT_SALES_READY,
            instance=contact,
            extra={
                "sales_ready": _crossing_data(notice, threshold=settings.threshold, grade=grade)
            },
        )
        if contact.owner is not None and contact.owner.is_active:
            # Made by the CRM itself (no user): the SCORE entry above is its timeline line.
            Task.objects.create(
                assignee=contact.owner,
                title=f"Talk to {contact.full_name}: ready to talk (score {crossing.score:.0f})",
                notes="What moved the score:\n" + notice.reason_lines,
                due_on=timezone.localdate(),
                priority=Task.Priority.HIGH,
                contact=contact,
                account=contact.account,
            )
            notices.append(notice)
    if notices:
        messages = [_owner_message(notice) for notice in notices]
        transaction.on_commit(lambda: _queue(messages), robust=True)


def _crossing_data(notice: Notice, threshold: float, grade: str) -> dict:
    """What a `contact.sales_ready` webhook says beyond the contact itself."""
    return {
        "at": notice.crossing.at,
        "score": round(notice.crossing.score, 1),
        "threshold": threshold,
        "fit_grade": grade,
        "reasons": [
            {"reason": r.reason, "count": r.count, "points": round(r.points, 1)}
            for r in notice.reasons
        ],
    }


def _owner_message(notice: Notice) -> dict:

    contact = notice.contact
    tenant = Tenant.objects.get(schema_name=connection.schema_name)
    link = tenant_url(tenant, reverse("contacts:contact_detail", args=[contact.pk]))
    body = (
        f"{contact.full_name}"
        + (f" ({contact.account})" if contact.account else "")
        + f" is ready to talk: their engagement score reached {notice.crossing.score:.0f}.\n\n"
        + "What moved the score:\n"
        + notice.reason_lines
        + f"\n\nTheir page: {link}\n"
    )
    return {
        "subject": f"Ready to talk: {contact.full_name}",
        "body": body,
        "to": contact.owner.email,
    }


def _queue(messages: list[dict]) -> None:
    """Each owner's e-mail goes out in a task of its own (tracking.tasks.ready_notice_send),
    so that a slow or failing mail server holds up neither the drain nor the request that
    scored, and a failed send is tried again."""
    from tracking.tasks import ready_notice_send

    for message in messages:
        ready_notice_send.delay(**message)
