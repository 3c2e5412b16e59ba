"""The forecast and pipeline movement read from rollups of the deals, per calendar month, quarter
and year, owner and territory (reports.models.ForecastCell and MovementCell).

The numbers are those of `reports.forecast` (its docstring says what each one counts), summed
over the whole tenant: a deal has one owner and one territory, and counts once in a movement cell
however often it advanced or slipped in the period, so the cells of a period add up to the
period's figure for any team, territory or owner, and for what a manager may see
(`crm.access.owned_for`: these reports are for admins and managers, whose reach is by owner).
Live, the forecast sums every open deal closing in the period and every deal won in it, and the
movement's advanced row joins every stage change of the period with its deal (90,000 in a quarter
on the benchmark tenant); the pages read a few hundred cells instead. The drill-downs stay live.

Celery beat refreshes both every five minutes (`deal_rollups_refresh`): it recounts every period
holding a moment of a deal that changed since the last refresh read (one saved since, moved to
another stage, found in the audit trail, or whose account was saved: its territory). A deal's
moments are when it was created, closed, moved and pushed, its expected close date, and from the
audit trail the expected close date it had before. "Since" starts at the oldest transaction
other connections had open when the last refresh read, so what they committed after it is read
again. A pipeline's stages edited, or a deal or an account deleted (the audit trail says so),
may touch any period: the rollups are counted whole then, as they are once a day. A user
deleted outside the app (their deals' owner set to none without a save) is counted by the
daily rebuild.
"""

from collections import defaultdict
from datetime import date, datetime, timedelta

from django.conf import settings
from django.db import connection
from django.db.models import QuerySet, Sum
from django.utils import timezone

from crm import access
from opportunities.models import ForecastCategory, Opportunity
from reports.filters import Period, period_of
from reports.forecast import (
    FORECAST_MEASURES,
    MOVEMENT_MEASURES,
    NO_OWNER,
    ZERO,
    MovementRow,
    Numbers,
    Scope,
    day_start,
)
from reports.models import ForecastCell, MovementCell
from reports.rollups import rollup_freshness, rollup_locked

ROLLUP = "deals"
# Beat's interval for the refresh (crm.settings).
REFRESH_MINUTES = 5
# Changes are read again from a little before the oldest transaction that was open when the
# last refresh read (what it saved may have been committed after): app servers' clocks, which
# stamp the rows, may be that far from the database's.
CLOCK_SKEW = timedelta(minutes=1)
KINDS = ("month", "quarter", "year")
OPPORTUNITY = Opportunity._meta.label_lower

# A push of the expected close date to a later one, as reports.forecast._slipped_in reads it
# (and as the partial index of migration 0004 holds it).
_PUSHED = (
    "e.model = %(model)s AND e.action = 'updated' AND e.changes ? 'expected_close' "
    "AND (e.changes #>> '{expected_close,1}') > (e.changes #>> '{expected_close,0}')"
)

_PERIODS_GIVEN = """
WITH p AS (
    SELECT * FROM unnest(%(kinds)s::text[], %(starts)s::date[], %(ends)s::date[],
                         %(froms)s::timestamptz[], %(tos)s::timestamptz[])
        AS p(kind, start, finish, t_from, t_to)
)"""

# The movement cells of the given periods: every deal with its measures in each period, then
# counted and summed per owner and territory.
_MOVEMENT = f"""{_PERIODS_GIVEN}, moved AS (
    SELECT p.kind, p.start, 'entered' AS measure, o.id
    FROM p JOIN opportunities_opportunity o ON o.created_at >= p.t_from AND o.created_at < p.t_to
    UNION ALL
    SELECT p.kind, p.start, CASE WHEN s.is_won THEN 'won' ELSE 'lost' END, o.id
    FROM p JOIN opportunities_opportunity o ON o.closed_at >= p.t_from AND o.closed_at < p.t_to
    JOIN opportunities_stage s ON s.id = o.stage_id AND (s.is_won OR s.is_lost)
    UNION ALL
    SELECT DISTINCT p.kind, p.start, 'advanced', c.opportunity_id
    FROM p JOIN opportunities_stagechange c ON c.changed_at >= p.t_from AND c.changed_at < p.t_to
    JOIN opportunities_stage f ON f.id = c.from_stage_id
    JOIN opportunities_stage t ON t.id = c.to_stage_id
    WHERE t.position > f.position AND NOT t.is_won AND NOT t.is_lost
    UNION ALL
    SELECT DISTINCT p.kind, p.start, 'slipped', e.object_id
    FROM p JOIN tracking_auditentry e ON e.at >= p.t_from AND e.at < p.t_to
    WHERE {_PUSHED}
)
INSERT INTO reports_movementcell
    (period_kind, period_start, measure, owner_id, territory, deals, amount)
SELECT m.kind, m.start, m.measure, o.owner_id, a.territory, count(*), sum(o.amount)
FROM moved m
JOIN opportunities_opportunity o ON o.id = m.id
JOIN contacts_account a ON a.id = o.account_id
GROUP BY 1, 2, 3, 4, 5
"""

# The forecast cells of the given periods: open deals by their expected close date, each amount
# in its forecast category and weighted by its stage (exactly: rounded only on the page), and
# deals won by when they closed.
_FORECAST = f"""{_PERIODS_GIVEN}, summed AS (
    SELECT p.kind, p.start, o.owner_id, a.territory,
           coalesce(sum(o.amount) FILTER (
               WHERE o.forecast_category NOT IN (%(commit)s, %(best_case)s)), 0) AS pipeline,
           coalesce(sum(o.amount) FILTER (WHERE o.forecast_category = %(best_case)s), 0)
               AS best_case,
           coalesce(sum(o.amount) FILTER (WHERE o.forecast_category = %(commit)s), 0) AS commit,
           sum(o.amount * s.probability / 100) AS weighted, 0 AS closed_won
    FROM p JOIN opportunities_opportunity o
        ON o.expected_close >= p.start AND o.expected_close < p.finish
    JOIN opportunities_stage s ON s.id = o.stage_id AND NOT s.is_won AND NOT s.is_lost
    JOIN contacts_account a ON a.id = o.account_id
    GROUP BY 1, 2, 3, 4
    UNION ALL
    SELECT p.kind, p.start, o.owner_id, a.territory, 0, 0, 0, 0, sum(o.amount)
    FROM p JOIN opportunities_opportunity o ON o.closed_at >= p.t_from AND o.closed_at < p.t_to
    JOIN opportunities_stage s ON s.id = o.stage_id AND s.is_won
    JOIN contacts_account a ON a.id = o.account_id
    GROUP BY 1, 2, 3, 4
)
INSERT INTO reports_forecastcell (period_kind, period_start, owner_id, territory, pipeline,
                                  best_case, commit, weighted, closed_won)
SELECT kind, start, owner_id, territory, sum(pipeline), sum(best_case), sum(commit),
       sum(weighted), sum(closed_won)
FROM summed
GROUP BY 1, 2, 3, 4
"""


def _periods_sql(touched: str, before: str = "") -> str:
    """The periods of each kind holding a moment of a deal in `touched` (a query of ids)."""
    return f"""
    WITH touched AS ({touched}), moments AS (
        SELECT o.created_at AS at FROM opportunities_opportunity o JOIN touched t ON t.id = o.id
        UNION SELECT o.closed_at FROM opportunities_opportunity o JOIN touched t ON t.id = o.id
            WHERE o.closed_at IS NOT NULL
        UNION SELECT c.changed_at FROM opportunities_stagechange c
            JOIN touched t ON t.id = c.opportunity_id
        UNION SELECT e.at FROM tracking_auditentry e JOIN touched t ON t.id = e.object_id
            WHERE {_PUSHED}
        {before}
    ), days AS (
        SELECT (at AT TIME ZONE %(tz)s)::date AS day FROM moments
        UNION SELECT o.expected_close FROM opportunities_opportunity o
            JOIN touched t ON t.id = o.id WHERE o.expected_close IS NOT NULL
    )
    SELECT DISTINCT k.kind, date_trunc(k.kind, d.day)::date
    FROM days d CROSS JOIN unnest(%(period_kinds)s::text[]) AS k(kind)
    """


_ALL = "SELECT id FROM opportunities_opportunity"

_CHANGED = """
SELECT id FROM opportunities_opportunity WHERE updated_at >= %(since)s
UNION SELECT opportunity_id FROM opportunities_stagechange WHERE changed_at >= %(since)s
UNION SELECT object_id FROM tracking_auditentry WHERE model = %(model)s AND at >= %(since)s
UNION SELECT o.id FROM contacts_account a JOIN opportunities_opportunity o ON o.account_id = a.id
    WHERE a.updated_at >= %(since)s
"""

# The expected close date a deal had before a change: the audit trail has it. (Where a deal
# closed before it was reopened is in its stage history: only a move closes or reopens a deal.)
# Malformed values in the trail are skipped.
_BEFORE = """
UNION SELECT (e.changes #>> '{expected_close,0}')::date::timestamp AT TIME ZONE %(tz)s
    FROM tracking_auditentry e
    WHERE e.model = %(model)s AND e.at >= %(since)s
    AND e.changes #>> '{expected_close,0}' ~ '^\\d{4}-\\d{2}-\\d{2}$'
"""


def _periods(cursor, since: datetime | None) -> list[Period]:
    params = {
        "model": OPPORTUNITY,
        "tz": settings.TIME_ZONE,
        "period_kinds": list(KINDS),
        "since": since,
    }
    if since is None:
        cursor.execute(_periods_sql(_ALL), params)
    else:
        cursor.execute(_periods_sql(_CHANGED, _BEFORE), params)
    return [period_of(kind, start) for kind, start in sorted(cursor.fetchall())]


def _recount(cursor, periods: list[Period], *, everything: bool) -> None:
    keys = [[p.kind for p in periods], [p.start for p in periods]]
    for table in ("reports_movementcell", "reports_forecastcell"):
        if everything:
            cursor.execute(f"DELETE FROM {table}")
        else:
            cursor.execute(
                f"DELETE FROM {table} WHERE (period_kind, period_start) IN "
                "(SELECT * FROM unnest(%s::text[], %s::date[]))",
                keys,
            )
    if not periods:
        return
    params = {
        "model": OPPORTUNITY,
        "commit": ForecastCategory.COMMIT.value,
        "best_case": ForecastCategory.BEST_CASE.value,
        "kinds": keys[0],
        "starts": keys[1],
        "ends": [p.end for p in periods],
        "froms": [day_start(p.start) for p in periods],
        "tos": [day_start(p.end) for p in periods],
    }
    cursor.execute(_MOVEMENT, params)
    cursor.execute(_FORECAST, params)


# Changes that may touch any period: a pipeline's stages edited (probabilities, won and lost,
# order), a deal or an account (with its deals) deleted. The rollups are counted whole then.
_EVERYTHING_CHANGED = """
SELECT EXISTS (
    SELECT 1 FROM tracking_auditentry
    WHERE model = 'opportunities.pipeline' AND at >= %(since)s
) OR EXISTS (
    SELECT 1 FROM tracking_auditentry
    WHERE action = 'deleted' AND at >= %(since)s
    AND model IN ('opportunities.opportunity', 'contacts.account')
)
"""

# Where the next refresh reads from: the start of the oldest transaction of another connection
# still open now (what it saved is not visible to this refresh), or now (the clock's, not this
# transaction's start).
_MARK = """
SELECT least(clock_timestamp(), min(xact_start)) FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid()
"""


def deal_rollups_refresh(*, rebuild: bool = False, now: datetime | None = None) -> int:
    """Bring the forecast and pipeline-movement rollups up to date: recount the periods that
    changed since the last refresh, or all of them (`rebuild`, never done, a day since, or a
    change that may touch any period). Returns the number of periods recounted. Runs in the
    current tenant's schema; a refresh while another runs returns at once (that one does the
    work), so running it twice is safe."""
    now = now or timezone.now()
    with rollup_locked(ROLLUP, rebuild=rebuild, now=now) as state, connection.cursor() as cursor:
        if state is None:
            return 0
        cursor.execute("SET LOCAL work_mem = '128MB'")
        cursor.execute(_MARK)
        (mark,) = cursor.fetchone()
        since = None if state.full else datetime.fromisoformat(state.marks["since"]) - CLOCK_SKEW
        if since is not None:
            cursor.execute(_EVERYTHING_CHANGED, {"since": since})
            if cursor.fetchone()[0]:
                since = None
        periods = _periods(cursor, since)
        _recount(cursor, periods, everything=since is None)
        state.marks = {"since": mark.isoformat()}
    return len(periods)


def deals_freshness(*, now: datetime | None = None) -> str | None:
    """How fresh the pages' numbers are; None if they were never counted."""
    return rollup_freshness(
        ROLLUP,
        every_minutes=REFRESH_MINUTES,
        caveat="The opportunities behind a number are listed as they are now.",
        now=now,
    )


def _cells(model, user, scope: Scope) -> QuerySet:
    """The cells of what the user may see, within the scope."""
    cells = access.owned_for(user, model.objects.all())
    if scope.team_id:
        cells = cells.filter(owner__team_id=scope.team_id)
    if scope.territory:
        cells = cells.filter(territory__iexact=scope.territory)
    if scope.owner == NO_OWNER:
        cells = cells.filter(owner__isnull=True)
    elif scope.owner:
        cells = cells.filter(owner_id=int(scope.owner))
    return cells


def movement_counted(user, scope: Scope, period: Period) -> list[MovementRow]:
    """The pipeline-movement rows of a period, within what the user may see."""
    summed: dict[str, tuple[int, object]] = defaultdict(lambda: (0, ZERO))
    for measure, deals, amount in (
        _cells(MovementCell, user, scope)
        .filter(period_kind=period.kind, period_start=period.start)
        .order_by()
        .values("measure")
        .annotate(deals=Sum("deals"), total=Sum("amount"))
        .values_list("measure", "deals", "total")
    ):
        summed[measure] = (deals, amount)
    return [
        MovementRow(measure, label, *summed[measure])
        for measure, label in MOVEMENT_MEASURES.items()
    ]


def forecast_counted(user, scope: Scope, period: Period) -> dict[int | None, Numbers]:
    """Pipeline, best case, commit, weighted and closed won per owner in a period, within what
    the user may see (as `reports.forecast.forecast_by_owner` counts them live)."""
    return {
        owner_id: Numbers(*numbers)
        for owner_id, *numbers in (
            _cells(ForecastCell, user, scope)
            .filter(period_kind=period.kind, period_start=period.start)
            .order_by()
            .values("owner_id")
            .annotate(**{f"sum_{name}": Sum(name) for name in FORECAST_MEASURES})
            .values_list("owner_id", *(f"sum_{name}" for name in FORECAST_MEASURES))
        )
    }


def won_counted(user, scope: Scope, periods: list[Period]) -> dict[date, object]:
    """What closed won in each of `periods` (all of one kind): {start: amount}."""
    return dict(
        _cells(ForecastCell, user, scope)
        .filter(period_kind=periods[0].kind, period_start__in=[p.start for p in periods])
        .order_by()
        .values("period_start")
        .annotate(total=Sum("closed_won"))
        .values_list("period_start", "total")
    )
