"""Filters shared by the API's resources."""

from datetime import UTC

import django_filters
from django import forms
from django_filters.fields import IsoDateTimeField


class UtcDateTimeField(IsoDateTimeField):
    """An ISO 8601 time, turned to UTC before it reaches the database: PostgreSQL refuses UTC
    offsets beyond ±15:59 that ISO 8601 (and Python) allow, and a query with one would fail."""

    default_error_messages = {"overflow": "This time is outside the range of dates we keep."}

    def to_python(self, value):
        parsed = super().to_python(value)
        if parsed is None or parsed.tzinfo is None:
            return parsed
        try:
            return parsed.astimezone(UTC)
        except OverflowError:
            raise forms.ValidationError(self.error_messages["overflow"], code="overflow") from None


class UtcDateTimeFilter(django_filters.IsoDateTimeFilter):
    """`IsoDateTimeFilter` for any valid ISO 8601 time, whatever its UTC offset."""

    field_class = UtcDateTimeField


def updated_since_filter(records: str) -> UtcDateTimeFilter:
    """The `updated_since` filter a sync pages with: `records` changed at or after a time."""
    return UtcDateTimeFilter(
        field_name="updated_at",
        lookup_expr="gte",
        help_text=f"Only {records} changed at or after this time (ISO 8601), for syncing.",
    )
