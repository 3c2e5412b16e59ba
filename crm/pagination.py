"""Keyset ("seek") pagination for lists that must stay fast on millions of rows.

A page is the next N rows after the last row of the previous page, found with a row comparison
on the sort key, e.g. `(last_name, first_name, id) > ('Smith', 'Jo', 42)`, which PostgreSQL
answers from the matching index however deep the page is. The cursor carries that key, signed so
that it cannot be forged into something else; a cursor that does not verify gives the first page.
Counting is capped: lists show an exact total up to COUNT_CAP rows and "10,000+" beyond, so no page
ever counts a whole large table.
"""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.core import signing
from django.db.models import BooleanField, QuerySet
from django.db.models.expressions import RawSQL

COUNT_CAP = 10_000
SALT = "crm.pagination"


@dataclass(frozen=True)
class Ordering:
    """A sort a list offers: its label and its key columns (unique thanks to the trailing id)."""

    label: str
    columns: tuple[str, ...]
    descending: bool = False

    def order_by(self) -> list[str]:
        sign = "-" if self.descending else ""
        return [f"{sign}{column}" for column in self.columns]


@dataclass
class Page:
    rows: list
    next_cursor: str | None
    total: int
    total_capped: bool
    cursor_was_invalid: bool = False

    @property
    def total_label(self) -> str:
        return f"{COUNT_CAP:,}+" if self.total_capped else f"{self.total:,}"


def _key(row, columns) -> list:
    values = []
    for column in columns:
        value = getattr(row, column)
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, Decimal):
            # JSON has no decimals; PostgreSQL reads the text back as the column's numeric.
            value = str(value)
        values.append(value)
    return values


def keyset_page(
    queryset: QuerySet,
    ordering: Ordering,
    *,
    cursor: str | None,
    size: int,
    total: int | None = None,
    counted: bool = True,
) -> Page:
    """The page of `queryset` (already filtered) after `cursor`, in `ordering`.

    `total` is the capped count when the caller found it already (a search that gathers its
    matches, see contacts.selectors.contact_search), so that it is not counted twice. A page
    that shows no total (a timeline's) is not `counted`: its total is left at 0."""
    table = queryset.model._meta.db_table
    invalid = False
    rows_qs = queryset.order_by(*ordering.order_by())
    if cursor:
        try:
            after = signing.loads(cursor, salt=f"{SALT}:{table}:{ordering.label}")
        except signing.BadSignature:
            invalid = True
        else:
            columns = ", ".join(
                f'"{table}"."{queryset.model._meta.get_field(c).column}"' for c in ordering.columns
            )
            placeholders = ", ".join(["%s"] * len(ordering.columns))
            operator = "<" if ordering.descending else ">"
            rows_qs = rows_qs.filter(
                RawSQL(
                    f"({columns}) {operator} ({placeholders})", after, output_field=BooleanField()
                )
            )
    rows = list(rows_qs[: size + 1])
    next_cursor = None
    if len(rows) > size:
        rows = rows[:size]
        next_cursor = signing.dumps(
            _key(rows[-1], ordering.columns), salt=f"{SALT}:{table}:{ordering.label}"
        )
    if not counted:
        total = 0
    elif total is None:
        # Only the keys, without the select_related joins the rows need.
        total = queryset.order_by().values("pk")[: COUNT_CAP + 1].count()
    return Page(
        rows=rows,
        next_cursor=next_cursor,
        total=min(total, COUNT_CAP),
        total_capped=total > COUNT_CAP,
        cursor_was_invalid=invalid,
    )
