"""The sales activity report's filters: a date range (read in whole weeks), a team and a
salesperson, each within the viewer's reach (crm.access.people_for)."""

from datetime import timedelta
from functools import cache

from django import forms

from crm import access
from crm.users.models import Role, Team
from reports.activity import monday
from reports.filters import ReportForm, today

WEEKS = 12
# Whom the salesperson filter offers (the table also lists anyone else who logged work).
SELLERS = (Role.SALES, Role.MANAGER, Role.ADMIN)


def twelve_weeks_ago():
    return monday(today()) - timedelta(weeks=WEEKS - 1)


class ActivityForm(ReportForm):
    start = forms.DateField(
        required=False,
        label="From",
        initial=twelve_weeks_ago,
        widget=forms.DateInput(format="%Y-%m-%d", attrs={"type": "date"}),
    )
    end = forms.DateField(
        required=False,
        label="To",
        initial=today,
        widget=forms.DateInput(format="%Y-%m-%d", attrs={"type": "date"}),
    )
    team = forms.TypedChoiceField(required=False, coerce=int, empty_value=None)
    user = forms.TypedChoiceField(required=False, coerce=int, empty_value=None, label="Salesperson")

    def __init__(self, *args, viewer, **kwargs):
        super().__init__(*args, **kwargs)
        people = access.people_for(viewer)
        teams = Team.objects.filter(pk__in=people.values("team_id")).order_by("name")
        sellers = people.filter(role__in=SELLERS).order_by("full_name", "pk")
        # Read when the field is first validated or drawn (not for a form never shown), once.
        self.fields["team"].choices = cache(
            lambda: [("", "All teams"), *teams.values_list("pk", "name")]
        )
        self.fields["user"].choices = cache(
            lambda: [("", "Everyone"), *sellers.values_list("pk", "full_name")]
        )

    @staticmethod
    def people_of(values: dict, *, viewer):
        """The people the report covers: the viewer's reach, narrowed to a team or a person."""
        people = access.people_for(viewer)
        if values["team"] is not None:
            people = people.filter(team_id=values["team"])
        if values["user"] is not None:
            people = people.filter(pk=values["user"])
        return people
