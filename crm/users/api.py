"""The REST API's users (read-only): who owns records and who tasks go to."""

import django_filters
from rest_framework import mixins, serializers

from crm.api.pagination import BY_ID
from crm.api.serializers import StrictModelSerializer
from crm.api.viewsets import ApiViewSet, RetrieveRecordMixin
from crm.users.models import Role, User


class UserSerializer(StrictModelSerializer):
    team = serializers.StringRelatedField(
        allow_null=True, help_text="The name of the user's team, or null when in none."
    )

    class Meta:
        model = User
        fields = ["id", "email", "full_name", "role", "team", "is_active"]
        read_only_fields = fields
        extra_kwargs = {
            "id": {"help_text": "The user's id (owner, assignee)."},
            "email": {"help_text": "Login e-mail."},
            "full_name": {"help_text": "Name."},
            "role": {"help_text": "Admin, manager, sales, marketing or partner."},
            "is_active": {"help_text": "False once deactivated."},
        }


class UserFilter(django_filters.FilterSet):
    email = django_filters.CharFilter(lookup_expr="iexact", help_text="With this e-mail.")
    role = django_filters.ChoiceFilter(choices=Role.choices, help_text="With this role.")
    is_active = django_filters.BooleanFilter(help_text="Active (true) or deactivated.")

    class Meta:
        model = User
        fields = []


class UserViewSet(RetrieveRecordMixin, mixins.ListModelMixin, ApiViewSet):
    """The tenant's users. A partner's key sees only the users of its own organisation."""

    model = User
    serializer_class = UserSerializer
    filterset_class = UserFilter
    access_action = "accounts.view"
    orderings = BY_ID

    def records(self):
        user = self.request.user
        users = User.objects.select_related("team")
        if user.role == Role.PARTNER:
            return users.filter(partner_organization_id=user.partner_organization_id or -1)
        return users
