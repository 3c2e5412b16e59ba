"""The REST API's timeline, read-only (/api/v1/timeline/): what each customer did and was told,
as the 360-degree page shows it (calls and letters, e-mails opened and clicked, pages viewed,
forms filled, score and life-cycle changes), for the contacts and accounts the caller may see."""

import django_filters

from crm import access
from crm.api.filters import UtcDateTimeFilter
from crm.api.pagination import BY_OCCURRENCE
from crm.api.serializers import StrictModelSerializer, help_texts
from crm.api.viewsets import ReadOnlyViewSet
from tracking.models import TimelineEntry


class TimelineEntrySerializer(StrictModelSerializer):
    class Meta:
        model = TimelineEntry
        fields = [
            "id",
            "kind",
            "occurred_at",
            "summary",
            "detail",
            "count",
            "contact",
            "account",
            "actor",
        ]
        read_only_fields = fields
        extra_kwargs = help_texts(
            id="The entry's id in this CRM.",
            kind="What happened: a call, a letter, a page view, an e-mail opened, a form "
            "filled, a life-cycle change...",
            occurred_at="When it happened (a visit's page views: the latest).",
            summary="One line about it, as the timeline shows it.",
            detail="More about it, where there is more (a note's text, a form's answers).",
            count="How many events it stands for: the page views of one visit are one entry.",
            contact="The contact's id, if it is about a contact (see /contacts/).",
            account="The account's id: the contact's company at the time, or the account "
            "it is about.",
            actor="The id of the user who did it, if a user did.",
        )


class TimelineFilter(django_filters.FilterSet):
    contact = django_filters.NumberFilter(help_text="About this contact id.")
    account = django_filters.NumberFilter(help_text="About this account id or one of its contacts.")
    kind = django_filters.ChoiceFilter(
        choices=TimelineEntry.Kind.choices, help_text="Of this kind."
    )
    occurred_since = UtcDateTimeFilter(
        field_name="occurred_at", lookup_expr="gte", help_text="Happened at or after this time."
    )
    occurred_before = UtcDateTimeFilter(
        field_name="occurred_at", lookup_expr="lt", help_text="Happened before this time."
    )

    class Meta:
        model = TimelineEntry
        fields = []


class TimelineViewSet(ReadOnlyViewSet):
    """What customers did and were told, newest first by default."""

    model = TimelineEntry
    serializer_class = TimelineEntrySerializer
    filterset_class = TimelineFilter
    access_action = "contacts.view"
    orderings = BY_OCCURRENCE

    def records(self):
        return access.timeline_for(self.request.user)
