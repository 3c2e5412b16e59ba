"""The REST API's opportunities (with their stage history) and pipelines (with their stages)."""

import django_filters
from django.db.models import Q
from rest_framework import mixins, serializers

from crm import access
from crm.api.filters import updated_since_filter
from crm.api.pagination import SYNC_ORDERINGS
from crm.api.serializers import StrictModelSerializer, VersionedSerializer
from crm.api.viewsets import ApiViewSet, RecordViewSet, RetrieveRecordMixin
from crm.pagination import Ordering
from crm.users.models import User
from opportunities import services
from opportunities.models import (
    ForecastCategory,
    LineItem,
    Opportunity,
    Pipeline,
    Stage,
    StageChange,
)


class StageSerializer(StrictModelSerializer):
    class Meta:
        model = Stage
        fields = ["id", "name", "position", "probability", "is_won", "is_lost"]
        extra_kwargs = {
            "id": {"help_text": "The stage's id."},
            "name": {"help_text": "The stage's name."},
            "position": {"help_text": "Its place in the pipeline, from 0."},
            "probability": {"help_text": "The default chance of winning from here, in percent."},
            "is_won": {"help_text": "Deals here are won."},
            "is_lost": {"help_text": "Deals here are lost."},
        }


class PipelineSerializer(StrictModelSerializer):
    stages = StageSerializer(many=True, read_only=True, help_text="Its stages, in order.")

    class Meta:
        model = Pipeline
        fields = ["id", "name", "stages"]
        extra_kwargs = {
            "id": {"help_text": "The pipeline's id."},
            "name": {"help_text": "The pipeline's name."},
        }


class StageChangeSerializer(StrictModelSerializer):
    class Meta:
        model = StageChange
        fields = ["from_stage", "to_stage", "changed_at", "changed_by"]
        extra_kwargs = {
            "from_stage": {"help_text": "The stage it left (null when it was created)."},
            "to_stage": {"help_text": "The stage it entered."},
            "changed_at": {"help_text": "When."},
            "changed_by": {"help_text": "The user who moved it."},
        }


class LineItemSerializer(StrictModelSerializer):
    total = serializers.DecimalField(
        max_digits=16,
        decimal_places=2,
        read_only=True,
        help_text="Quantity x unit price, less the discount.",
    )

    class Meta:
        model = LineItem
        fields = ["product", "quantity", "unit_price", "discount_percent", "total"]
        read_only_fields = fields
        extra_kwargs = {
            "product": {"help_text": "The product's id."},
            "quantity": {"help_text": "How many."},
            "unit_price": {"help_text": "Price of one."},
            "discount_percent": {"help_text": "Discount in percent."},
        }


class OpportunitySerializer(VersionedSerializer):
    owner = serializers.PrimaryKeyRelatedField(
        queryset=User.objects.filter(is_active=True),
        required=False,
        allow_null=True,
        help_text="The id of the user who owns the deal; the caller by default.",
    )
    account = serializers.PrimaryKeyRelatedField(
        queryset=Opportunity.objects.none(), help_text="The id of the account it is with."
    )
    primary_contact = serializers.PrimaryKeyRelatedField(
        queryset=Opportunity.objects.none(),
        required=False,
        allow_null=True,
        help_text="The id of the main person at the account.",
    )
    stage = serializers.PrimaryKeyRelatedField(
        queryset=Stage.objects.all(),
        help_text="The id of its stage (see /pipelines/); a change is kept in the stage history.",
    )
    stage_history = StageChangeSerializer(
        source="stage_changes",
        many=True,
        read_only=True,
        help_text="Every move between stages, oldest first.",
    )
    line_items = LineItemSerializer(
        many=True, read_only=True, help_text="Products on the deal; their sum is the amount."
    )

    class Meta:
        model = Opportunity
        fields = [
            "id",
            "name",
            "account",
            "primary_contact",
            "owner",
            "stage",
            "amount",
            "currency",
            "expected_close",
            "forecast_category",
            "next_step",
            "close_reason",
            "closed_at",
            "line_items",
            "stage_history",
            "created_at",
            "updated_at",
            "version",
        ]
        read_only_fields = ["id", "closed_at", "created_at", "updated_at"]
        extra_kwargs = {
            "id": {"help_text": "The deal's id in this CRM."},
            "name": {"help_text": "The deal's name."},
            "amount": {"help_text": "What it is worth."},
            "currency": {"help_text": "ISO 4217 code, e.g. EUR."},
            "expected_close": {"help_text": "When it is expected to close."},
            "forecast_category": {"help_text": "Pipeline, best case, commit or closed."},
            "next_step": {"help_text": "What happens next."},
            "close_reason": {"help_text": "Why it was won or lost."},
            "closed_at": {"help_text": "When it was won or lost."},
            "created_at": {"help_text": "When it was created."},
            "updated_at": {"help_text": "When it last changed; filter with `updated_since`."},
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.user is not None:
            self.fields["account"].queryset = access.accounts_for(self.user)
            self.fields["primary_contact"].queryset = access.contacts_for(self.user)

    def validate(self, data):
        account = data.get("account", getattr(self.instance, "account", None))
        contact = data.get("primary_contact", getattr(self.instance, "primary_contact", None))
        if contact is not None and account is not None and contact.account_id != account.pk:
            raise serializers.ValidationError(
                {"primary_contact": ["This person is not at the deal's account."]}
            )
        stage = data.get("stage")
        if (
            self.instance is not None
            and stage
            and stage.pipeline_id != (self.instance.stage.pipeline_id)
        ):
            raise serializers.ValidationError({"stage": ["A stage of the deal's own pipeline."]})
        return data


class OpportunityFilter(django_filters.FilterSet):
    updated_since = updated_since_filter("deals")
    owner = django_filters.NumberFilter(help_text="Owned by this user id.")
    account = django_filters.NumberFilter(help_text="With this account id.")
    stage = django_filters.NumberFilter(help_text="In this stage id.")
    pipeline = django_filters.NumberFilter(
        field_name="stage__pipeline", help_text="In this pipeline id."
    )
    forecast_category = django_filters.ChoiceFilter(
        choices=ForecastCategory.choices, help_text="In this forecast category."
    )
    search = django_filters.CharFilter(
        method="search_text", help_text="Name, or its account's name, containing this text."
    )

    class Meta:
        model = Opportunity
        fields = []

    def search_text(self, queryset, name, value):
        return queryset.filter(Q(name__icontains=value) | Q(account__name__icontains=value))


class OpportunityViewSet(RecordViewSet):
    """Possible sales, moving through the stages of a pipeline."""

    model = Opportunity
    serializer_class = OpportunitySerializer
    filterset_class = OpportunityFilter
    access_action = "opportunities.view"
    versioned = True
    orderings = SYNC_ORDERINGS

    def records(self):
        return (
            access.opportunities_for(self.request.user)
            .select_related("stage")
            .prefetch_related("stage_changes", "line_items")
        )

    def create_record(self, data):
        return services.opportunity_create(actor=self.request.user, **data)

    def update_record(self, instance, data):
        return services.opportunity_update(actor=self.request.user, opportunity=instance, **data)

    def delete_record(self, instance):
        services.opportunity_delete(actor=self.request.user, opportunity=instance)


class PipelineViewSet(RetrieveRecordMixin, mixins.ListModelMixin, ApiViewSet):
    """The tenant's sales processes and their stages (edited in the browser by managers)."""

    model = Pipeline
    serializer_class = PipelineSerializer
    access_action = "opportunities.view"
    orderings = {"id": Ordering("id", ("id",))}

    def records(self):
        return Pipeline.objects.prefetch_related("stages")
