"""Report filters read from the URL. A value that does not parse, or a range that makes no
sense, never fails the page: the page says what was wrong and shows the default instead."""

from dataclasses import dataclass
from datetime import date, timedelta

from django import forms
from django.http import QueryDict
from django.utils import timezone

PERIODS = [("month", "Month"), ("quarter", "Quarter"), ("year", "Year")]


@dataclass(frozen=True)
class Period:
    """A calendar month, quarter or year: [start, end)."""

    kind: str
    start: date
    end: date

    @property
    def label(self) -> str:
        if self.kind == "month":
            return self.start.strftime("%b %Y")
        if self.kind == "quarter":
            return f"Q{(self.start.month - 1) // 3 + 1} {self.start.year}"
        return str(self.start.year)

    def next(self) -> "Period":
        return period_of(self.kind, self.end)

    def previous(self) -> "Period":
        return period_of(self.kind, self.start - timedelta(days=1))


def period_of(kind: str, day: date) -> Period:
    """The month, quarter or year that holds `day`."""
    if kind == "year":
        start, end = date(day.year, 1, 1), date(day.year + 1, 1, 1)
    else:
        months = 3 if kind == "quarter" else 1
        first = (day.month - 1) // months * months + 1
        start = date(day.year, first, 1)
        month = first + months
        end = date(day.year + (month > 12), (month - 1) % 12 + 1, 1)
    return Period(kind, start, end)


def periods(kind: str, start: date, end: date) -> list[Period]:
    """The periods of a kind from the one holding `start` to the one holding `end`."""
    found = [period_of(kind, start)]
    while found[-1].end <= end:
        found.append(found[-1].next())
    return found


class ReportForm(forms.Form):
    """Base for a report's filters: subclasses add fields; `read` gives the values to use."""

    MAX_DAYS = 366 * 5

    def clean(self):
        data = super().clean()
        start, end = data.get("start"), data.get("end")
        if start and end:
            if end < start:
                self.add_error("end", "The end is before the start.")
            elif (end - start).days > self.MAX_DAYS:
                self.add_error("end", "Choose at most five years.")
        return data

    @classmethod
    def read(cls, params, **kwargs) -> tuple["ReportForm", dict, list[str]]:
        """The form to show, the values to use (each invalid field replaced by its default), and
        the problems to show. A filter missing from the URL takes its default silently; when a
        value is refused, the form shows the values the page uses, not the refused ones."""
        fields = cls(**kwargs).fields
        defaults = {
            name: field.initial() if callable(field.initial) else field.initial
            for name, field in fields.items()
        }
        if not params:
            return cls(initial=defaults, **kwargs), defaults, []
        data = QueryDict(mutable=True)
        for name, value in defaults.items():
            if value is not None:
                data.setlist(name, [str(v) for v in value] if isinstance(value, list) else [value])
        for name in params:
            data.setlist(
                name, params.getlist(name) if hasattr(params, "getlist") else [params[name]]
            )
        form = cls(data, **kwargs)
        if form.is_valid():
            return form, {**defaults, **form.cleaned_data}, []
        values = {**defaults, **form.cleaned_data}
        problems = []
        for name, errors in form.errors.items():
            field = fields.get(name)
            label = (field.label or name.replace("_", " ").capitalize()) if field else "Filters"
            problems.extend(f"{label}: {error}" for error in errors)
            if name in values:
                values[name] = defaults.get(name)
        if "start" in form.errors or "end" in form.errors:
            # A range is used whole or not at all.
            values["start"], values["end"] = defaults.get("start"), defaults.get("end")
        return cls(initial=values, **kwargs), values, problems


def today() -> date:
    return timezone.localdate()
