"""The sales activity report: calls, meetings, e-mails and letters logged, tasks completed, per
salesperson per week, and activities per won opportunity.

What counts:
- An activity (contacts.Activity) counts for the user who logged it, in the week it happened
  (`occurred_at`). Notes are not counted: they are what someone wrote down, not a contact with
  the customer.
- A task counts for its assignee in the week it was completed (`done_at`, set by
  contacts.services.task_set_done); a reopened task no longer counts.
- Activities per won opportunity: the opportunities a salesperson owns that were won (closed in
  a won stage) in the weeks shown, and the calls, meetings, e-mails and letters logged on those
  opportunities, by anyone and at any time, divided by the number won.
- Weeks run Monday to Sunday in the site's time zone (settings.TIME_ZONE); a date range is read
  in whole weeks: from the Monday of its first day to the Sunday of its last.

The page reads a rollup (reports.models.ActivityWeek, a row per salesperson and week) because
the activities of a large tenant are millions of rows that no index orders by time alone:
twelve weeks of everyone's activities would be a scan of the whole table on every page view.
Celery beat refreshes the rollup every ten minutes (`activity_rollup_refresh`): it recounts the
current week and every week that new activities (by id), tasks completed and opportunities
changed since the last refresh fall in. A change it cannot see that way (an activity deleted or
moved to another week, a task reopened, a won deal reopened) is counted by the daily rebuild.
"""

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.conf import settings
from django.db import connection
from django.db.models import QuerySet, Sum
from django.utils import timezone

from contacts.models import Activity
from crm.users.models import Role
from reports.models import ActivityWeek
from reports.rollups import rollup_freshness, rollup_locked

ROLLUP = "activity"
KINDS = {
    Activity.Kind.CALL.value: "calls",
    Activity.Kind.MEETING.value: "meetings",
    Activity.Kind.EMAIL.value: "emails",
    Activity.Kind.LETTER.value: "letters",
}
COUNTS = ("calls", "meetings", "emails", "letters", "tasks_done")
# Beat's interval for the refresh (crm.settings).
REFRESH_MINUTES = 10
LABELS = {
    "calls": "Calls",
    "meetings": "Meetings",
    "emails": "E-mails",
    "letters": "Letters",
    "tasks_done": "Tasks done",
}


def monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def weeks_between(start: date, end: date) -> list[date]:
    """The Mondays of the weeks from the one holding `start` to the one holding `end`."""
    first, last = monday(start), monday(end)
    return [first + timedelta(weeks=n) for n in range((last - first).days // 7 + 1)]


# --- the rollup ------------------------------------------------------------------------------

_WEEK = "date_trunc('week', {column} AT TIME ZONE %(tz)s)::date"

# One statement recounts the given weeks (or all of them): each source grouped by person and
# week, then summed into one row per person and week.
_RECOUNT = f"""
INSERT INTO reports_activityweek
    (week, user_id, calls, meetings, emails, letters, tasks_done, won, won_activities)
SELECT week, user_id, sum(calls), sum(meetings), sum(emails), sum(letters), sum(tasks_done),
       sum(won), sum(won_activities)
FROM (
    SELECT {_WEEK.format(column="a.occurred_at")} AS week, a.user_id,
           count(*) FILTER (WHERE a.kind = 'call') AS calls,
           count(*) FILTER (WHERE a.kind = 'meeting') AS meetings,
           count(*) FILTER (WHERE a.kind = 'email') AS emails,
           count(*) FILTER (WHERE a.kind = 'letter') AS letters,
           0 AS tasks_done, 0 AS won, 0 AS won_activities
    FROM contacts_activity a
    WHERE a.user_id IS NOT NULL AND a.kind = ANY(%(kinds)s) {{activities}}
    GROUP BY 1, 2
    UNION ALL
    SELECT {_WEEK.format(column="t.done_at")}, t.assignee_id, 0, 0, 0, 0, count(*), 0, 0
    FROM contacts_task t
    WHERE t.done_at IS NOT NULL {{tasks}}
    GROUP BY 1, 2
    UNION ALL
    SELECT {_WEEK.format(column="o.closed_at")}, o.owner_id, 0, 0, 0, 0, 0, count(*),
           coalesce(sum(logged.n), 0)
    FROM opportunities_opportunity o
    JOIN opportunities_stage s ON s.id = o.stage_id AND s.is_won
    CROSS JOIN LATERAL (
        SELECT count(*) AS n FROM contacts_activity a
        WHERE a.opportunity_id = o.id AND a.kind = ANY(%(kinds)s)
    ) logged
    WHERE o.owner_id IS NOT NULL AND o.closed_at IS NOT NULL {{won}}
    GROUP BY 1, 2
) counted
JOIN users_user u ON u.id = counted.user_id
GROUP BY week, user_id
"""


def _in_weeks(column: str) -> str:
    """A filter to the weeks in %(weeks)s, with a range on the column an index may use."""
    return (
        f"AND {column} >= %(from)s AND {column} < %(to)s "
        f"AND {_WEEK.format(column=column)} = ANY(%(weeks)s)"
    )


def _recount(cursor, weeks: list[date] | None) -> None:
    params = {"tz": settings.TIME_ZONE, "kinds": list(KINDS)}
    if weeks is None:
        cursor.execute("DELETE FROM reports_activityweek")
        cursor.execute(_RECOUNT.format(activities="", tasks="", won=""), params)
        return
    tz = timezone.get_default_timezone()
    params |= {
        "weeks": weeks,
        # A day either side: the weeks are in the site's time zone, the columns in UTC.
        "from": datetime.combine(min(weeks) - timedelta(days=1), datetime.min.time(), tz),
        "to": datetime.combine(max(weeks) + timedelta(days=8), datetime.min.time(), tz),
    }
    cursor.execute("DELETE FROM reports_activityweek WHERE week = ANY(%(weeks)s)", params)
    cursor.execute(
        _RECOUNT.format(
            activities=_in_weeks("a.occurred_at"),
            tasks=_in_weeks("t.done_at"),
            won=_in_weeks("o.closed_at"),
        ),
        params,
    )


def _changed_weeks(cursor, marks: dict, now: datetime) -> set[date]:
    """The weeks whose counts may have changed since the refresh that left `marks`: those of
    activities added since (and of the won opportunities they were logged on), of tasks
    completed and of opportunities changed since, and the current week."""
    params = {"tz": settings.TIME_ZONE, "after": marks["activity_id"], "since": marks["since"]}
    cursor.execute(
        f"SELECT {_WEEK.format(column='a.occurred_at')} FROM contacts_activity a "
        "WHERE a.id > %(after)s "
        f"UNION SELECT {_WEEK.format(column='o.closed_at')} FROM contacts_activity a "
        "JOIN opportunities_opportunity o ON o.id = a.opportunity_id "
        "WHERE a.id > %(after)s AND o.closed_at IS NOT NULL "
        f"UNION SELECT {_WEEK.format(column='t.done_at')} FROM contacts_task t "
        "WHERE t.done_at >= %(since)s "
        f"UNION SELECT {_WEEK.format(column='o.closed_at')} FROM opportunities_opportunity o "
        "WHERE o.updated_at >= %(since)s AND o.closed_at IS NOT NULL",
        params,
    )
    weeks = {row[0] for row in cursor.fetchall()}
    weeks.add(monday(timezone.localtime(now).date()))
    return weeks


def activity_rollup_refresh(*, rebuild: bool = False, now: datetime | None = None) -> int:
    """Bring the activity rollup up to date: recount the weeks that changed since the last
    refresh, or every week (`rebuild`, never done, or a day since). Returns the number of weeks
    recounted (0 for a rebuild). Runs in the current tenant's schema; a refresh while another runs
    returns at once (that one does the work), so running it twice is safe."""
    now = now or timezone.now()
    with rollup_locked(ROLLUP, rebuild=rebuild, now=now) as state, connection.cursor() as cursor:
        if state is None:
            return 0
        # Sorts of millions of rows: in memory rather than in temporary files.
        cursor.execute("SET LOCAL work_mem = '256MB'")
        # Read before counting: what arrives while we count is read again next time.
        cursor.execute("SELECT coalesce(max(id), 0) FROM contacts_activity")
        (last_id,) = cursor.fetchone()
        weeks = None if state.full else sorted(_changed_weeks(cursor, state.marks, now))
        _recount(cursor, weeks)
        state.marks = {"activity_id": last_id, "since": now.isoformat()}
    return 0 if weeks is None else len(weeks)


# --- the report ------------------------------------------------------------------------------


NUMBERS = (*COUNTS, "won", "won_activities")


@dataclass
class Counts:
    calls: int = 0
    meetings: int = 0
    emails: int = 0
    letters: int = 0
    tasks_done: int = 0
    won: int = 0
    won_activities: int = 0

    def add(self, other: "Counts") -> None:
        self.calls += other.calls
        self.meetings += other.meetings
        self.emails += other.emails
        self.letters += other.letters
        self.tasks_done += other.tasks_done
        self.won += other.won
        self.won_activities += other.won_activities

    @property
    def activities(self) -> int:
        return self.calls + self.meetings + self.emails + self.letters

    @property
    def total(self) -> int:
        """Activities and tasks done."""
        return self.activities + self.tasks_done

    @property
    def per_won(self) -> float | None:
        """Activities logged on the won opportunities, per opportunity won."""
        return round(self.won_activities / self.won, 1) if self.won else None


@dataclass
class PersonRow:
    user_id: int
    name: str
    counts: Counts
    weeks: int

    @property
    def per_week(self) -> float:
        return round(self.counts.total / self.weeks, 1)


@dataclass
class ActivityReport:
    weeks: list[date]
    people: list[PersonRow]
    total: Counts
    by_week: dict[date, Counts]


def _rows(people: QuerySet, weeks: list[date]) -> QuerySet:
    return ActivityWeek.objects.filter(
        week__gte=weeks[0], week__lte=weeks[-1], user__in=people.values("pk")
    )


def _summed(rows: QuerySet, by: str) -> dict:
    """The rows' counts summed by `by` (a column): {value: Counts}."""
    sums = rows.values(by).annotate(**{f"sum_{n}": Sum(n) for n in NUMBERS}).order_by()
    return {
        key: Counts(*numbers)
        for key, *numbers in sums.values_list(by, *(f"sum_{n}" for n in NUMBERS))
    }


def _names(people: QuerySet, counted) -> dict[int, str]:
    """Everyone in `people` who sells, and anyone else with counts: {id: name}, by name."""
    who = people.filter(pk__in=list(counted)) | people.filter(
        is_active=True, role__in=(Role.SALES, Role.MANAGER)
    )
    return dict(who.order_by("full_name", "pk").values_list("pk", "full_name"))


def activity_report(*, people: QuerySet, start: date, end: date) -> ActivityReport:
    """The counts of `people` (already limited to what the viewer may see) in the weeks from
    the one holding `start` to the one holding `end`, per person and per week. Everyone in
    `people` who sells (or who did something in those weeks) has a row, with zeros if they did
    nothing."""
    weeks = weeks_between(start, end)
    rows = _rows(people, weeks)
    per_person = _summed(rows, "user_id")
    per_week = _summed(rows, "week")
    report = ActivityReport(
        weeks=weeks,
        people=[
            PersonRow(pk, name, per_person.get(pk, Counts()), len(weeks))
            for pk, name in _names(people, per_person).items()
        ],
        total=Counts(),
        by_week={week: per_week.get(week, Counts()) for week in weeks},
    )
    for counts in report.by_week.values():
        report.total.add(counts)
    return report


def activity_grid(*, people: QuerySet, start: date, end: date) -> list[tuple[date, str, Counts]]:
    """(week, name, counts) for every person of the report and every week, for the CSV."""
    weeks = weeks_between(start, end)
    counted: dict[int, dict[date, Counts]] = {}
    for week, user_id, *numbers in _rows(people, weeks).values_list("week", "user_id", *NUMBERS):
        counted.setdefault(user_id, {})[week] = Counts(*numbers)
    names = _names(people, counted)
    return [
        (week, name, counted.get(pk, {}).get(week, Counts()))
        for week in weeks
        for pk, name in names.items()
    ]


def activity_freshness(*, now: datetime | None = None) -> str | None:
    """How fresh the page's numbers are; None if they were never counted."""
    return rollup_freshness(
        ROLLUP,
        every_minutes=REFRESH_MINUTES,
        caveat="Work deleted or reopened in past weeks is recounted daily.",
        now=now,
    )
