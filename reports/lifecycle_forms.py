"""The customer life-cycle report's filters: the kind of period and a date range (the periods
it spans), what to break the numbers down by, and the contacts' source, territory and customer
type."""

from functools import cache, partial

from django import forms

from contacts.models import CustomerType
from reports.filters import PERIODS, ReportForm, period_of, today
from reports.lifecycle import dimension_values

GROUP_BY = [
    ("period", "Period"),
    ("source", "Source"),
    ("territory", "Territory"),
    ("customer_type", "Customer type"),
]


def four_quarters_ago():
    """The first day of the quarter three before the current one: the last four quarters."""
    quarter = period_of("quarter", today())
    for _ in range(3):
        quarter = quarter.previous()
    return quarter.start


def _known_values(name: str) -> list[tuple[str, str]]:
    return [("", "All"), *((value, value) for value in dimension_values(name) if value)]


class LifecycleForm(ReportForm):
    period = forms.ChoiceField(choices=PERIODS, initial="quarter", label="Periods")
    start = forms.DateField(
        required=False,
        label="From",
        initial=four_quarters_ago,
        widget=forms.DateInput(format="%Y-%m-%d", attrs={"type": "date"}),
    )
    end = forms.DateField(
        required=False,
        label="To",
        initial=today,
        widget=forms.DateInput(format="%Y-%m-%d", attrs={"type": "date"}),
    )
    group_by = forms.ChoiceField(choices=GROUP_BY, initial="period", label="By")
    source = forms.ChoiceField(required=False)
    territory = forms.ChoiceField(required=False)
    customer_type = forms.ChoiceField(
        required=False, choices=[("", "All"), *CustomerType.choices], label="Customer type"
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in ("source", "territory"):
            # Read when the field is first validated or drawn (not for a form never shown), once.
            self.fields[name].choices = cache(partial(_known_values, name))

    @staticmethod
    def filters_of(values: dict) -> dict[str, str]:
        return {
            name: values[name]
            for name in ("source", "territory", "customer_type")
            if values.get(name)
        }
