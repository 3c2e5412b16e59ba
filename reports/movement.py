"""Pipeline movement read from a rollup: what entered, advanced, slipped, was won and was lost
in each calendar month, quarter and year, per owner and territory (reports.models.MovementCell).

The numbers are those of `reports.forecast.measure_filter` (its docstring says what each row
counts), summed over the whole tenant: a deal counts once in a cell however often it advanced
or slipped in the period, and it has one owner and one territory, so the cells of a period add
up to the period's figure for any team, territory or owner, and for what a manager may see
(`crm.access.owned_for`: the reports are for admins and managers, whose reach is by owner).
Live, the advanced row alone is a join of every stage change of the period (90,000 in a quarter
on the benchmark tenant) with its deals; the page reads a few hundred cells instead.

Celery beat refreshes the rollup every five minutes (`movement_rollup_refresh`): it recounts
every period holding a moment (created, closed, closed before, moved, pushed) of a deal that
changed since the last refresh: one saved since, moved to another stage, found in the audit
trail, or whose account was saved (its territory). A deleted deal leaves its periods' counts as
they were until the daily rebuild, or until something else in those periods changes.
"""

from collections import defaultdict
from datetime import datetime

from django.conf import settings
from django.db import connection
from django.db.models import QuerySet, Sum
from django.utils import timezone

from crm import access
from opportunities.models import Opportunity
from reports.filters import Period, period_of
from reports.forecast import MOVEMENT_MEASURES, NO_OWNER, ZERO, MovementRow, Scope, day_start
from reports.models import MovementCell
from reports.rollups import rollup_freshness, rollup_locked

ROLLUP = "pipeline_movement"
# Beat's interval for the refresh (crm.settings).
REFRESH_MINUTES = 5
KINDS = ("month", "quarter", "year")
OPPORTUNITY = Opportunity._meta.label_lower

# A push of the expected close date to a later one, as reports.forecast._slipped_in reads it
# (and as the partial index of migration 0004 holds it).
_PUSHED = (
    "e.model = %(model)s AND e.action = 'updated' AND e.changes ? 'expected_close' "
    "AND (e.changes #>> '{expected_close,1}') > (e.changes #>> '{expected_close,0}')"
)

# The periods given as arrays recounted in one statement: every deal with its measures in each
# period, then counted and summed per owner and territory.
_RECOUNT = f"""
WITH p AS (
    SELECT * FROM unnest(%(kinds)s::text[], %(starts)s::date[], %(froms)s::timestamptz[],
                         %(tos)s::timestamptz[]) AS p(kind, start, t_from, t_to)
), moved AS (
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


def _periods_sql(touched: str, closed_before: str = "") -> str:
    """The moments a measure reads of every deal in `touched` (a query of ids), truncated to
    each kind of period."""
    return f"""
    WITH touched AS ({touched}), moments AS (
        SELECT o.created_at AS at FROM opportunities_opportunity o JOIN touched t ON t.id = o.id
        UNION SELECT o.closed_at FROM opportunities_opportunity o JOIN touched t ON t.id = o.id
            WHERE o.closed_at IS NOT NULL
        UNION SELECT c.changed_at FROM opportunities_stagechange c
            JOIN touched t ON t.id = c.opportunity_id
        UNION SELECT e.at FROM tracking_auditentry e JOIN touched t ON t.id = e.object_id
            WHERE {_PUSHED}
        {closed_before}
    )
    SELECT DISTINCT k.kind, date_trunc(k.kind, m.at AT TIME ZONE %(tz)s)::date
    FROM moments m CROSS JOIN unnest(%(period_kinds)s::text[]) AS k(kind)
    """


_ALL = "SELECT id FROM opportunities_opportunity"

_CHANGED = """
SELECT id FROM opportunities_opportunity WHERE updated_at >= %(since)s
UNION SELECT opportunity_id FROM opportunities_stagechange WHERE changed_at >= %(since)s
UNION SELECT object_id FROM tracking_auditentry WHERE model = %(model)s AND at >= %(since)s
UNION SELECT o.id FROM contacts_account a JOIN opportunities_opportunity o ON o.account_id = a.id
    WHERE a.updated_at >= %(since)s
"""

# A deal reopened, or closed again later, no longer counts where it closed before: the audit
# trail has that moment.
_CLOSED_BEFORE = """
UNION SELECT (e.changes #>> '{closed_at,0}')::timestamptz FROM tracking_auditentry e
    WHERE e.model = %(model)s AND e.at >= %(since)s AND e.changes #>> '{closed_at,0}' IS NOT NULL
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
        cursor.execute(_periods_sql(_CHANGED, _CLOSED_BEFORE), params)
    return [period_of(kind, start) for kind, start in sorted(cursor.fetchall())]


def _recount(cursor, periods: list[Period], *, everything: bool) -> None:
    if everything:
        cursor.execute("DELETE FROM reports_movementcell")
    else:
        cursor.execute(
            "DELETE FROM reports_movementcell WHERE (period_kind, period_start) IN "
            "(SELECT * FROM unnest(%s::text[], %s::date[]))",
            [[p.kind for p in periods], [p.start for p in periods]],
        )
    if not periods:
        return
    cursor.execute(
        _RECOUNT,
        {
            "model": OPPORTUNITY,
            "kinds": [p.kind for p in periods],
            "starts": [p.start for p in periods],
            "froms": [day_start(p.start) for p in periods],
            "tos": [day_start(p.end) for p in periods],
        },
    )


def movement_rollup_refresh(*, rebuild: bool = False, now: datetime | None = None) -> int:
    """Bring the pipeline-movement rollup up to date: recount the periods that changed since
    the last refresh, or all of them (`rebuild`, never done, or a day since). Returns the number
    of periods recounted. Runs in the current tenant's schema; a refresh while another runs
    returns at once (that one does the work), so running it twice is safe."""
    now = now or timezone.now()
    with rollup_locked(ROLLUP, rebuild=rebuild, now=now) as state, connection.cursor() as cursor:
        if state is None:
            return 0
        cursor.execute("SET LOCAL work_mem = '128MB'")
        since = None if state.full else datetime.fromisoformat(state.marks["since"])
        periods = _periods(cursor, since)
        _recount(cursor, periods, everything=since is None)
        # What changes while this counts is read again next time.
        state.marks = {"since": now.isoformat()}
    return len(periods)


def movement_freshness(*, now: datetime | None = None) -> str | None:
    """How fresh the page's numbers are; None if they were never counted."""
    return rollup_freshness(
        ROLLUP,
        every_minutes=REFRESH_MINUTES,
        caveat="Deleted opportunities leave the counts at the daily recount.",
        now=now,
    )


def _narrowed(cells: QuerySet, scope: Scope) -> QuerySet:
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
    """The pipeline-movement rows of a period from the rollup, within what the user may see."""
    cells = _narrowed(
        access.owned_for(
            user, MovementCell.objects.filter(period_kind=period.kind, period_start=period.start)
        ),
        scope,
    )
    summed: dict[str, tuple[int, object]] = defaultdict(lambda: (0, ZERO))
    for measure, deals, amount in (
        cells.order_by()
        .values("measure")
        .annotate(deals=Sum("deals"), total=Sum("amount"))
        .values_list("measure", "deals", "total")
    ):
        summed[measure] = (deals, amount)
    return [
        MovementRow(measure, label, *summed[measure])
        for measure, label in MOVEMENT_MEASURES.items()
    ]
