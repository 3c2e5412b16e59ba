"""The filters of the account and contact lists (django-filter). Invalid values make the form
invalid; the list then says so and shows everything, rather than failing."""

import django_filters
from django.db.models import Q

from contacts.models import Account, Contact, CustomerType, LifecycleStage
from contacts.selectors import contact_search
from crm.forms import ShortChoiceFilter
from crm.users.models import User


def _active_users(request):
    return User.objects.filter(is_active=True).order_by("full_name")


class ContactFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(method="search", label="Search")
    owner = ShortChoiceFilter(queryset=_active_users)
    territory = django_filters.CharFilter(lookup_expr="iexact")
    lifecycle_stage = django_filters.ChoiceFilter(
        choices=LifecycleStage.choices, label="Life-cycle stage"
    )
    customer_type = django_filters.ChoiceFilter(choices=CustomerType.choices)
    tag = django_filters.CharFilter(
        field_name="account__tags", lookup_expr="contains", method="with_tag", label="Account tag"
    )

    # Set by the text search: the capped number of rows it found (see crm.lists).
    known_total = None

    class Meta:
        model = Contact
        fields = ["q", "owner", "territory", "lifecycle_stage", "customer_type", "tag"]

    def filter_queryset(self, queryset):
        """The other filters first and the text search last, over their rows: the search counts
        what it finds as it gathers it, and that is the page's total only if nothing narrows it
        afterwards."""
        data = self.form.cleaned_data
        for name in sorted(data, key=lambda name: name == "q"):
            queryset = self.filters[name].filter(queryset, data[name])
        return queryset

    def search(self, queryset, name, value):
        queryset, self.known_total = contact_search(queryset, value)
        return queryset

    def with_tag(self, queryset, name, value):
        return queryset.filter(account__tags__contains=[value.strip()])


class AccountFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(method="search", label="Search")
    owner = ShortChoiceFilter(queryset=_active_users)
    territory = django_filters.CharFilter(lookup_expr="iexact")
    industry = django_filters.CharFilter(lookup_expr="iexact")
    customer_type = django_filters.ChoiceFilter(choices=CustomerType.choices)
    tag = django_filters.CharFilter(method="with_tag", label="Tag")

    class Meta:
        model = Account
        fields = ["q", "owner", "territory", "industry", "customer_type", "tag"]

    def search(self, queryset, name, value):
        value = value.strip()[:100]
        return queryset.filter(
            Q(name__icontains=value) | Q(domain__icontains=value) | Q(phone__icontains=value)
        )

    def with_tag(self, queryset, name, value):
        return queryset.filter(tags__contains=[value.strip()])
