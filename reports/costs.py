"""Marketing cost and what it bought: a campaign's cost entries (written here), and customer
acquisition cost and cost per lead as a cube sliced by marketing tool, territory, customer type,
product type and period.

Cost: a campaign's cost entries, each spread evenly over its days (first and last day
included), so a period gets the share of its days. A campaign without entries falls back to its
actual cost, untagged, spread over its dates: from `starts_on` (else the day it was created) to
`ends_on` (else today, or the start when that is later). Cost not tagged for a dimension stays
on that dimension's "not tagged" row; it is not spread over the tagged ones.

Customers and leads are the rollups' (reports.attribution): accounts whose first win fell in
the period, and contacts whose first touch did, credited to campaigns by the attribution model.
A customer is sliced by its account's territory and customer type and by the type of the main
product (the line item worth most) of the deal that won it; a lead by the contact's territory
and customer type (leads have no product type). Acquisition cost = cost ÷ customers, cost per
lead = cost ÷ leads, each within a row.
"""

from calendar import monthrange
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.core.exceptions import ValidationError
from django.db import connection, models, transaction

from campaigns.models import Campaign
from contacts.models import CustomerType
from reports.filters import period_of
from reports.marketing import CENT, lead_and_customer_facts
from reports.models import CostEntry
from tracking.models import AuditEntry

ENTRY_FIELDS = (
    "period_start",
    "period_end",
    "amount",
    "territory",
    "customer_type",
    "product_type",
    "note",
)


def _describe(entry: CostEntry) -> str:
    tags = ", ".join(t for t in (entry.territory, entry.customer_type, entry.product_type) if t)
    return f"{entry.period_start}..{entry.period_end} {entry.amount}" + (
        f" ({tags})" if tags else ""
    )


@transaction.atomic
def cost_entries_save(*, actor, campaign: Campaign, entries: list[dict]) -> list[CostEntry]:
    """Replace a campaign's cost entries with `entries` (dicts of CostEntry fields), each
    validated (a period that ends before it starts, a negative amount or an unknown customer
    type is refused with ValidationError naming the field, prefixed by the entry's position).
    Locks the campaign's row, so two people saving its entries do not interleave, and records
    the change in the audit trail."""
    Campaign.objects.select_for_update().filter(pk=campaign.pk).first()
    made = []
    errors = {}
    for position, fields in enumerate(entries):
        entry = CostEntry(campaign=campaign, **{k: fields.get(k, "") for k in ENTRY_FIELDS})
        for tag in ("territory", "customer_type", "product_type", "note"):
            setattr(entry, tag, getattr(entry, tag).strip())
        try:
            entry.full_clean(exclude=["campaign"])
            _entry_check(entry)
        except ValidationError as invalid:
            errors[position] = invalid
        made.append(entry)
    if errors:
        raise ValidationError(
            {
                f"{position}-{name}": messages
                for position, invalid in errors.items()
                for name, messages in invalid.message_dict.items()
            }
        )
    before = [_describe(e) for e in campaign.cost_entries.order_by("period_start", "id")]
    campaign.cost_entries.all().delete()
    CostEntry.objects.bulk_create(made)
    after = [_describe(e) for e in sorted(made, key=lambda e: e.period_start)]
    if before != after:
        AuditEntry.objects.create(
            model=Campaign._meta.label_lower,
            object_id=campaign.pk,
            action="updated",
            changes={"cost_entries": [before, after]},
            actor=actor,
        )
    return made


def _entry_check(entry: CostEntry) -> None:
    problems = {}
    if entry.period_end < entry.period_start:
        problems["period_end"] = "The period ends before it starts."
    if entry.amount < 0:
        problems["amount"] = "A cost cannot be negative."
    if entry.customer_type and entry.customer_type not in CustomerType.values:
        problems["customer_type"] = "Choose a known customer type."
    if problems:
        raise ValidationError(problems)


def actual_cost_split(*, campaign: Campaign, today: date) -> list[dict]:
    """The campaign's actual cost as one untagged entry per calendar month of its dates (the
    same dates the reports fall back to), shared by days and rounded to the cent, the last
    month taking the rounding. Empty without a cost or a start date."""
    if not campaign.actual_cost or campaign.starts_on is None:
        return []
    first = campaign.starts_on
    last = max(campaign.ends_on or today, first)
    months, day = [], first
    while day <= last:
        end = min(date(day.year, day.month, monthrange(day.year, day.month)[1]), last)
        months.append((day, end))
        day = period_of("month", day).end
    days = (last - first).days + 1
    entries, left = [], campaign.actual_cost
    for i, (start, end) in enumerate(months):
        share = (
            left
            if i == len(months) - 1
            else (campaign.actual_cost * ((end - start).days + 1) / days).quantize(
                CENT, ROUND_HALF_UP
            )
        )
        left -= share
        entries.append({"period_start": start, "period_end": end, "amount": share})
    return entries


class Dimension(models.TextChoices):
    TOOL = "tool", "Marketing tool"
    TERRITORY = "territory", "Territory"
    CUSTOMER_TYPE = "customer_type", "Customer type"
    PRODUCT_TYPE = "product_type", "Product type"
    PERIOD = "period", "Period"


NOT_TAGGED = "(not tagged)"
# What the queries below give for each cell, in their order.
CELL_PARTS = ("period", "tool", "territory", "customer_type", "product_type")


@dataclass
class CostRow:
    """One cell of the cube: its labels (one per chosen dimension), the cost, the customers
    and leads credited to it, and what each cost."""

    labels: tuple[str, ...]
    cost: Decimal = Decimal(0)
    customers: Decimal = Decimal(0)
    leads: Decimal | None = Decimal(0)

    @property
    def acquisition_cost(self) -> Decimal | None:
        return (self.cost / self.customers).quantize(CENT) if self.customers else None

    @property
    def cost_per_lead(self) -> Decimal | None:
        return (self.cost / self.leads).quantize(CENT) if self.leads else None


@dataclass
class CostCube:
    dimensions: list[str]
    rows: list[CostRow]
    total: CostRow
    # Leads have no product type: with it chosen, leads and cost per lead are not shown.
    shows_leads: bool


_SPEND = """
WITH spend AS (
    SELECT e.campaign_id, e.period_start AS first_day, e.period_end AS last_day, e.amount,
           e.territory, e.customer_type, e.product_type
    FROM reports_costentry e
    WHERE e.period_end >= e.period_start
    UNION ALL
    SELECT c.id, d.first_day, GREATEST(COALESCE(c.ends_on, CURRENT_DATE), d.first_day),
           c.actual_cost, '', '', ''
    FROM campaigns_campaign c
    CROSS JOIN LATERAL (SELECT COALESCE(c.starts_on, c.created_at::date) AS first_day) d
    WHERE c.actual_cost <> 0
      AND NOT EXISTS (SELECT 1 FROM reports_costentry e WHERE e.campaign_id = c.id)
), buckets AS (
    SELECT * FROM unnest(%(firsts)s::date[], %(lasts)s::date[]) AS b(first_day, last_day)
)
SELECT b.first_day, c.kind, s.territory, s.customer_type, s.product_type,
       sum(s.amount * (LEAST(s.last_day, b.last_day) - GREATEST(s.first_day, b.first_day) + 1)
           / (s.last_day - s.first_day + 1))
FROM spend s
JOIN campaigns_campaign c ON c.id = s.campaign_id
JOIN buckets b ON s.first_day <= b.last_day AND s.last_day >= b.first_day
GROUP BY 1, 2, 3, 4, 5
"""


def _buckets(*, start: date, end: date, period: str | None) -> list[tuple[date, date, str]]:
    """The days start..end cut into calendar periods of the kind (or left whole): each piece's
    first and last day, and its label."""
    if period is None:
        return [(start, end, f"{start} to {end}")]
    found, piece = [], period_of(period, start)
    while piece.start <= end:
        last = min(piece.end - timedelta(days=1), end)
        found.append((max(piece.start, start), last, piece.label))
        piece = piece.next()
    return found


def acquisition_cost(
    *, start: date, end: date, model: str, dimensions: list[str], period: str
) -> CostCube:
    """Cost, customers, leads, acquisition cost and cost per lead for each combination of the
    chosen dimensions in start..end (see the module's docstring for what each means). Two
    queries: cost entries and campaigns, and the marketing rollups."""
    order = [d for d in Dimension.values if d in dimensions]
    pieces = _buckets(start=start, end=end, period=period if Dimension.PERIOD in order else None)
    labels = {first: label for first, _, label in pieces}
    with connection.cursor() as cursor:
        cursor.execute(
            _SPEND,
            {"firsts": [first for first, _, _ in pieces], "lasts": [last for _, last, _ in pieces]},
        )
        spend = cursor.fetchall()
    facts = lead_and_customer_facts(
        start=start,
        end=end,
        model=model,
        groups=order,
        buckets=[(first, last) for first, last, _ in pieces],
    )
    shows_leads = Dimension.PRODUCT_TYPE not in order
    cells: dict[tuple, CostRow] = {}
    total = CostRow(labels=("All",), leads=Decimal(0) if shows_leads else None)

    def cell(values: dict) -> CostRow:
        key = tuple(_key(d, values[d]) for d in order)
        if key not in cells:
            cells[key] = CostRow(
                labels=tuple(_label(d, values[d], labels) for d in order),
                leads=Decimal(0) if shows_leads else None,
            )
        return cells[key]

    for *parts, amount in spend:
        cell(dict(zip(CELL_PARTS, parts, strict=True))).cost += amount
        total.cost += amount
    for row in facts:
        leads, customers = row[len(order) :]
        found = cell(dict(zip(order, row, strict=False)))
        found.customers += customers
        total.customers += customers
        if shows_leads:
            found.leads += leads
            total.leads += leads
    rounded = (
        _rounded(cells[key])
        for key in sorted(cells, key=lambda k: tuple((part == "", part) for part in k))
    )
    rows = [row for row in rounded if row.cost or row.customers or row.leads]
    return CostCube(dimensions=order, rows=rows, total=_rounded(total), shows_leads=shows_leads)


def first_dimension(cube: CostCube) -> list[CostRow]:
    """The cube summed over all but its first dimension: a row for each of its values, in the
    cube's order."""
    rows: dict[str, CostRow] = {}
    for row in cube.rows:
        found = rows.setdefault(row.labels[0], CostRow(labels=row.labels[:1], leads=None))
        found.cost += row.cost
        found.customers += row.customers
    return list(rows.values())


def _key(dimension: str, value) -> object:
    if dimension == Dimension.PERIOD:
        return value
    return (value or "").strip().casefold()


def _label(dimension: str, value, periods: dict[date, str]) -> str:
    if dimension == Dimension.PERIOD:
        return periods[value]
    if not value:
        return NOT_TAGGED
    if dimension == Dimension.TOOL:
        return dict(Campaign.Kind.choices).get(value, value)
    if dimension == Dimension.CUSTOMER_TYPE:
        return dict(CustomerType.choices).get(value, value)
    return value


def _rounded(row: CostRow) -> CostRow:
    return CostRow(
        labels=row.labels,
        cost=Decimal(row.cost).quantize(CENT),
        customers=round(Decimal(row.customers), 2),
        leads=None if row.leads is None else round(Decimal(row.leads), 2),
    )


def cost_campaigns() -> list[dict]:
    """Every campaign with its marketing tool's name, its actual cost and what its cost entries
    add up to (`entries` 0: none, so the reports fall back to the actual cost). One query."""
    tools = dict(Campaign.Kind.choices)
    found = (
        Campaign.objects.order_by("-starts_on", "name")
        .annotate(entries=models.Count("cost_entries"), entered=models.Sum("cost_entries__amount"))
        .values("id", "name", "kind", "starts_on", "ends_on", "actual_cost", "entries", "entered")
    )
    return [{**row, "tool": tools.get(row["kind"], row["kind"])} for row in found]
