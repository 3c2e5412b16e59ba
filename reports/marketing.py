"""Marketing results: the leads, opportunities, won deals, won customers and revenue each
campaign and each marketing tool (campaign type) brought, under the attribution model the user
chooses, and whether customer size varies with what attracted them. Reads the rollups of
reports.attribution (whose docstring defines touches, leads and credit)."""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.db import connection, models
from django.utils import timezone

from campaigns.models import Campaign

CENT = Decimal("0.01")


class Attribution(models.TextChoices):
    FIRST = "first", "First touch"
    LAST = "last", "Last touch"
    EVEN = "even", "Even split (multi-touch)"


def credit_sql(model: str) -> tuple[str, str]:
    """SQL for a campaign's share of the opportunity on a MarketingCredit row under `model`,
    and the condition that leaves out the rows whose share is nothing."""
    if model == Attribution.EVEN:
        return "touches::numeric / of_touches", "TRUE"
    flag = "is_last" if model == Attribution.LAST else "is_first"
    return f"CASE WHEN {flag} THEN 1 ELSE 0 END", flag


def lead_credit_sql(model: str) -> tuple[str, str]:
    """The same for a campaign's share of the lead on a MarketingTouch row."""
    if model == Attribution.EVEN:
        return "1::numeric / of_touches", "TRUE"
    return credit_sql(model)


def day_bounds(start: date, end: date) -> tuple[datetime, datetime]:
    """[start, end] as moments: from the start of `start` to the end of `end`, in the current
    time zone."""
    first = timezone.make_aware(datetime.combine(start, time.min))
    return first, timezone.make_aware(datetime.combine(end + timedelta(days=1), time.min))


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
        return Results(
            self.label,
            self.kind,
            self.campaign_id,
            *(round(Decimal(v), 2) for v in (self.leads, self.opportunities, self.won)),
            round(Decimal(self.customers), 2),
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
    show are listed when their dates overlap the period. Two queries over the rollups."""
    since, until = day_bounds(start, end)
    credit, only = credit_sql(model)
    lead_credit, lead_only = lead_credit_sql(model)
    found: dict[int, Results] = defaultdict(lambda: Results(""))
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT campaign_id, sum({lead_credit}) FROM reports_marketingtouch
            WHERE lead_at >= %(since)s AND lead_at < %(until)s AND {lead_only}
            GROUP BY campaign_id
            """,
            {"since": since, "until": until},
        )
        for campaign_id, leads in cursor.fetchall():
            found[campaign_id].leads = leads
        cursor.execute(
            f"""
            SELECT campaign_id,
                   sum({credit}) FILTER (WHERE created_at >= %(since)s AND created_at < %(until)s),
                   sum({credit}) FILTER (WHERE won_at >= %(since)s AND won_at < %(until)s),
                   sum({credit}) FILTER (WHERE first_win AND won_at >= %(since)s
                                          AND won_at < %(until)s),
                   sum({credit} * amount) FILTER (WHERE won_at >= %(since)s AND won_at < %(until)s)
            FROM reports_marketingcredit
            WHERE ((created_at >= %(since)s AND created_at < %(until)s)
                   OR (won_at >= %(since)s AND won_at < %(until)s))
              AND {only}
            GROUP BY campaign_id
            """,
            {"since": since, "until": until},
        )
        for campaign_id, opportunities, won, customers, revenue in cursor.fetchall():
            row = found[campaign_id]
            row.opportunities, row.won = opportunities or 0, won or 0
            row.customers, row.revenue = customers or 0, revenue or 0

    kinds = dict(Campaign.Kind.choices)
    report = MarketingReport(campaigns=[], tools=[])
    tools = {kind: Results(label, kind) for kind, label in Campaign.Kind.choices}
    for campaign in Campaign.objects.only("id", "name", "kind", "starts_on", "ends_on").order_by(
        "name", "id"
    ):
        row = found.pop(campaign.pk, None)
        if row is None and not _overlaps(campaign, start, end):
            continue
        row = row or Results("")
        row.label, row.kind, row.campaign_id = campaign.name, campaign.kind, campaign.pk
        report.campaigns.append(row.rounded())
        tools[campaign.kind].add(row)
        report.total.add(row)
    # What is left belongs to campaigns deleted since the last refresh.
    report.tools = [tool.rounded() for tool in tools.values()]
    report.total = report.total.rounded()
    for row in report.campaigns:
        row.kind = kinds.get(row.kind, row.kind)
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
            ORDER BY 5 DESC, 1
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
