"""Choosing one record among many thousands in a form, without a <select> of all of them.

A select of every account is megabytes of HTML on a tenant with hundreds of thousands of
accounts. A picker is a text box with suggestions as you type (an htmx-filled <datalist>); what
is typed resolves to a record as "Name #id" (what a suggestion fills in), a bare id, or an exact
name that only one record has. The field's queryset still bounds what may be chosen, so the
access rules hold.
"""

import re

from django import forms
from django.core.exceptions import ValidationError
from django.urls import reverse

_TRAILING_ID = re.compile(r"#(\d{1,18})\s*$")


def picker_label(record) -> str:
    return f"{record} #{record.pk}"


class PickerInput(forms.TextInput):
    input_type = "search"

    def __init__(self, url_name: str, attrs=None):
        super().__init__(attrs)
        self.url_name = url_name

    def get_context(self, name, value, attrs):
        context = super().get_context(name, value, attrs)
        options_id = f"{context['widget']['attrs'].get('id', name)}-options"
        context["widget"]["attrs"].update(
            {
                "list": options_id,
                "autocomplete": "off",
                "hx-get": reverse(self.url_name),
                "hx-trigger": "input changed delay:250ms",
                "hx-target": f"#{options_id}",
                "hx-vals": f'{{"field": "{name}"}}',
            }
        )
        return context

    def render(self, name, value, attrs=None, renderer=None):
        html = super().render(name, value, attrs, renderer)
        options_id = f"{(attrs or {}).get('id', name)}-options"
        return forms.utils.mark_safe(f'{html}<datalist id="{options_id}"></datalist>')


class RecordPickerField(forms.ModelChoiceField):
    def __init__(self, queryset, *, url_name: str, noun: str, **kwargs):
        kwargs.setdefault("widget", PickerInput(url_name))
        super().__init__(queryset, **kwargs)
        self.noun = noun
        self.help_text = self.help_text or "Type to search, then pick a suggestion."

    def pk_of(self, value) -> int | None:
        """The id that `value` names by its form ("Name #id" or an id), without a query."""
        text = str(getattr(value, "pk", value) or "").strip()
        if text.isdigit():
            return int(text)
        match = _TRAILING_ID.search(text)
        return int(match.group(1)) if match else None

    def prepare_value(self, value):
        if hasattr(value, "pk"):
            return picker_label(value)
        pk = self.pk_of(value)
        if pk is not None:
            record = self.queryset.filter(pk=pk).first()
            return picker_label(record) if record else value
        return value

    def to_python(self, value):
        text = str(value or "").strip()
        if not text:
            return None
        pk = self.pk_of(text)
        if pk is not None:
            record = self.queryset.filter(pk=pk).first()
            if record is not None:
                return record
        named = list(self.queryset.filter(name__iexact=_TRAILING_ID.sub("", text).strip())[:2])
        if len(named) == 1:
            return named[0]
        if named:
            raise ValidationError(
                f"Several {self.noun}s are called “{named[0]}”: pick one of the suggestions.",
                code="ambiguous",
            )
        raise ValidationError(f"No {self.noun} “{text}” found.", code="invalid_choice")
