"""The customer life-cycle report: for each stage (awareness, education, evaluation, purchase,
reorder), how many contacts entered it in a period, how many of them moved on to a later stage,
the conversion rate, and the median and 90th-percentile days they spent there; by period,
source, territory and customer type.

How it is counted, from the append-only ledger tracking.models.LifecycleChange (written by
tracking.lifecycle) and the contacts:
- A contact's stays: the stage they started in, entered when the contact was created (the
  ledger has no row for it: contacts are created in a stage without a change), then one stay
  per ledger row, entered at the row's time. The stage they started in is the first ledger
  row's from-stage, or their stage now if the ledger has no row for them (contacts created or
  imported before the ledger existed, or never moved). A stay ends when the next one starts
  (LEAD over the contact's rows ordered by time).
- Entered in a period: stays that started in it (the period is a cohort). A contact who enters
  a stage twice in a period (back to education and again) counts twice, as each reorder cycle
  does.
- Moved on: of those, the stays that ended in a later stage, at any time up to now (a reorder
  stay ends in a later stage when the customer orders again: a new reorder cycle). Moving back
  (a lost deal returns an evaluating contact to education) ends the stay but is not moving on.
- Conversion rate: moved on / entered.
- Days in the stage: from entering to leaving, in days (fractional), over the stays that have
  ended (whichever way). Contacts still in the stage are not in the median and the 90th
  percentile, which would otherwise be a guess; the table shows how many are still there, so a
  recent period's short medians read as what they are: the time of those who already left.
- Source, territory and customer type are the contact's now (as last read by the rollup).
- Every contact of the tenant counts, whoever owns them: the report shows counts, never who,
  and the stages describe the whole customer base (admins and managers may open it).

Why a rollup: a tenant with a million contacts has millions of stays, and a percentile needs
every value of its group sorted: no page can do that within its time. The rollup is in two
parts. `LifecycleStay` holds every stay (LEAD over the ledger, computed in SQL). `LifecycleStat`
holds, for every month, quarter and year, stage, and slice of contacts (every combination of a
source, a territory and a customer type, or all of them: GROUP BY CUBE), the counts and
percentile_cont's median and 90th percentile. The page reads a few hundred rows of it.

Celery beat refreshes it every half hour (`lifecycle_rollup_refresh`): the stays of the contacts
with new ledger rows or changed since the last refresh are rebuilt, and the periods in which a
stay that changed (new, gone or different) started are recounted. Contacts deleted since are
counted out by the daily rebuild.
"""

from dataclasses import dataclass
from datetime import date, datetime

from django.conf import settings
from django.db import connection
from django.utils import timezone

from contacts.models import LifecycleStage
from reports.filters import Period, period_of
from reports.models import LifecycleStat
from reports.rollups import rollup_freshness, rollup_locked

ROLLUP = "lifecycle"
STAGES = LifecycleStage.values
STAGE_LABELS = dict(LifecycleStage.choices)
PERIOD_KINDS = ("month", "quarter", "year")
# Beat's interval for the refresh (crm.settings): recounting periods costs more than weeks.
REFRESH_MINUTES = 30
DIMENSIONS = {
    "source": LifecycleStat.SOURCE,
    "territory": LifecycleStat.TERRITORY,
    "customer_type": LifecycleStat.CUSTOMER_TYPE,
}


# --- the rollup: stays -----------------------------------------------------------------------

# What tells two versions of a stay apart (moved_on follows from the stages).
_STAY_COLUMNS = (
    "contact_id, stage, entered_at, left_at, next_stage, source, territory, customer_type"
)

# The stays of the contacts in the table lifecycle_dirty, inserted into reports_lifecyclestay;
# `{made}` may copy them on into a table of their own.
_STAYS = """
WITH firsts AS (
    SELECT c.id AS contact_id,
           CASE WHEN f.at IS NULL THEN c.lifecycle_stage ELSE nullif(f.from_stage, '') END
               AS stage,
           least(c.created_at, f.at) AS at
    FROM contacts_contact c
    JOIN lifecycle_dirty d ON d.id = c.id
    LEFT JOIN LATERAL (
        SELECT l.from_stage, l.at FROM tracking_lifecyclechange l
        WHERE l.contact_id = c.id ORDER BY l.at, l.id LIMIT 1
    ) f ON true
),
entries AS (
    SELECT contact_id, stage, at, 0 AS id FROM firsts WHERE stage IS NOT NULL
    UNION ALL
    SELECT l.contact_id, l.to_stage, l.at, l.id
    FROM tracking_lifecyclechange l JOIN lifecycle_dirty d ON d.id = l.contact_id
),
stays AS (
    SELECT contact_id, stage, at AS entered_at,
           lead(at) OVER w AS left_at, lead(stage) OVER w AS next_stage
    FROM entries
    WINDOW w AS (PARTITION BY contact_id ORDER BY at, id)
),
made AS (
    INSERT INTO reports_lifecyclestay (contact_id, stage, entered_at, left_at, next_stage,
                                       moved_on, source, territory, customer_type)
    SELECT s.contact_id, s.stage, s.entered_at, s.left_at, coalesce(s.next_stage, ''),
           coalesce(
               array_position(%(order)s, s.next_stage) > array_position(%(order)s, s.stage)
               OR (s.stage = 'reorder' AND s.next_stage = 'reorder'),
               false
           ),
           c.source, c.territory, c.customer_type
    FROM stays s JOIN contacts_contact c ON c.id = s.contact_id
    RETURNING {columns}
)
{made}
"""


def _stays_rebuild(cursor, *, changed: bool) -> set[date]:
    """Rebuild the stays of the contacts in the table lifecycle_dirty. With `changed`, the
    months in which a stay that changed (new, gone, or different) started: only those months'
    numbers can have changed."""
    params = {"tz": settings.TIME_ZONE, "order": STAGES}
    if not changed:
        cursor.execute(_STAYS.format(columns="1", made="SELECT count(*) FROM made"), params)
        return set()
    for table in ("lifecycle_gone", "lifecycle_made"):
        cursor.execute(
            f"CREATE TEMP TABLE {table} ON COMMIT DROP AS "
            f"SELECT {_STAY_COLUMNS} FROM reports_lifecyclestay LIMIT 0"
        )
    cursor.execute(
        f"WITH gone AS (DELETE FROM reports_lifecyclestay s USING lifecycle_dirty d "
        f"WHERE s.contact_id = d.id RETURNING {_STAY_COLUMNS}) "
        "INSERT INTO lifecycle_gone SELECT * FROM gone"
    )
    cursor.execute(
        _STAYS.format(columns=_STAY_COLUMNS, made="INSERT INTO lifecycle_made SELECT * FROM made"),
        params,
    )
    cursor.execute(
        "SELECT DISTINCT date_trunc('month', entered_at AT TIME ZONE %(tz)s)::date FROM ("
        "(SELECT * FROM lifecycle_gone EXCEPT SELECT * FROM lifecycle_made) UNION ALL "
        "(SELECT * FROM lifecycle_made EXCEPT SELECT * FROM lifecycle_gone)) changed",
        params,
    )
    months = {row[0] for row in cursor.fetchall()}
    cursor.execute("DROP TABLE lifecycle_gone, lifecycle_made")
    return months


# --- the rollup: numbers per period, stage and slice -----------------------------------------


_STATS_SQL = """
INSERT INTO reports_lifecyclestat
    (period_kind, period_start, stage, sliced_by, source, territory, customer_type,
     entered, moved_on, "left", median_days, p90_days)
SELECT %(kind)s, period_start, stage,
       (1 - GROUPING(source)) + 2 * (1 - GROUPING(territory)) + 4 * (1 - GROUPING(customer_type)),
       coalesce(source, ''), coalesce(territory, ''), coalesce(customer_type, ''),
       count(*), count(*) FILTER (WHERE moved_on), count(days),
       (percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY days))[1],
       (percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY days))[2]
FROM (
    SELECT date_trunc(%(kind)s, entered_at AT TIME ZONE %(tz)s)::date AS period_start,
           stage COLLATE "C" AS stage, source COLLATE "C" AS source,
           territory COLLATE "C" AS territory, customer_type COLLATE "C" AS customer_type,
           moved_on,
           date_part('epoch', left_at - entered_at) / 86400 AS days
    FROM reports_lifecyclestay
    WHERE {where}
) stays
GROUP BY period_start, stage, CUBE (source, territory, customer_type)
"""


def _stats_recount(cursor, kind: str, starts: list[date] | None) -> None:
    """Recount the numbers of the periods of `kind` starting on `starts` (all when None)."""
    params = {"kind": kind, "tz": settings.TIME_ZONE, "starts": starts}
    if starts is None:
        cursor.execute("DELETE FROM reports_lifecyclestat WHERE period_kind = %(kind)s", params)
        where = "true"
    else:
        cursor.execute(
            "DELETE FROM reports_lifecyclestat WHERE period_kind = %(kind)s "
            "AND period_start = ANY(%(starts)s)",
            params,
        )
        tz = timezone.get_default_timezone()
        periods = [period_of(kind, start) for start in starts]
        params["from"] = datetime.combine(min(p.start for p in periods), datetime.min.time(), tz)
        params["to"] = datetime.combine(max(p.end for p in periods), datetime.min.time(), tz)
        where = (
            "entered_at >= %(from)s AND entered_at < %(to)s AND "
            "date_trunc(%(kind)s, entered_at AT TIME ZONE %(tz)s)::date = ANY(%(starts)s)"
        )
    cursor.execute(_STATS_SQL.format(where=where), params)


def lifecycle_rollup_refresh(*, rebuild: bool = False, now: datetime | None = None) -> int:
    """Bring the life-cycle rollup up to date: rebuild the stays of the contacts with new
    ledger rows or changed since the last refresh and recount the periods those stays started
    in, or rebuild everything (`rebuild`, never done, or a day since). Returns the number of
    contacts whose stays were rebuilt. Runs in the current tenant's schema; a refresh while
    another runs returns at once (that one does the work), so running it twice is safe."""
    now = now or timezone.now()
    with rollup_locked(ROLLUP, rebuild=rebuild, now=now) as state, connection.cursor() as cursor:
        if state is None:
            return 0
        # Sorts of millions of rows: in memory rather than in temporary files.
        cursor.execute("SET LOCAL work_mem = '256MB'")
        cursor.execute("SELECT coalesce(max(id), 0) FROM tracking_lifecyclechange")
        (last_id,) = cursor.fetchone()
        if state.full:
            cursor.execute("TRUNCATE reports_lifecyclestay")
            cursor.execute(
                "CREATE TEMP TABLE lifecycle_dirty ON COMMIT DROP AS "
                "SELECT id FROM contacts_contact"
            )
        else:
            # Contacts changed since the last refresh, read a minute back: one saved by a
            # transaction that began before the refresh and committed after it is read again.
            cursor.execute(
                "CREATE TEMP TABLE lifecycle_dirty ON COMMIT DROP AS "
                "SELECT contact_id AS id FROM tracking_lifecyclechange WHERE id > %(after)s "
                "UNION SELECT id FROM contacts_contact "
                "WHERE updated_at >= %(since)s::timestamptz - interval '1 minute'",
                {"after": state.marks["change_id"], "since": state.marks["since"]},
            )
        # A temporary table has no statistics until it is analyzed: the plans need them.
        cursor.execute("ANALYZE lifecycle_dirty")
        cursor.execute("SELECT count(*) FROM lifecycle_dirty")
        (contacts,) = cursor.fetchone()
        months = _stays_rebuild(cursor, changed=not state.full)
        cursor.execute("DROP TABLE lifecycle_dirty")
        for kind in PERIOD_KINDS:
            starts = None if state.full else sorted({period_of(kind, m).start for m in months})
            if starts != []:
                _stats_recount(cursor, kind, starts)
        state.marks = {"change_id": last_id, "since": now.isoformat()}
    return contacts


# --- the report ------------------------------------------------------------------------------


@dataclass
class StageRow:
    stage: str
    entered: int = 0
    moved_on: int = 0
    left: int = 0
    median_days: float | None = None
    p90_days: float | None = None

    @property
    def label(self) -> str:
        return STAGE_LABELS.get(self.stage, self.stage)

    @property
    def still_there(self) -> int:
        return self.entered - self.left

    @property
    def conversion(self) -> float | None:
        """Percent of those who entered that moved on."""
        return round(100 * self.moved_on / self.entered, 1) if self.entered else None


@dataclass
class Group:
    """The stage rows of one period and, when grouped by a dimension, one of its values."""

    period: Period
    value: str | None
    stages: list[StageRow]


@dataclass
class LifecycleReport:
    periods: list[Period]
    group_by: str
    groups: list[Group]
    # Contacts that entered each stage over all the periods (for the funnel).
    entered: dict[str, int]


def lifecycle_report(
    *, periods: list[Period], group_by: str = "period", filters: dict[str, str] | None = None
) -> LifecycleReport:
    """The numbers of each period (and each value of `group_by` when it is a dimension) for
    the contacts matching `filters` ({dimension: value}; a value of "" is contacts without
    one)."""
    filters = filters or {}
    sliced_by = sum(DIMENSIONS[name] for name in filters)
    if group_by in DIMENSIONS:
        sliced_by |= DIMENSIONS[group_by]
    kind = periods[0].kind
    rows = LifecycleStat.objects.filter(
        period_kind=kind,
        sliced_by=sliced_by,
        period_start__in=[p.start for p in periods],
        **filters,
    ).values_list(
        "period_start",
        group_by if group_by in DIMENSIONS else "period_kind",
        "stage",
        "entered",
        "moved_on",
        "left",
        "median_days",
        "p90_days",
    )
    found: dict[tuple[date, str | None], dict[str, StageRow]] = {}
    for start, value, stage, *numbers in rows:
        key = (start, value if group_by in DIMENSIONS else None)
        found.setdefault(key, {})[stage] = StageRow(stage, *numbers)
    by_start = {p.start: p for p in periods}
    groups = []
    for start, value in sorted(found, key=lambda key: (key[0], key[1] or "")):
        stages = found[(start, value)]
        groups.append(Group(by_start[start], value, [stages.get(s, StageRow(s)) for s in STAGES]))
    if group_by == "period":
        present = {group.period.start for group in groups}
        groups += [
            Group(p, None, [StageRow(s) for s in STAGES]) for p in periods if p.start not in present
        ]
        groups.sort(key=lambda group: group.period.start)
    entered = {stage: 0 for stage in STAGES}
    for group in groups:
        for row in group.stages:
            entered[row.stage] += row.entered
    return LifecycleReport(periods=periods, group_by=group_by, groups=groups, entered=entered)


def dimension_values(name: str) -> list[str]:
    """The values of a dimension the rollup knows (for the filters' choices)."""
    return list(
        LifecycleStat.objects.filter(period_kind="year", sliced_by=DIMENSIONS[name])
        .order_by(name)
        .values_list(name, flat=True)
        .distinct()
    )


def lifecycle_freshness(*, now: datetime | None = None) -> str | None:
    """How fresh the page's numbers are; None if they were never counted."""
    return rollup_freshness(
        ROLLUP,
        every_minutes=REFRESH_MINUTES,
        caveat="Deleted contacts are counted out daily.",
        now=now,
    )
