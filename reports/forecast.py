"""The sales forecast, its history, and pipeline movement: the queries behind the forecast and
pipeline-movement pages, their drill-downs, and the weekly snapshot.

Which opportunities count, for a calendar period [start, end) and a scope (the whole tenant, a
team, a territory or one salesperson, always within what the user may see, that is
`crm.access.opportunities_for`):

- **Open** deals (their stage neither won nor lost) whose expected close date is in the period.
  Each counts in exactly one of
    * commit: forecast category "commit";
    * best case: forecast category "best case";
    * pipeline: any other category ("pipeline", or "closed" left on a deal that was reopened).
  The **weighted** amount is the sum, over all of them, of amount times the stage's probability.
- **Closed won**: deals in a won stage that were closed (`closed_at`) in the period, whatever
  their expected close date said.
Lost deals, and open deals without an expected close date, count in none of them. Amounts are
summed as entered, whatever their currency.

A team is the owners who are its members; a territory is the account's (matched whatever the
case); "no owner" is the deals nobody owns (admins only see those).

Pipeline movement in a period (a deal may count in several rows):
- **entered**: created in the period;
- **advanced**: moved to a later open stage of its pipeline in the period (the stage history);
- **slipped**: its expected close date was pushed later in the period (the audit trail records
  every change of it, `tracking.models.AuditEntry`);
- **won** / **lost**: closed in the period in a won / lost stage.

Every number has a drill-down listing exactly the opportunities it sums: both come from the
same filter, `measure_opportunities`.
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import ROUND_HALF_UP, Decimal

from django.db import connection, transaction
from django.db.models import (
    Count,
    DecimalField,
    ExpressionWrapper,
    F,
    Q,
    QuerySet,
    Sum,
)
from django.db.models.fields.json import KT
from django.db.models.functions import Trunc
from django.utils import timezone

from crm import access
from crm.users.models import User
from opportunities.models import ForecastCategory, Opportunity, StageChange
from reports.filters import Period, period_of
from reports.models import ForecastSnapshot, MovementCell, Quota
from tracking.models import AuditEntry

ZERO = Decimal("0")


def cents(amount: Decimal) -> Decimal:
    """An amount rounded to the cent as the pages round it (half up). Weighted amounts are
    summed exactly and rounded only here, so a total is the rounded sum of its rows' exact
    values, as the drill-down's is."""
    return amount.quantize(Decimal("0.01"), ROUND_HALF_UP)


def _tenths(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.1"), ROUND_HALF_UP)


NO_OWNER = "none"

FORECAST_MEASURES = {
    "pipeline": "Pipeline",
    "best_case": "Best case",
    "commit": "Commit",
    "weighted": "Weighted",
    "closed_won": "Closed won",
}
MOVEMENT_MEASURES = dict(MovementCell.Measure.choices)
MEASURES = {**FORECAST_MEASURES, **MOVEMENT_MEASURES}

WEIGHTED = ExpressionWrapper(
    F("amount") * F("stage__probability") / 100,
    output_field=DecimalField(max_digits=20, decimal_places=4),
)


# --- periods in URLs --------------------------------------------------------------------------


def period_key(period: Period) -> str:
    """How a period is written in a URL: 2026 (year), 2026-Q2 (quarter), 2026-04 (month)."""
    if period.kind == "year":
        return str(period.start.year)
    if period.kind == "quarter":
        return f"{period.start.year}-Q{(period.start.month - 1) // 3 + 1}"
    return f"{period.start.year}-{period.start.month:02d}"


def period_from_key(key: str) -> Period:
    """The period a key names (see `period_key`); ValueError for anything else."""
    year, _, part = key.partition("-")
    if not part:
        return period_of("year", date(int(year), 1, 1))
    if part[:1].upper() == "Q" and part[1:] in ("1", "2", "3", "4"):
        return period_of("quarter", date(int(year), (int(part[1:]) - 1) * 3 + 1, 1))
    if len(part) == 2:
        return period_of("month", date(int(year), int(part), 1))
    raise ValueError(key)


def period_choices(today: date, *, years_back: int = 3) -> list:
    """The periods a user can choose, grouped by kind: from `years_back` years ago to next
    year."""
    years = range(today.year - years_back, today.year + 2)
    quarters = [period_of("quarter", date(y, m, 1)) for y in years for m in (1, 4, 7, 10)]
    months = [period_of("month", date(y, m, 1)) for y in years for m in range(1, 13)]
    return [
        ("Quarters", [(period_key(p), p.label) for p in quarters]),
        ("Months", [(period_key(p), p.label) for p in months]),
        ("Years", [(str(y), str(y)) for y in years]),
    ]


def day_start(day: date) -> datetime:
    """The start of a day in the site's time zone: periods are calendar days there."""
    return datetime.combine(day, time.min, tzinfo=timezone.get_current_timezone())


# --- scope ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scope:
    """Whose deals a report is about, within what the user may see."""

    team_id: int | None = None
    territory: str = ""
    # A user's pk, NO_OWNER, or "" for everyone.
    owner: str = ""

    @property
    def by_territory(self) -> bool:
        return bool(self.territory)


def scoped_opportunities(user, scope: Scope) -> QuerySet[Opportunity]:
    return _narrowed(access.opportunities_for(user), scope)


def _narrowed(queryset: QuerySet, scope: Scope, owner_field: str = "owner") -> QuerySet:
    if scope.team_id:
        queryset = queryset.filter(**{f"{owner_field}__team_id": scope.team_id})
    if scope.territory:
        queryset = queryset.filter(account__territory__iexact=scope.territory)
    if scope.owner == NO_OWNER:
        queryset = queryset.filter(**{f"{owner_field}__isnull": True})
    elif scope.owner:
        queryset = queryset.filter(**{f"{owner_field}_id": int(scope.owner)})
    return queryset


# --- which opportunities a number sums ----------------------------------------------------------


def _open_in(period: Period) -> Q:
    return Q(
        expected_close__gte=period.start,
        expected_close__lt=period.end,
        stage__is_won=False,
        stage__is_lost=False,
    )


def _closed_in(period: Period, *, won: bool) -> Q:
    closed = Q(closed_at__gte=day_start(period.start), closed_at__lt=day_start(period.end))
    return closed & (Q(stage__is_won=True) if won else Q(stage__is_lost=True))


def _advanced_in(period: Period) -> Q:
    moves = StageChange.objects.filter(
        changed_at__gte=day_start(period.start),
        changed_at__lt=day_start(period.end),
        from_stage__isnull=False,
        to_stage__position__gt=F("from_stage__position"),
        to_stage__is_won=False,
        to_stage__is_lost=False,
    )
    return Q(pk__in=moves.values("opportunity_id"))


def _slipped_in(period: Period) -> Q:
    # ISO dates compare as text; a date set where there was none, or taken away, is no slip
    # (one side is null and the comparison is not true).
    pushes = (
        AuditEntry.objects.filter(
            model=Opportunity._meta.label_lower,
            action="updated",
            at__gte=day_start(period.start),
            at__lt=day_start(period.end),
            changes__has_key="expected_close",
        )
        .alias(before=KT("changes__expected_close__0"), after=KT("changes__expected_close__1"))
        .filter(after__gt=F("before"))
    )
    return Q(pk__in=pushes.values("object_id"))


def measure_filter(measure: str, period: Period) -> Q:
    """The opportunities behind one number of the forecast or pipeline-movement report."""
    if measure == "commit":
        return _open_in(period) & Q(forecast_category=ForecastCategory.COMMIT)
    if measure == "best_case":
        return _open_in(period) & Q(forecast_category=ForecastCategory.BEST_CASE)
    if measure == "pipeline":
        return _open_in(period) & ~Q(
            forecast_category__in=[ForecastCategory.COMMIT, ForecastCategory.BEST_CASE]
        )
    if measure == "weighted":
        return _open_in(period)
    if measure in ("closed_won", "won"):
        return _closed_in(period, won=True)
    if measure == "lost":
        return _closed_in(period, won=False)
    if measure == "entered":
        return Q(created_at__gte=day_start(period.start), created_at__lt=day_start(period.end))
    if measure == "advanced":
        return _advanced_in(period)
    if measure == "slipped":
        return _slipped_in(period)
    raise ValueError(measure)


def measure_opportunities(user, scope: Scope, period: Period, measure: str):
    """The drill-down: the opportunities one number sums, with their weighted amounts."""
    return (
        scoped_opportunities(user, scope)
        .filter(measure_filter(measure, period))
        .select_related("account", "owner", "stage")
        .annotate(weighted=WEIGHTED)
    )


@dataclass
class Summed:
    count: int
    amount: Decimal
    weighted: Decimal


def measure_totals(queryset: QuerySet) -> Summed:
    row = queryset.order_by().aggregate(n=Count("pk"), total=Sum("amount"), w=Sum(WEIGHTED))
    return Summed(row["n"], row["total"] or ZERO, row["w"] or ZERO)


# --- the forecast -----------------------------------------------------------------------------


@dataclass
class Numbers:
    pipeline: Decimal = ZERO
    best_case: Decimal = ZERO
    commit: Decimal = ZERO
    weighted: Decimal = ZERO
    closed_won: Decimal = ZERO

    def add(self, other: "Numbers") -> None:
        for name in FORECAST_MEASURES:
            setattr(self, name, getattr(self, name) + getattr(other, name))


def forecast_by_owner(opportunities: QuerySet, period: Period) -> dict[int | None, Numbers]:
    """Pipeline, best case, commit, weighted and closed-won per owner, for `opportunities` in
    `period` (two aggregate queries). The weighted amount is exact (not rounded): grouped by
    stage probability, each group's sum times it."""
    numbers: dict[int | None, Numbers] = defaultdict(Numbers)
    open_groups = (
        opportunities.filter(_open_in(period))
        .order_by()
        .values("owner_id", "forecast_category", "stage__probability")
        .annotate(total=Sum("amount"))
    )
    for group in open_groups:
        row = numbers[group["owner_id"]]
        total = group["total"]
        if group["forecast_category"] == ForecastCategory.COMMIT:
            row.commit += total
        elif group["forecast_category"] == ForecastCategory.BEST_CASE:
            row.best_case += total
        else:
            row.pipeline += total
        row.weighted += total * group["stage__probability"] / 100
    won = (
        opportunities.filter(_closed_in(period, won=True))
        .order_by()
        .values("owner_id")
        .annotate(total=Sum("amount"))
    )
    for group in won:
        numbers[group["owner_id"]].closed_won += group["total"]
    return dict(numbers)


@dataclass
class ForecastRow:
    owner_id: int | None
    name: str
    numbers: Numbers
    quota: Decimal | None = None
    # The closed won that counts against the quota: the person's own; for the total, that of
    # the people who have a quota.
    quota_closed_won: Decimal = ZERO

    @property
    def attainment(self) -> Decimal | None:
        """Closed won as a percentage of the quota."""
        if not self.quota:
            return None
        return _tenths(self.quota_closed_won * 100 / self.quota)

    @property
    def owner_param(self) -> str:
        return NO_OWNER if self.owner_id is None else str(self.owner_id)


@dataclass
class Forecast:
    period: Period
    rows: list[ForecastRow]
    total: ForecastRow
    quotas_shown: bool


def forecast(
    user, scope: Scope, period: Period, numbers: dict[int | None, Numbers] | None = None
) -> Forecast:
    """The forecast page's table: a row per salesperson with deals or a quota in the period
    (within the scope), and the total. The total's attainment is the closed won of the people
    with a quota over the sum of their quotas. Quotas are per person, so a territory's (or the
    unowned deals') forecast shows none. `numbers` per owner, when counted already (the
    rollup's); otherwise counted live."""
    if numbers is None:
        numbers = forecast_by_owner(scoped_opportunities(user, scope), period)
    quotas_shown = not scope.by_territory and scope.owner != NO_OWNER
    quotas: dict[int, Decimal] = {}
    if quotas_shown:
        quotas = dict(
            _narrowed(
                access.owned_for(user, Quota.objects.all(), owner_field="user").filter(
                    period_kind=period.kind, period_start=period.start
                ),
                scope,
                owner_field="user",
            ).values_list("user_id", "amount")
        )
    people = dict(
        User.objects.filter(
            pk__in={*quotas, *(pk for pk in numbers if pk is not None)}
        ).values_list("pk", "full_name")
    )
    rows = []
    for pk in {*numbers, *quotas}:
        row_numbers = numbers.get(pk, Numbers())
        quota = quotas.get(pk)
        rows.append(
            ForecastRow(
                owner_id=pk,
                name="No owner" if pk is None else people.get(pk, "(a deleted user)"),
                numbers=row_numbers,
                quota=quota,
                quota_closed_won=row_numbers.closed_won if quota is not None else ZERO,
            )
        )
    rows.sort(key=lambda row: (row.owner_id is None, row.name.lower(), row.owner_id or 0))
    total = ForecastRow(owner_id=None, name="Total", numbers=Numbers())
    for row in rows:
        total.numbers.add(row.numbers)
        total.quota_closed_won += row.quota_closed_won
    if quotas:
        total.quota = sum(quotas.values(), ZERO)
    return Forecast(period=period, rows=rows, total=total, quotas_shown=quotas_shown)


# --- pipeline movement ------------------------------------------------------------------------


@dataclass
class MovementRow:
    measure: str
    label: str
    count: int
    amount: Decimal


def pipeline_movement(user, scope: Scope, period: Period) -> list[MovementRow]:
    """What entered, advanced, slipped, was won and was lost in the period: the number of
    deals and their amounts (as they are now), one aggregate query each."""
    rows = []
    for measure, label in MOVEMENT_MEASURES.items():
        summed = measure_totals(
            scoped_opportunities(user, scope).filter(measure_filter(measure, period))
        )
        rows.append(MovementRow(measure, label, summed.count, summed.amount))
    return rows


# --- history and accuracy ---------------------------------------------------------------------


def snapshots_for(user, scope: Scope) -> QuerySet[ForecastSnapshot] | None:
    """The snapshots of the people in the scope the user may see; None for a territory (the
    snapshots are kept per owner, not per territory)."""
    if scope.by_territory:
        return None
    snapshots = access.owned_for(user, ForecastSnapshot.objects.all())
    return _narrowed(snapshots, scope)


@dataclass
class HistoryPoint:
    taken_at: datetime
    numbers: Numbers

    @property
    def commit_call(self) -> Decimal:
        """What the forecast said would close: what had closed won, plus commit."""
        return self.numbers.closed_won + self.numbers.commit

    @property
    def weighted_call(self) -> Decimal:
        return self.numbers.closed_won + self.numbers.weighted


def _points(snapshots: QuerySet) -> list[tuple[date, HistoryPoint]]:
    """The snapshots summed per period and moment taken (a run of the task takes every owner's
    at the same moment)."""
    groups = (
        snapshots.order_by()
        .values("period_start", "taken_at")
        .annotate(**{name: Sum(name) for name in FORECAST_MEASURES})
        .order_by("period_start", "taken_at")
    )
    return [
        (
            group["period_start"],
            HistoryPoint(
                taken_at=group["taken_at"],
                numbers=Numbers(**{name: group[name] for name in FORECAST_MEASURES}),
            ),
        )
        for group in groups
    ]


def forecast_history(user, scope: Scope, period: Period) -> list[HistoryPoint] | None:
    """How the forecast for the period moved: one point per snapshot, oldest first."""
    snapshots = snapshots_for(user, scope)
    if snapshots is None:
        return None
    return [
        point
        for _, point in _points(
            snapshots.filter(period_kind=period.kind, period_start=period.start)
        )
    ]


def error_percent(call: Decimal, actual: Decimal) -> Decimal | None:
    """How far a forecast was from what closed, in percent of what closed (positive: it said
    more would close)."""
    if not actual:
        return None
    return _tenths((call - actual) * 100 / actual)


@dataclass
class Accuracy:
    """A snapshot of a forecast (if one was taken) against what closed won in its period."""

    point: HistoryPoint | None
    actual: Decimal
    period: Period | None = None

    @property
    def commit_error(self) -> Decimal | None:
        return self.point and error_percent(self.point.commit_call, self.actual)

    @property
    def weighted_error(self) -> Decimal | None:
        return self.point and error_percent(self.point.weighted_call, self.actual)


def won_by_period(user, scope: Scope, periods: list[Period]) -> dict[date, Decimal]:
    """What closed won in each of `periods` (consecutive, of one kind), live: {start: amount}."""
    kind = periods[0].kind
    won = (
        scoped_opportunities(user, scope)
        .filter(_closed_in(Period(kind, periods[0].start, periods[-1].end), won=True))
        .order_by()
        .annotate(period=Trunc("closed_at", kind))
        .values("period")
        .annotate(total=Sum("amount"))
    )
    return {timezone.localtime(group["period"]).date(): group["total"] for group in won}


def past_accuracy(
    user, scope: Scope, kind: str, *, today: date, count: int = 4, won=won_by_period
) -> list[Accuracy] | None:
    """For the last `count` periods of a kind that have ended: the forecast as the period began
    (the first snapshot taken in it) against what closed won in it (`won(user, scope,
    periods)`: live, or the rollup's). None for a territory."""
    snapshots = snapshots_for(user, scope)
    if snapshots is None:
        return None
    ended = [period_of(kind, today).previous()]
    while len(ended) < count:
        ended.append(ended[-1].previous())
    ended.reverse()
    first = {}
    for start, point in _points(
        snapshots.filter(
            period_kind=kind,
            period_start__in=[p.start for p in ended],
            taken_at__gte=day_start(ended[0].start),
        )
    ):
        period = period_of(kind, start)
        if point.taken_at >= day_start(period.start) and start not in first:
            first[start] = point
    actual = won(user, scope, ended)
    return [Accuracy(first.get(p.start), actual.get(p.start, ZERO), p) for p in ended]


# --- snapshots --------------------------------------------------------------------------------


def snapshot_periods(today: date) -> list[Period]:
    """The periods a snapshot covers: the current and the next month, quarter and year."""
    found = []
    for kind in ("month", "quarter", "year"):
        current = period_of(kind, today)
        found += [current, current.next()]
    return found


@transaction.atomic
def forecast_snapshots_take(*, now: datetime | None = None) -> int:
    """Keep the forecast per owner for the current and next month, quarter and year, as it
    stands (the whole tenant's deals, whoever may see them): the history and accuracy sections
    read these. Runs in the tenant's schema; the number of rows written.

    Safe to run twice: a period whose snapshot was already taken that day is skipped, and two
    runs at once queue on a lock for the tenant."""
    now = now or timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(hashtext(%s))",
            [f"forecast-snapshot:{connection.schema_name}"],
        )
    day = timezone.localtime(now).date()
    taken_today = set(
        ForecastSnapshot.objects.filter(taken_at__gte=day_start(day)).values_list(
            "period_kind", "period_start"
        )
    )
    rows = []
    for period in snapshot_periods(day):
        if (period.kind, period.start) in taken_today:
            continue
        for owner_id, numbers in forecast_by_owner(Opportunity.objects.all(), period).items():
            rows.append(
                ForecastSnapshot(
                    taken_at=now,
                    period_kind=period.kind,
                    period_start=period.start,
                    owner_id=owner_id,
                    **{name: cents(getattr(numbers, name)) for name in FORECAST_MEASURES},
                )
            )
    ForecastSnapshot.objects.bulk_create(rows)
    return len(rows)
