"""Cursor pagination for the API, by keyset: a page is the rows after (or before) the last (or
first) row of the page the client holds, found with a row comparison on the sort key, e.g.
`(updated_at, id) > ('2026-11-23T10:00:00', 42)`. PostgreSQL answers it from the matching index
however deep the page, where an offset would read and throw away every row before it.

Cursors are signed, so they cannot be forged into something else; one that does not verify, or
a `page_size` out of bounds, is a 400 that says so.
"""

from collections import OrderedDict
from datetime import date, datetime
from decimal import Decimal

from django.core import signing
from django.db.models import BooleanField
from django.db.models.expressions import RawSQL
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import BasePagination
from rest_framework.response import Response
from rest_framework.utils.urls import remove_query_param, replace_query_param

from crm.pagination import Ordering

# The sort orders the resources offer (the first of a view's `orderings` is its default).
BY_ID = {"id": Ordering("id", ("id",)), "-id": Ordering("-id", ("id",), descending=True)}
# Oldest change first: what a sync with `updated_since` wants.
SYNC_ORDERINGS = {
    "updated_at": Ordering("updated_at", ("updated_at", "id")),
    "-updated_at": Ordering("-updated_at", ("updated_at", "id"), descending=True),
    **BY_ID,
}
# Newest first: what a feed of activities or timeline entries wants.
BY_OCCURRENCE = {
    "-occurred_at": Ordering("-occurred_at", ("occurred_at", "id"), descending=True),
    "occurred_at": Ordering("occurred_at", ("occurred_at", "id")),
    **BY_ID,
}

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
SALT = "crm.api.cursor"


def _key(row, columns) -> list:
    values = []
    for column in columns:
        value = getattr(row, column)
        if isinstance(value, datetime | date):
            value = value.isoformat()
        elif isinstance(value, Decimal):
            value = str(value)
        values.append(value)
    return values


class KeysetCursorPagination(BasePagination):
    """`?ordering=` picks one of the view's `orderings` (default: the first, oldest change first,
    which is what a sync wants with `updated_since`); `?cursor=` comes from `next`/`previous`."""

    cursor_query_param = "cursor"
    page_size_query_param = "page_size"
    ordering_query_param = "ordering"

    def _orderings(self, view) -> dict[str, Ordering]:
        return view.orderings

    def _ordering(self, request, view) -> Ordering:
        orderings = self._orderings(view)
        wanted = request.query_params.get(self.ordering_query_param)
        if wanted is None:
            return next(iter(orderings.values()))
        if wanted not in orderings:
            raise ValidationError(
                {"ordering": [f"Choose one of: {', '.join(orderings)}."]}, code="invalid"
            )
        return orderings[wanted]

    def _page_size(self, request) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return DEFAULT_PAGE_SIZE
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE_SIZE:
            raise ValidationError(
                {"page_size": [f"A whole number from 1 to {MAX_PAGE_SIZE}."]}, code="invalid"
            )
        return int(raw)

    def _decode(self, request, salt: str) -> tuple[str, list] | None:
        raw = request.query_params.get(self.cursor_query_param)
        if raw is None:
            return None
        try:
            direction, values = signing.loads(raw, salt=salt)
        except (signing.BadSignature, TypeError, ValueError):
            raise ValidationError(
                {"cursor": ["Not a cursor this API gave out (use `next` or `previous`)."]},
                code="invalid",
            ) from None
        return direction, values

    def paginate_queryset(self, queryset, request, view=None):
        ordering = self._ordering(request, view)
        size = self._page_size(request)
        table = queryset.model._meta.db_table
        self.salt = f"{SALT}:{table}:{ordering.label}"
        cursor = self._decode(request, self.salt)
        backwards = cursor is not None and cursor[0] == "p"
        descending = ordering.descending != backwards
        sign = "-" if descending else ""
        rows = queryset.order_by(*(f"{sign}{column}" for column in ordering.columns))
        if cursor is not None:
            columns = ", ".join(
                f'"{table}"."{queryset.model._meta.get_field(c).column}"' for c in ordering.columns
            )
            placeholders = ", ".join(["%s"] * len(ordering.columns))
            operator = "<" if descending else ">"
            rows = rows.filter(
                RawSQL(
                    f"({columns}) {operator} ({placeholders})",
                    cursor[1],
                    output_field=BooleanField(),
                )
            )
        page = list(rows[: size + 1])
        more = len(page) > size
        page = page[:size]
        if backwards:
            page.reverse()
        self.request = request
        self.ordering = ordering
        # Is there a page after this one, and one before it?
        self.has_next = more if not backwards else cursor is not None
        self.has_previous = (cursor is not None) if not backwards else more
        self.page = page
        return page

    def _link(self, direction: str, row) -> str:
        token = signing.dumps([direction, _key(row, self.ordering.columns)], salt=self.salt)
        url = self.request.build_absolute_uri()
        return replace_query_param(url, self.cursor_query_param, token)

    def get_next_link(self) -> str | None:
        if not self.has_next or not self.page:
            return None
        return self._link("n", self.page[-1])

    def get_previous_link(self) -> str | None:
        if not self.has_previous:
            return None
        if not self.page:
            return remove_query_param(self.request.build_absolute_uri(), self.cursor_query_param)
        return self._link("p", self.page[0])

    def get_paginated_response(self, data):
        return Response(
            OrderedDict(
                [
                    ("next", self.get_next_link()),
                    ("previous", self.get_previous_link()),
                    ("results", data),
                ]
            )
        )

    def get_paginated_response_schema(self, schema):
        return {
            "type": "object",
            "required": ["next", "previous", "results"],
            "properties": {
                "next": {
                    "type": "string",
                    "nullable": True,
                    "format": "uri",
                    "description": "The next page, or null on the last one.",
                },
                "previous": {
                    "type": "string",
                    "nullable": True,
                    "format": "uri",
                    "description": "The page before, or null on the first one.",
                },
                "results": {**schema, "description": "This page's records, in the order asked."},
            },
        }

    def get_schema_operation_parameters(self, view):
        orderings = ", ".join(f"`{name}`" for name in self._orderings(view))
        return [
            {
                "name": self.cursor_query_param,
                "required": False,
                "in": "query",
                "description": "The page to fetch: the `next` or `previous` link's cursor.",
                "schema": {"type": "string"},
            },
            {
                "name": self.page_size_query_param,
                "required": False,
                "in": "query",
                "description": f"Records per page, 1 to {MAX_PAGE_SIZE} "
                f"(default {DEFAULT_PAGE_SIZE}).",
                "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE},
            },
            {
                "name": self.ordering_query_param,
                "required": False,
                "in": "query",
                "description": f"Sort order, one of {orderings}; the first is the default.",
                "schema": {"type": "string", "enum": list(self._orderings(view))},
            },
        ]
