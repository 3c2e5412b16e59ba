"""The filters of the opportunity list (django-filter). Invalid values make the form invalid; the
list then says so and shows everything, rather than failing."""

import django_filters
from django.db.models import Q

from crm.forms import ShortChoiceFilter
from crm.users.models import User
from opportunities.models import ForecastCategory, Opportunity, Pipeline, Stage


def _active_users(request):
    return User.objects.filter(is_active=True).order_by("full_name")


STATUS_CHOICES = [("open", "Open"), ("won", "Won"), ("lost", "Lost")]


class OpportunityFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(method="search", label="Search")
    owner = ShortChoiceFilter(queryset=_active_users)
    pipeline = ShortChoiceFilter(
        field_name="stage__pipeline", queryset=Pipeline.objects.order_by("name")
    )
    stage = ShortChoiceFilter(
        queryset=Stage.objects.select_related("pipeline").order_by("pipeline__name", "position")
    )
    status = django_filters.ChoiceFilter(choices=STATUS_CHOICES, method="with_status")
    forecast_category = django_filters.ChoiceFilter(
        choices=ForecastCategory.choices, label="Forecast"
    )
    closes_from = django_filters.DateFilter(
        field_name="expected_close", lookup_expr="gte", label="Closes from"
    )
    closes_until = django_filters.DateFilter(
        field_name="expected_close", lookup_expr="lte", label="until"
    )

    class Meta:
        model = Opportunity
        fields = [
            "q",
            "owner",
            "pipeline",
            "stage",
            "status",
            "forecast_category",
            "closes_from",
            "closes_until",
        ]

    def search(self, queryset, name, value):
        value = value.strip()[:100]
        return queryset.filter(Q(name__icontains=value) | Q(account__name__icontains=value))

    def with_status(self, queryset, name, value):
        if value == "won":
            return queryset.filter(stage__is_won=True)
        if value == "lost":
            return queryset.filter(stage__is_lost=True)
        return queryset.filter(stage__is_won=False, stage__is_lost=False)
