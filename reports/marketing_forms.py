"""Filters of the marketing reports, and the form for a campaign's cost entries."""

from datetime import date, timedelta

from django import forms

from contacts.models import CustomerType
from reports.costs import Dimension
from reports.filters import PERIODS, ReportForm, period_of, today
from reports.marketing import Attribution, SizeBy


def year_ago() -> date:
    """The first day of the month eleven months back: to today, the last twelve months."""
    month = period_of("month", today())
    for _ in range(11):
        month = month.previous()
    return month.start


class _PeriodFilters(ReportForm):
    start = forms.DateField(initial=year_ago, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(
        initial=today, label="End (included)", widget=forms.DateInput(attrs={"type": "date"})
    )


class MarketingFilters(_PeriodFilters):
    model = forms.ChoiceField(
        choices=Attribution.choices, initial=Attribution.FIRST, label="Attribution"
    )
    by = forms.ChoiceField(
        choices=[("campaign", "Campaign"), ("tool", "Marketing tool")],
        initial="campaign",
        label="Rows",
    )


class CustomerSizeFilters(_PeriodFilters):
    by = forms.ChoiceField(choices=SizeBy.choices, initial=SizeBy.SOURCE, label="Group by")


class AcquisitionCostFilters(_PeriodFilters):
    model = forms.ChoiceField(
        choices=Attribution.choices, initial=Attribution.FIRST, label="Attribution"
    )
    dimensions = forms.MultipleChoiceField(
        choices=Dimension.choices,
        initial=[Dimension.TOOL],
        widget=forms.CheckboxSelectMultiple,
        label="Slice by",
    )
    period = forms.ChoiceField(choices=PERIODS, initial="month", label="Periods of")


class CostEntryForm(forms.Form):
    """One row of a campaign's cost: an amount over a period, tagged where known."""

    period_start = forms.DateField(label="From", widget=forms.DateInput(attrs={"type": "date"}))
    period_end = forms.DateField(
        label="To (included)", widget=forms.DateInput(attrs={"type": "date"})
    )
    amount = forms.DecimalField(max_digits=14, decimal_places=2, min_value=0)
    territory = forms.CharField(max_length=100, required=False)
    customer_type = forms.ChoiceField(choices=[("", "Any"), *CustomerType.choices], required=False)
    product_type = forms.CharField(max_length=100, required=False)
    note = forms.CharField(max_length=200, required=False)

    def clean(self):
        data = super().clean()
        start, end = data.get("period_start"), data.get("period_end")
        if start and end and end < start:
            self.add_error("period_end", "The period ends before it starts.")
        elif start and end and end - start > timedelta(days=366 * 5):
            self.add_error("period_end", "Split a cost over at most five years.")
        return data


CostEntryFormSet = forms.formset_factory(
    CostEntryForm, extra=3, can_delete=True, max_num=200, validate_max=True
)
