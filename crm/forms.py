"""What the browser's forms share."""

import re

import django_filters
from django import forms
from django.contrib import messages
from django.contrib.postgres.forms import SimpleArrayField
from django.core.exceptions import ValidationError
from django.forms.models import ModelChoiceIterator


def report_errors(request, form) -> None:
    """Show a quick action's field errors as messages on the page it returns to (the form
    itself is not re-displayed there)."""
    for field, errors in form.errors.items():
        label = form.fields[field].label if field in form.fields else ""
        messages.error(request, f"{label}: {' '.join(errors)}" if label else " ".join(errors))


class ShortChoices(ModelChoiceIterator):
    """The choices of a field over a short table (users, stages) in one plain query.

    Django reads a choice field's queryset with `iterator()`, which on PostgreSQL opens a
    server-side cursor (declare, fetch, close, held past the statement outside a transaction):
    four round trips for a handful of rows, on every page with a filter bar or a quick form."""

    def __iter__(self):
        if self.field.empty_label is not None:
            yield ("", self.field.empty_label)
        for obj in self.queryset.all():
            yield self.choice(obj)


class ShortFilterChoices(django_filters.fields.ModelChoiceIterator, ShortChoices):
    """ShortChoices for a filter: django-filter's iterator (its "null" choice), over the plain
    query."""


class ShortChoiceField(django_filters.fields.ModelChoiceField):
    iterator = ShortFilterChoices


class ShortChoiceFilter(django_filters.ModelChoiceFilter):
    """A filter over a short table, its choices read as ShortChoices."""

    field_class = ShortChoiceField


class LinesField(SimpleArrayField):
    """A list typed one item a line (commas and semicolons separate too, blank lines are
    skipped), for an ArrayField such as a contact's other e-mail addresses. Each item is
    checked by `base_field`, and an error names the item at fault."""

    SEPARATORS = re.compile(r"[\n,;]")

    def __init__(self, base_field, **kwargs):
        kwargs.setdefault("widget", forms.Textarea(attrs={"rows": 2}))
        kwargs.setdefault("help_text", "One a line.")
        super().__init__(base_field, delimiter="\n", **kwargs)

    def to_python(self, value):
        if isinstance(value, str):
            value = [item.strip() for item in self.SEPARATORS.split(value) if item.strip()]
        return super().to_python(value)

    def run_validators(self, value):
        errors = []
        for item in value:
            try:
                self.base_field.run_validators(item)
            except ValidationError as error:
                errors += [f"{item}: {message}" for message in error.messages]
        if errors:
            raise ValidationError(errors)
