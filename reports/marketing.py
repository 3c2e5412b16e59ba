"""Marketing results: the leads, opportunities, won deals, won customers and revenue each
campaign and each marketing tool (campaign type) brought, under the attribution model the user
chooses, and whether customer size varies with what attracted them. Reads the rollups of
reports.attribution (whose docstring defines touches, leads and credit)."""

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import connection, models
from django.utils import timezone

from campaigns.models import Campaign
from reports.attribution import CREDITED, CUSTOMER_FACTS, LEAD_FACTS, local_date
from reports.filters import period_of, today

CENT = Decimal("0.01")


class Attribution(models.TextChoices):
    FIRST = "first", "First touch"
    LAST = "last", "Last touch"
    EVEN = "even", "Even split (multi-touch)"


def day_bounds(start: date, end: date) -> tuple[datetime, datetime]:
    """[start, end] as moments: from the start of `start` to the end of `end`, in the current
    time zone."""
    first = timezone.make_aware(datetime.combine(start, time.min))
    return first, timezone.make_aware(datetime.combine(end + timedelta(days=1), time.min))


def _whole_months(start: date, end: date) -> tuple[date, date]:
    """The calendar months within start..end that the monthly rollup may give whole, as
    [first day, day after); empty (the same day twice) when there is none. A range that runs to
    today or later takes the month it ends in whole: nothing in it is later than now, and the
    rollup's month is counted in the same refresh as its rows."""
    first = start if start.day == 1 else period_of("month", start).end
    after = end + timedelta(days=1)
    if end >= today():
        until = period_of("month", end).end
    else:
        until = after if after.day == 1 else period_of("month", after).start
    return (first, until) if first < until else (start, start)


# What the facts can be grouped by, as SQL over the facts (f), campaigns (c) and buckets (b).
GROUPS = {
    "campaign": "f.campaign_id",
    "tool": "c.kind",
    "territory": "f.territory",
    "customer_type": "f.customer_type",
    "product_type": "f.product_type",
    "period": "b.first_day",
}

_FACTS = """
WITH buckets AS (
    SELECT * FROM unnest(%(firsts)s::date[], %(lasts)s::date[]) AS b(first_day, last_day)
), facts AS (
    SELECT m.month AS day, m.campaign_id, m.territory, m.customer_type, m.product_type,
           m.leads_{model} AS leads, m.customers_{model} AS customers
    FROM reports_marketingmonth m
    WHERE m.month >= %(months_from)s AND m.month < %(months_until)s
    UNION ALL
    SELECT {lead_day}, t.campaign_id, t.territory, t.customer_type, '', {leads}, 0
    FROM reports_marketingtouch t
    WHERE ({lead_edges}) AND {credited}
    UNION ALL
    SELECT {won_day}, t.campaign_id, t.territory, t.customer_type, t.product_type, 0,
           {customers}
    FROM reports_marketingcredit t
    WHERE ({won_edges}) AND t.first_win AND {credited}
)
SELECT {groups}, sum(f.leads), sum(f.customers)
FROM facts f
JOIN campaigns_campaign c ON c.id = f.campaign_id
JOIN buckets b ON f.day >= b.first_day AND f.day <= b.last_day
GROUP BY {groups}
"""


def lead_and_customer_facts(
    *, start: date, end: date, model: str, groups: list[str], buckets: list[tuple[date, date]]
) -> list[tuple]:
    """Leads and won customers credited by `model` in start..end, summed by `groups` (names
    in GROUPS; "period" is the first day of the bucket, among `buckets`: (first day, last day)
    pieces of start..end). Whole months come from the monthly rollup, the days before and
    after them from the rows: one query whatever the period. Campaigns deleted since the last
    refresh are left out. Rows: the group values, then leads and customers."""
    model = Attribution(model)
    months_from, months_until = _whole_months(start, end)
    if months_from == months_until:
        edges = [(start, end + timedelta(days=1))]
    else:
        # The days before the first whole month and after the last, where there are any: a
        # single range lets the scan read the index alone.
        edges = [
            (first, after)
            for first, after in ((start, months_from), (months_until, end + timedelta(days=1)))
            if first < after
        ]
    params = {
        "tz": settings.TIME_ZONE,
        "firsts": [first for first, _ in buckets],
        "lasts": [last for _, last in buckets],
        "months_from": months_from,
        "months_until": months_until,
    }
    for i, (first, after) in enumerate(edges):
        params[f"since{i}"], params[f"until{i}"] = day_bounds(first, after - timedelta(days=1))

    def within(column: str) -> str:
        return (
            " OR ".join(
                f"({column} >= %(since{i})s AND {column} < %(until{i})s)" for i in range(len(edges))
            )
            or "FALSE"
        )

    grouped = ", ".join(GROUPS[name] for name in groups)
    sql = _FACTS.format(
        model=model,
        lead_day=local_date("t.lead_at"),
        won_day=local_date("t.won_at"),
        lead_edges=within("t.lead_at"),
        won_edges=within("t.won_at"),
        credited=CREDITED[model],
        leads=LEAD_FACTS[model],
        customers=CUSTOMER_FACTS[model],
        groups=grouped,
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


@dataclass
class Results:
    """What a campaign, a marketing tool or everything brought in a period."""

    label: str
    kind: str = ""
    campaign_id: int | None = None
    leads: Decimal = Decimal(0)
    opportunities: Decimal = Decimal(0)
    won: Decimal = Decimal(0)
    customers: Decimal = Decimal(0)
    revenue: Decimal = Decimal(0)

    def add(self, other: "Results") -> None:
        for name in ("leads", "opportunities", "won", "customers", "revenue"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def rounded(self) -> "Results":
        """Counts to two places (an even split gives fractions), revenue to the cent."""
        counts = (self.leads, self.opportunities, self.won, self.customers)
        return Results(
            self.label,
            self.kind,
            self.campaign_id,
            *(round(Decimal(count), 2) for count in counts),
            Decimal(self.revenue).quantize(CENT),
        )


@dataclass
class MarketingReport:
    campaigns: list[Results]
    tools: list[Results]
    total: Results = field(default_factory=lambda: Results("All campaigns"))


def marketing_results(*, start: date, end: date, model: str) -> MarketingReport:
    """Per campaign and per marketing tool, for the days start..end: leads whose first touch
    fell in them, opportunities created in them, deals won and customers gained in them and the
    revenue of those wins, each credited to campaigns by `model`. Campaigns with nothing to
    show are listed when their dates overlap the period. One query over the daily rollup."""
    model = Attribution(model)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT campaign_id, sum(leads_{model}), sum(opportunities_{model}), sum(won_{model}),
                   sum(customers_{model}), sum(revenue_{model})
            FROM reports_marketingday WHERE day >= %s AND day <= %s
            GROUP BY campaign_id
            """,
            [start, end],
        )
        found = {campaign_id: sums for campaign_id, *sums in cursor.fetchall()}
    kinds = dict(Campaign.Kind.choices)
    report = MarketingReport(campaigns=[], tools=[])
    tools = {kind: Results(label, kind) for kind, label in Campaign.Kind.choices}
    campaigns = Campaign.objects.only("id", "name", "kind", "starts_on", "ends_on")
    for campaign in campaigns.order_by("name", "id"):
        sums = found.get(campaign.pk)
        if not any(round(value, 2) for value in sums or ()) and not _overlaps(campaign, start, end):
            continue
        row = Results(campaign.name, campaign.kind, campaign.pk, *(sums or ()))
        tools[campaign.kind].add(row)
        report.total.add(row)
        row.kind = kinds.get(campaign.kind, campaign.kind)
        report.campaigns.append(row.rounded())
    report.tools = [tool.rounded() for tool in tools.values()]
    report.total = report.total.rounded()
    return report


def _overlaps(campaign: Campaign, start: date, end: date) -> bool:
    starts, ends = campaign.starts_on, campaign.ends_on
    return (
        (starts is None or starts <= end)
        and (ends is None or ends >= start)
        and (starts is not None or ends is not None)
    )


@dataclass(frozen=True)
class SizeRow:
    """Won deals from one source or marketing tool: how many, how many of them made a new
    customer, their total, average and median amounts."""

    label: str
    deals: int
    customers: int
    revenue: Decimal
    average: Decimal
    median: Decimal


class SizeBy(models.TextChoices):
    SOURCE = "source", "Contact source"
    TOOL = "tool", "First-touch marketing tool"


def customer_size(*, start: date, end: date, by: str) -> list[SizeRow]:
    """Deals won in start..end, grouped by the source of the person they were won through
    (reports.attribution: the primary contact's, else the account's first contact's) or by the
    marketing tool of their first touch, largest average first. One query over the rollup."""
    since, until = day_bounds(start, end)
    if by == SizeBy.TOOL:
        group = "COALESCE(c.kind, '')"
        join = "LEFT JOIN campaigns_campaign c ON c.id = d.first_campaign_id"
    else:
        group, join = "d.source", ""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT {group}, count(*), count(*) FILTER (WHERE d.first_win), sum(d.amount),
                   avg(d.amount), percentile_cont(0.5) WITHIN GROUP (ORDER BY d.amount)
            FROM reports_wondeal d {join}
            WHERE d.won_at >= %s AND d.won_at < %s
            GROUP BY 1
            ORDER BY 5 DESC, 2 DESC, 1
            """,
            [since, until],
        )
        rows = cursor.fetchall()
    kinds = dict(Campaign.Kind.choices)
    blank = "No marketing touch" if by == SizeBy.TOOL else "Unknown"
    return [
        SizeRow(
            label=(kinds.get(key, key) if by == SizeBy.TOOL else key) or blank,
            deals=deals,
            customers=customers,
            revenue=revenue.quantize(CENT),
            average=Decimal(average).quantize(CENT),
            median=Decimal(str(median)).quantize(CENT),
        )
        for key, deals, customers, revenue, average, median in rows
    ]
