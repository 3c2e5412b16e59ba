"""Choosing one record among many thousands in a form, without a <select> of all of them.

A select of every account is megabytes of HTML on a tenant with hundreds of thousands of
accounts. A picker is a text box with suggestions as you type (an htmx-filled <datalist>); what
is typed resolves to a record as "Name #id" (what a suggestion fills in), a bare id, or an exact
name that only one record has. The field's queryset still bounds what may be chosen, so the
access rules hold. RecordsPickerField chooses a few records the same way, a box each.
"""

import re
from collections.abc import Callable

from django import forms
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.urls import reverse
from django.utils.safestring import mark_safe

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


class PickerListInput(PickerInput):
    """Picker boxes under one name: one for each record chosen so far, and `blank` more."""

    def __init__(self, url_name: str, *, blank: int = 2, attrs=None):
        super().__init__(url_name, attrs)
        self.blank = blank

    def value_from_datadict(self, data, files, name):
        values = data.getlist(name) if hasattr(data, "getlist") else data.get(name) or []
        values = [values] if isinstance(values, str) else values
        return [value for value in values if value.strip()]

    def value_omitted_from_data(self, data, files, name):
        return False

    def render(self, name, value, attrs=None, renderer=None):
        attrs = attrs or {}
        first_id = attrs.get("id", name)
        html = ""
        for n, box in enumerate([*(value or []), *[""] * self.blank]):
            html += super().render(name, box, {**attrs, "id": f"{first_id}_{n}"}, renderer)
        return mark_safe(html)

    def id_for_label(self, id_):
        return f"{id_}_0" if id_ else id_


def _name_is(text: str) -> Q:
    return Q(name__iexact=text)


class RecordPickerField(forms.ModelChoiceField):
    """One record of `queryset`; `named` gives the condition for records called what was typed
    (for models without a `name` column)."""

    def __init__(
        self,
        queryset,
        *,
        url_name: str,
        noun: str,
        named: Callable[[str], Q] = _name_is,
        **kwargs,
    ):
        kwargs.setdefault("widget", PickerInput(url_name))
        super().__init__(queryset, **kwargs)
        self.noun = noun
        self.named = named
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
        named = list(self.queryset.filter(self.named(_TRAILING_ID.sub("", text).strip()))[:2])
        if len(named) == 1:
            return named[0]
        if named:
            raise ValidationError(
                f"Several {self.noun}s are called “{named[0]}”: pick one of the suggestions.",
                code="ambiguous",
            )
        raise ValidationError(f"No {self.noun} “{text}” found.", code="invalid_choice")


class RecordsPickerField(forms.Field):
    """A few records of `queryset` (at most `most`), each typed in a picker box as
    RecordPickerField takes one; the value is the list of them, each once."""

    def __init__(
        self,
        queryset,
        *,
        url_name: str,
        noun: str,
        named: Callable[[str], Q] = _name_is,
        blank: int = 2,
        most: int = 20,
        **kwargs,
    ):
        self.one = RecordPickerField(queryset, url_name=url_name, noun=noun, named=named)
        self.most = most
        kwargs.setdefault("widget", PickerListInput(url_name, blank=blank))
        super().__init__(**kwargs)
        self.help_text = self.help_text or "Type to search, then pick a suggestion."

    def prepare_value(self, value):
        return [self.one.prepare_value(item) for item in value or []]

    def to_python(self, value):
        if len(value or []) > self.most:
            # Each box is looked up on its own: a bound on the queries a request makes.
            raise ValidationError(f"Choose at most {self.most} {self.one.noun}s.", code="too_many")
        records, errors = [], []
        for text in value or []:
            try:
                record = self.one.to_python(text)
            except ValidationError as error:
                errors.append(error)
            else:
                if record not in records:
                    records.append(record)
        if errors:
            raise ValidationError(errors)
        return records
