"""The REST API's marketing side, read-only: campaigns, who each one targets and how far they
went (campaign members), and segments with their contacts (/api/v1/...). The same conventions as
the sales records: keyset cursors, filters for syncing, roles and reach from crm.access."""

import django_filters
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.decorators import action
from rest_framework.generics import get_object_or_404

from campaigns.models import Campaign, CampaignMember, Segment
from campaigns.segments import segment_contacts
from contacts.api import ContactSerializer
from crm import access
from crm.api.filters import UtcDateTimeFilter
from crm.api.pagination import BY_ID, SYNC_ORDERINGS
from crm.api.serializers import StrictModelSerializer, help_texts
from crm.api.viewsets import ReadOnlyViewSet
from crm.pagination import Ordering


class CampaignSerializer(StrictModelSerializer):
    segments = serializers.PrimaryKeyRelatedField(
        many=True, read_only=True, help_text="The ids of the segments it targets (see /segments/)."
    )

    class Meta:
        model = Campaign
        fields = [
            "id",
            "name",
            "kind",
            "status",
            "budget",
            "actual_cost",
            "goal",
            "starts_on",
            "ends_on",
            "owner",
            "segments",
            "email_template",
            "send_state",
            "scheduled_at",
            "sent_at",
            "created_at",
        ]
        read_only_fields = fields
        extra_kwargs = help_texts(
            id="The campaign's id in this CRM.",
            name="The campaign's name.",
            kind="E-mail, web, event, direct mail, advertising or public relations.",
            status="Planned, active or completed.",
            budget="What it may cost, in the tenant's currency.",
            actual_cost="What it has cost so far (acquisition-cost reports divide it).",
            goal="What it is meant to achieve.",
            starts_on="The day it starts, if set.",
            ends_on="The day it ends, if set.",
            owner="The id of the user who runs it (see /users/).",
            email_template="The id of the e-mail it sends, for e-mail campaigns.",
            send_state="Where its e-mail is: not sent, scheduled, sending, paused, cancelled "
            "or sent.",
            scheduled_at="When its e-mail is to go out, if scheduled.",
            sent_at="When its e-mail finished going out.",
            created_at="When the campaign was created.",
        )


class CampaignFilter(django_filters.FilterSet):
    kind = django_filters.ChoiceFilter(choices=Campaign.Kind.choices, help_text="Of this kind.")
    status = django_filters.ChoiceFilter(
        choices=Campaign.Status.choices, help_text="In this status."
    )
    send_state = django_filters.ChoiceFilter(
        choices=Campaign.SendState.choices, help_text="With its e-mail in this state."
    )
    owner = django_filters.NumberFilter(help_text="Run by this user id.")

    class Meta:
        model = Campaign
        fields = []


class CampaignViewSet(ReadOnlyViewSet):
    """Marketing campaigns: e-mails, events, advertising, with their budgets and dates."""

    model = Campaign
    serializer_class = CampaignSerializer
    filterset_class = CampaignFilter
    access_action = "campaigns.view"
    orderings = {**BY_ID, "name": Ordering("name", ("name", "id"))}

    def records(self):
        return Campaign.objects.prefetch_related("segments")


class CampaignMemberSerializer(StrictModelSerializer):
    class Meta:
        model = CampaignMember
        fields = ["id", "campaign", "contact", "status", "added_at", "updated_at"]
        read_only_fields = fields
        extra_kwargs = help_texts(
            id="The membership's id in this CRM.",
            campaign="The campaign's id (see /campaigns/).",
            contact="The contact's id (see /contacts/).",
            status="How far the contact went: targeted, sent, opened, clicked, responded or "
            "converted.",
            added_at="When the contact was added to the campaign.",
            updated_at="When the status last changed; filter with `updated_since` to sync.",
        )


class CampaignMemberFilter(django_filters.FilterSet):
    campaign = django_filters.NumberFilter(help_text="Of this campaign id.")
    contact = django_filters.NumberFilter(help_text="This contact id's memberships.")
    status = django_filters.ChoiceFilter(
        choices=CampaignMember.Status.choices, help_text="That got this far."
    )
    updated_since = UtcDateTimeFilter(
        field_name="updated_at", lookup_expr="gte", help_text="Changed at or after this time."
    )

    class Meta:
        model = CampaignMember
        fields = []


class CampaignMemberViewSet(ReadOnlyViewSet):
    """Who each campaign targets and how far they went, for the contacts the caller may see."""

    model = CampaignMember
    serializer_class = CampaignMemberSerializer
    filterset_class = CampaignMemberFilter
    access_action = "campaigns.view"
    orderings = SYNC_ORDERINGS

    def records(self):
        return access.campaign_members_for(self.request.user)


class SegmentSerializer(StrictModelSerializer):
    class Meta:
        model = Segment
        fields = [
            "id",
            "name",
            "description",
            "kind",
            "rules",
            "frozen_at",
            "created_by",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields
        extra_kwargs = help_texts(
            id="The segment's id in this CRM.",
            name="The segment's name.",
            description="What the segment is for.",
            kind="Dynamic (its rules are worked out each time it is used) or a static list "
            "(frozen from its rules).",
            rules='Its rules: {"op": "and" or "or", "rules": [{"field", "operator", "value"} '
            "or a nested group, ...]}.",
            frozen_at="When a static list was frozen from the rules.",
            created_by="The id of the user who made it.",
            created_at="When the segment was created.",
            updated_at="When it last changed; filter with `updated_since` to sync.",
        )


class SegmentFilter(django_filters.FilterSet):
    kind = django_filters.ChoiceFilter(choices=Segment.Kind.choices, help_text="Of this kind.")
    updated_since = UtcDateTimeFilter(
        field_name="updated_at", lookup_expr="gte", help_text="Changed at or after this time."
    )

    class Meta:
        model = Segment
        fields = []


class SegmentViewSet(ReadOnlyViewSet):
    """Groups of contacts described by rules, which campaigns target."""

    model = Segment
    serializer_class = SegmentSerializer
    filterset_class = SegmentFilter
    access_action = "segments.manage"
    orderings = SYNC_ORDERINGS

    def records(self):
        return Segment.objects.all()

    @extend_schema(
        responses=ContactSerializer(many=True),
        filters=False,
        description="The segment's contacts that the caller may see, paged as /contacts/ are: "
        "its rules worked out now, or the contacts a static list was frozen with. Sync an "
        "audience with `ordering=updated_at`.",
    )
    @action(detail=True, methods=["get"])
    def contacts(self, request, pk=None):
        # Not get_object(): the segments' own filters are not this list's.
        segment = get_object_or_404(self.get_queryset(), pk=pk)
        page = self.paginate_queryset(segment_contacts(segment, user=request.user))
        serializer = ContactSerializer(page, many=True, context=self.get_serializer_context())
        return self.get_paginated_response(serializer.data)
