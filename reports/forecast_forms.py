"""The filters of the forecast and pipeline-movement reports (a period and a scope), of their
drill-down (plus the number drilled into), and the quota form."""

from decimal import Decimal

from django import forms
from django.forms.utils import flatatt
from django.utils.html import format_html, format_html_join

from crm import access
from crm.users.models import Role, Team
from reports import forecast
from reports.filters import ReportForm, period_of, today


def _period_choices() -> list:
    return forecast.period_choices(today())


def _current_quarter() -> str:
    return forecast.period_key(period_of("quarter", today()))


class PeriodSelect(forms.Select):
    """The list of periods (some ninety options) written in one pass: Django's template per
    option took longer than the forecast's queries."""

    def render(self, name, value, attrs=None, renderer=None):
        selected = str(value) if value is not None else ""
        groups = (
            (
                group,
                format_html_join(
                    "",
                    '<option value="{}"{}>{}</option>',
                    (
                        (key, " selected" if key == selected else "", label)
                        for key, label in options
                    ),
                ),
            )
            for group, options in self.choices
        )
        return format_html(
            '<select name="{}"{}>{}</select>',
            name,
            flatatt(self.build_attrs(self.attrs, attrs)),
            format_html_join("", '<optgroup label="{}">{}</optgroup>', groups),
        )


class PeriodField(forms.ChoiceField):
    """A month, quarter or year, chosen from a list (see forecast.period_choices)."""

    widget = PeriodSelect

    def __init__(self, **kwargs):
        kwargs.setdefault("initial", _current_quarter)
        # Callable: the list follows the calendar in a long-running process.
        super().__init__(choices=_period_choices, **kwargs)


class ForecastForm(ReportForm):
    period = PeriodField(label="Period")
    team = forms.TypedChoiceField(required=False, coerce=int, empty_value=None)
    territory = forms.CharField(required=False, max_length=100)
    owner = forms.ChoiceField(required=False, label="Salesperson")

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        people = access.people_for(user)
        teams = Team.objects.filter(pk__in=people.values("team_id")).order_by("name")
        self.fields["team"].choices = [("", "All teams")] + [(t.pk, t.name) for t in teams]
        owners = [("", "Everyone")]
        if user.role == Role.ADMIN:
            owners.append((forecast.NO_OWNER, "No owner"))
        owners += [(str(pk), name) for pk, name in people.values_list("pk", "full_name")]
        self.fields["owner"].choices = owners

    @classmethod
    def scope_of(cls, values: dict) -> forecast.Scope:
        return forecast.Scope(
            team_id=values["team"],
            territory=(values["territory"] or "").strip(),
            owner=values["owner"] or "",
        )


class DrillDownForm(ForecastForm):
    measure = forms.ChoiceField(
        label="Number", choices=list(forecast.MEASURES.items()), initial="commit"
    )


class QuotaForm(forms.Form):
    user = forms.ModelChoiceField(queryset=None, label="Salesperson")
    period = PeriodField(label="Period")
    amount = forms.DecimalField(
        min_value=Decimal("0"), max_digits=14, decimal_places=2, label="Quota"
    )

    def __init__(self, *args, actor, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["user"].queryset = quota_people(actor)

    def clean_period(self):
        return forecast.period_from_key(self.cleaned_data["period"])


def quota_people(actor):
    """Whom the actor may set quotas for: the active people who sell, within their reach."""
    return (
        access.people_for(actor)
        .filter(is_active=True, role__in=[Role.SALES, Role.MANAGER, Role.ADMIN])
        .order_by("full_name", "pk")
    )
