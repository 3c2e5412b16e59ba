"""Reads for the engagement score: the ready-to-talk list, and the score, its history and
reasons, what the contact viewed, clicked and bought, and the stage history for the 360-degree
page. All of them run in the current tenant's schema."""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Q
from django.utils import timezone

from crm import access
from tracking import lifecycle
from tracking.models import Engagement, LifecycleChange, ScoreChange, TimelineEntry
from tracking.scoring import Reason, Scale, fit_grade, is_ready, reasons_at, tracking_settings

READY_PAGE = 50
HISTORY_LIMIT = 500
SPARK_WIDTH, SPARK_HEIGHT, SPARK_SAMPLES = 240, 48, 60


@dataclass(frozen=True)
class ReadyRow:
    engagement: Engagement
    score: float
    fit_grade: str

    @property
    def contact(self):
        return self.engagement.contact


@dataclass(frozen=True)
class ReadyPage:
    rows: list[ReadyRow]
    next_cursor: str


def _cursor_read(cursor: str) -> tuple[float, int] | None:
    rank, _, pk = cursor.partition("_")
    try:
        return float(rank), int(pk)
    except ValueError:
        return None


def ready_page(user, *, now: datetime | None = None, cursor: str = "") -> ReadyPage:
    """The user's sales-ready contacts, highest score now first, a page at a time: a walk down
    the partial rank index of sales-ready rows. A contact whose score has decayed below the
    re-arm level is no longer ready (its flag is cleared at its next exposure) and is left
    out here already. `cursor` is the previous page's `next_cursor` (rank and contact id)."""
    now = now or timezone.now()
    settings = tracking_settings()
    scale = Scale.of(settings)
    rows = access.engagements_for(user).filter(
        sales_ready=True, rank__gte=scale.rank_floor(scale.rearm_level, now)
    )
    after = _cursor_read(cursor) if cursor else None
    if after is not None:
        rows = rows.filter(Q(rank__lt=after[0]) | Q(rank=after[0], contact_id__gt=after[1]))
    found = list(
        rows.select_related("contact__account", "contact__owner").order_by("-rank", "contact_id")[
            : READY_PAGE + 1
        ]
    )
    ideal = settings.ideal_customer or {}
    page = [
        ReadyRow(
            engagement=row,
            score=scale.value_at(row.value, row.at, now),
            fit_grade=fit_grade(row.contact, ideal),
        )
        for row in found[:READY_PAGE]
    ]
    last = found[READY_PAGE - 1] if len(found) > READY_PAGE else None
    return ReadyPage(
        rows=page, next_cursor=f"{last.rank!r}_{last.contact_id}" if last is not None else ""
    )


# --- the 360-degree page ----------------------------------------------------------------------


@dataclass(frozen=True)
class Sparkline:
    """The score's history as an inline SVG polyline (server-rendered, no chart library)."""

    points: str
    threshold_y: float | None
    width: int = SPARK_WIDTH
    height: int = SPARK_HEIGHT
    peak: float = 0.0
    since: datetime | None = None


def history(changes: list[ScoreChange], *, scale: Scale, start_value: float, start, now):
    """(time, score) along the history: at each change (the peak it made) and at evenly spaced
    moments in between (the decay), recomputed exactly from the changes' points."""
    if start is None:
        return []
    span = max((now - start).total_seconds(), 1.0)
    ticks = [start + timedelta(seconds=span * i / SPARK_SAMPLES) for i in range(SPARK_SAMPLES + 1)]
    moments = sorted([(t, None) for t in ticks] + [(c.at, c) for c in changes], key=lambda m: m[0])
    value, at, out = start_value, start, []
    for moment, change in moments:
        value = scale.value_at(value, at, moment)
        at = moment
        if change is not None:
            value += change.points
        out.append((moment, value))
    return out


def sparkline(series: list[tuple[datetime, float]], *, threshold: float) -> Sparkline | None:
    if len(series) < 2:
        return None
    first, last = series[0][0], series[-1][0]
    span = max((last - first).total_seconds(), 1.0)
    peak = max(max(v for _, v in series), 1.0)
    top = max(peak, threshold) * 1.1

    def y(value: float) -> float:
        return round(SPARK_HEIGHT - value / top * SPARK_HEIGHT, 1)

    points = " ".join(
        f"{round((t - first).total_seconds() / span * SPARK_WIDTH, 1)},{y(v)}" for t, v in series
    )
    return Sparkline(points=points, threshold_y=y(threshold), peak=peak, since=first)


@dataclass(frozen=True)
class KindShare:
    kind: str
    label: str
    points: float
    count: int


KIND_LABELS = {
    "page_view": "Page views",
    "pricing_view": "Pricing page views",
    "product_view": "Product views",
    "purchase": "Purchases",
    "form": "Forms",
    "email_open": "E-mail opens",
    "email_click": "E-mail clicks",
    "meeting": "Meetings",
    "custom": "Website events",
}


@dataclass
class EngagementPanel:
    """Everything the 360-degree page shows about a contact's engagement."""

    score: float
    threshold: float
    ready: bool
    ready_since: datetime | None
    fit_grade: str
    half_life_days: float
    sparkline: Sparkline | None
    by_kind: list[KindShare]
    reasons: list[Reason]
    viewed: list[TimelineEntry] = field(default_factory=list)
    clicked: list[TimelineEntry] = field(default_factory=list)
    bought: list[TimelineEntry] = field(default_factory=list)
    stages: list[LifecycleChange] = field(default_factory=list)


def _entries(contact, kinds: list[str], limit: int = 10) -> list[TimelineEntry]:
    return list(
        TimelineEntry.objects.filter(contact=contact, kind__in=kinds).order_by(
            "-occurred_at", "-id"
        )[:limit]
    )


def engagement_panel(contact, *, now: datetime | None = None) -> EngagementPanel:
    """The contact's engagement for the 360-degree page. The history reads the newest
    HISTORY_LIMIT score changes; the score before the oldest of them is worked back from the
    stored score, so the curve is exact however long the history."""
    now = now or timezone.now()
    settings = tracking_settings()
    scale = Scale.of(settings)
    engagement = Engagement.objects.filter(contact=contact).first()
    score = scale.value_at(engagement.value, engagement.at, now) if engagement else 0.0
    changes = list(
        ScoreChange.objects.filter(contact=contact, at__lte=now).order_by("-at", "-id")[
            :HISTORY_LIMIT
        ]
    )
    changes.reverse()
    start = changes[0].at if changes else None
    # The score just before the oldest change read: what the stored score does not owe to the
    # changes read, carried back to that moment.
    later = sum(c.points * scale.decay((now - c.at).total_seconds()) for c in changes)
    start_value = (
        max(score - later, 0.0) / scale.decay((now - start).total_seconds()) if start else 0.0
    )
    if start_value < 1e-6:
        start_value = 0.0
    series = history(changes, scale=scale, start_value=start_value, start=start, now=now)
    reasons = reasons_at(changes, scale=scale, at=now)
    shares: dict[str, list] = {}
    for reason in reasons:
        entry = shares.setdefault(reason.kind, [0.0, 0])
        entry[0] += reason.points
        entry[1] += reason.count
    by_kind = sorted(
        (
            KindShare(kind, KIND_LABELS.get(kind, kind), points, count)
            for kind, (points, count) in shares.items()
        ),
        key=lambda share: -share.points,
    )
    kinds = TimelineEntry.Kind
    return EngagementPanel(
        score=score,
        threshold=settings.threshold,
        ready=is_ready(engagement, scale=scale, at=now),
        ready_since=engagement.ready_since if engagement else None,
        fit_grade=fit_grade(contact, settings.ideal_customer or {}),
        half_life_days=settings.half_life_days,
        sparkline=sparkline(series, threshold=settings.threshold),
        by_kind=by_kind,
        reasons=reasons[:10],
        viewed=_entries(contact, [kinds.PAGE_VIEW, kinds.PRODUCT_VIEW]),
        clicked=_entries(contact, [kinds.EMAIL_CLICK]),
        bought=_entries(contact, [kinds.PURCHASE]),
        stages=lifecycle.stage_history(contact),
    )
