"""The filters of the account and contact lists (django-filter). Invalid values make the form
invalid; the list then says so and shows everything, rather than failing."""

import django_filters
from django.db.models import Q

from contacts.models import Account, Contact, CustomerType, LifecycleStage
from contacts.selectors import contacts_matching
from crm.users.models import User


def _active_users(request):
    return User.objects.filter(is_active=True).order_by("full_name")


class ContactFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(method="search", label="Search")
    owner = django_filters.ModelChoiceFilter(queryset=_active_users)
    territory = django_filters.CharFilter(lookup_expr="iexact")
    lifecycle_stage = django_filters.ChoiceFilter(
        choices=LifecycleStage.choices, label="Life-cycle stage"
    )
    customer_type = django_filters.ChoiceFilter(choices=CustomerType.choices)
    tag = django_filters.CharFilter(
        field_name="account__tags", lookup_expr="contains", method="with_tag", label="Account tag"
    )

    class Meta:
        model = Contact
        fields = ["q", "owner", "territory", "lifecycle_stage", "customer_type", "tag"]

    def search(self, queryset, name, value):
        return contacts_matching(queryset, value)

    def with_tag(self, queryset, name, value):
        return queryset.filter(account__tags__contains=[value.strip()])


class AccountFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(method="search", label="Search")
    owner = django_filters.ModelChoiceFilter(queryset=_active_users)
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
