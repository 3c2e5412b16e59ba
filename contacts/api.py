"""The REST API's accounts, contacts, activities, tasks and appointments (/api/v1/...).

Reads start from crm.access, like the browser's pages; writes go through contacts.services.
"""

import django_filters
from django.db import transaction
from django.db.models import Q
from drf_spectacular.utils import (
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response

from contacts import services
from contacts.models import (
    Account,
    Activity,
    Appointment,
    Contact,
    CustomerType,
    LifecycleStage,
    Task,
)
from contacts.selectors import contacts_matching
from crm import access
from crm.api.filters import UtcDateTimeFilter, updated_since_filter
from crm.api.idempotency import idempotent
from crm.api.pagination import BY_ID, BY_OCCURRENCE, SYNC_ORDERINGS
from crm.api.serializers import (
    RecordField,
    StrictModelSerializer,
    VersionedSerializer,
    known_records,
)
from crm.api.viewsets import (
    ApiViewSet,
    CreateRecordMixin,
    RecordViewSet,
    RetrieveRecordMixin,
    UpdateRecordMixin,
)
from crm.pagination import Ordering
from crm.users.models import User
from opportunities.models import Opportunity
from tracking.services import field_values

BULK_MAX = 1000

DESCRIBED = {
    "id": "The record's id in this CRM.",
    "owner": "The id of the user (see /users/) who owns the record; the caller by default.",
    "territory": "Sales territory, free text.",
    "customer_type": "Prospect, customer, partner, reseller or other.",
    "external_id": "The record's id in your system: unique, and the key of upserts.",
    "tags": "Labels, e.g. for segments.",
    "created_at": "When the record was created.",
    "updated_at": "When the record last changed; filter with `updated_since` to sync.",
}


def _described(fields, **more) -> dict:
    texts = {**DESCRIBED, **more}
    return {name: {"help_text": texts[name]} for name in fields if name in texts}


def _users():
    return User.objects.filter(is_active=True)


class AccountSerializer(VersionedSerializer):
    owner = RecordField(
        queryset=_users(), required=False, allow_null=True, help_text=DESCRIBED["owner"]
    )
    parent = RecordField(
        queryset=Account.objects.none(),
        required=False,
        allow_null=True,
        help_text="The id of the parent company's account.",
    )

    class Meta:
        model = Account
        fields = [
            "id",
            "name",
            "domain",
            "industry",
            "employees",
            "territory",
            "customer_type",
            "parent",
            "phone",
            "street",
            "postal_code",
            "city",
            "country",
            "external_id",
            "tags",
            "owner",
            "created_at",
            "updated_at",
            "version",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]
        extra_kwargs = _described(
            fields,
            name="The company's name.",
            domain="Its web domain, e.g. example.com.",
            industry="Industry, free text.",
            employees="Company size: number of employees.",
            phone="Main phone number.",
            street="Street address.",
            postal_code="Postal code.",
            city="City.",
            country="Country.",
        )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.user is not None:
            self.fields["parent"].queryset = access.accounts_for(self.user)


class ContactSerializer(VersionedSerializer):
    owner = RecordField(
        queryset=_users(), required=False, allow_null=True, help_text=DESCRIBED["owner"]
    )
    account = RecordField(
        queryset=Account.objects.none(),
        required=False,
        allow_null=True,
        help_text="The id of the account (company) the person works at.",
    )

    class Meta:
        model = Contact
        fields = [
            "id",
            "first_name",
            "last_name",
            "email",
            "other_emails",
            "phone",
            "other_phones",
            "title",
            "account",
            "owner",
            "territory",
            "customer_type",
            "source",
            "lifecycle_stage",
            "interests",
            "do_not_email",
            "do_not_call",
            "do_not_mail",
            "external_id",
            "created_at",
            "updated_at",
            "version",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]
        extra_kwargs = _described(
            fields,
            first_name="Given name.",
            last_name="Family name.",
            email="Main e-mail address.",
            other_emails="More e-mail addresses.",
            phone="Main phone number.",
            other_phones="More phone numbers.",
            title="Job title.",
            source="The marketing tool or campaign that brought the person in.",
            lifecycle_stage="Awareness, education, evaluation, purchase or reorder.",
            interests="What the person said they are interested in.",
            do_not_email="The person asked not to be e-mailed.",
            do_not_call="The person asked not to be called.",
            do_not_mail="The person asked not to get letters.",
        )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.user is not None:
            self.fields["account"].queryset = access.accounts_for(self.user)


class ContactFilter(django_filters.FilterSet):
    updated_since = updated_since_filter("contacts")
    owner = django_filters.NumberFilter(help_text="Owned by this user id.")
    account = django_filters.NumberFilter(help_text="At this account id.")
    lifecycle_stage = django_filters.ChoiceFilter(
        choices=LifecycleStage.choices, help_text="In this life-cycle stage."
    )
    customer_type = django_filters.ChoiceFilter(
        choices=CustomerType.choices, help_text="Of this customer type."
    )
    territory = django_filters.CharFilter(lookup_expr="iexact", help_text="In this territory.")
    email = django_filters.CharFilter(
        lookup_expr="iexact", help_text="With this e-mail address (any case)."
    )
    external_id = django_filters.CharFilter(help_text="With this external id.")
    search = django_filters.CharFilter(
        method="search_text", help_text="Name, e-mail, phone or company containing this text."
    )

    class Meta:
        model = Contact
        fields = []

    def search_text(self, queryset, name, value):
        return contacts_matching(queryset, value)


class AccountFilter(django_filters.FilterSet):
    updated_since = updated_since_filter("accounts")
    owner = django_filters.NumberFilter(help_text="Owned by this user id.")
    customer_type = django_filters.ChoiceFilter(
        choices=CustomerType.choices, help_text="Of this customer type."
    )
    territory = django_filters.CharFilter(lookup_expr="iexact", help_text="In this territory.")
    domain = django_filters.CharFilter(lookup_expr="iexact", help_text="With this web domain.")
    external_id = django_filters.CharFilter(help_text="With this external id.")
    search = django_filters.CharFilter(
        method="search_text", help_text="Name, web domain or phone containing this text."
    )

    class Meta:
        model = Account
        fields = []

    def search_text(self, queryset, name, value):
        # As the shell's search; each column has a trigram index for it.
        return queryset.filter(
            Q(name__icontains=value) | Q(domain__icontains=value) | Q(phone__icontains=value)
        )


def _upsert_schemas(name: str, serializer):
    """The OpenAPI description of a viewset's upsert and bulk actions, for its serializer."""
    bulk = extend_schema(
        request=inline_serializer(
            f"{name}BulkRequest",
            {
                "records": serializer(
                    many=True,
                    help_text=f"Up to {BULK_MAX} records; one with an `external_id` that exists "
                    "updates it, any other is created.",
                )
            },
        ),
        responses={
            200: inline_serializer(
                f"{name}BulkResult",
                {
                    "created": serializers.IntegerField(help_text="Records created."),
                    "updated": serializers.IntegerField(help_text="Records changed."),
                    "ids": serializers.ListField(
                        child=serializers.IntegerField(),
                        help_text="The id of each record, in the order sent.",
                    ),
                },
            ),
            400: OpenApiResponse(
                description="Nothing was applied; `errors` lists each failing record's index "
                "(from 0) and its field errors."
            ),
        },
        description=f"Create or update up to {BULK_MAX} records at once, all or none.",
    )
    upsert = extend_schema(
        request=serializer,
        responses={200: serializer, 201: serializer},
        description=f"Create the {name.lower()} with this external id, or update the one that "
        "has it.",
    )
    return extend_schema_view(upsert=upsert, bulk=bulk)


def _external_key(record) -> str | None:
    """The external id a bulk record is matched on, as the column stores it."""
    if not isinstance(record, dict):
        return None
    value = record.get("external_id")
    if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
        return None
    # Not a value PostgreSQL can even compare; the record's validation reports it.
    if "\x00" in str(value):
        return None
    return str(value)


class UpsertMixin:
    """Upsert by external id, one record (PUT .../external/<id>/) or many (POST .../bulk/)."""

    def _hidden_external_ids(self, external_ids, *, visible) -> set[str]:
        """Of `external_ids`, those taken by records the caller may not see (all but `visible`,
        the ones the caller's records hold): never updated, never shown."""
        taken = self.model.objects.filter(external_id__in=external_ids)
        return set(taken.values_list("external_id", flat=True)) - set(visible)

    @action(detail=False, methods=["put"], url_path=r"external/(?P<external_id>[^/]+)")
    def upsert(self, request, external_id: str):
        if len(external_id) > 100 or "\x00" in external_id:
            raise ValidationError(
                {"external_id": ["At most 100 characters, and no null characters."]}
            )
        with transaction.atomic():
            instance = self.get_queryset().filter(external_id=external_id).first()
            if instance is None and self._hidden_external_ids([external_id], visible=()):
                raise NotFound()
            data = {**request.data, "external_id": external_id}
            if instance is not None:
                self.check_if_match(instance)
            serializer = self.get_serializer(instance, data=data, partial=instance is not None)
            serializer.is_valid(raise_exception=True)
            if instance is None:
                instance = self.create_record(serializer.validated_data)
                return Response(
                    self.get_serializer(instance).data,
                    status=status.HTTP_201_CREATED,
                    headers=self.headers_for(instance),
                )
            instance = self.update_record(instance, serializer.validated_data)
        return self.output(instance)

    @action(detail=False, methods=["post"])
    @idempotent
    def bulk(self, request):
        records = request.data.get("records") if isinstance(request.data, dict) else None
        if not isinstance(records, list) or not 1 <= len(records) <= BULK_MAX:
            raise ValidationError({"records": [f"A list of 1 to {BULK_MAX} records."]})
        external_ids = [k for k in map(_external_key, records) if k is not None]
        existing = {
            r.external_id: r for r in self.get_queryset().filter(external_id__in=external_ids)
        }
        hidden = self._hidden_external_ids(external_ids, visible=existing)
        errors, created, changed, seen = [], [], [], set()
        serializer_class = self.get_serializer_class()
        # Uniqueness of external ids is settled above for the whole batch, not a query a record;
        # so are the related records the batch names. One serializer validates every record.
        context = {**self.get_serializer_context(), "bulk": True}
        creating = serializer_class(context=context)
        context["known"] = known_records(creating, records)
        updating = serializer_class(context=context, partial=True)
        for index, record in enumerate(records):
            if not isinstance(record, dict):
                errors.append({"index": index, "errors": {"detail": ["Not a JSON object."]}})
                continue
            key = _external_key(record)
            if key in hidden:
                taken = {"external_id": ["Taken by a record you cannot see."]}
                errors.append({"index": index, "errors": taken})
                continue
            if key is not None and key in seen:
                errors.append(
                    {"index": index, "errors": {"external_id": ["Twice in this request."]}}
                )
                continue
            seen.add(key)
            instance = existing.get(key)
            try:
                data = (updating if instance else creating).run_validation(record)
            except ValidationError as invalid:
                errors.append({"index": index, "errors": invalid.detail})
                continue
            if instance is None:
                created.append((index, self.model(**data)))
            else:
                before = field_values(instance)
                for name, value in data.items():
                    setattr(instance, name, value)
                changed.append((index, instance, before))
        if errors:
            return Response(
                {
                    "detail": f"Nothing was applied: {len(errors)} of {len(records)} records "
                    "failed.",
                    "errors": errors,
                },
                status=status.HTTP_400_BAD_REQUEST,
            )
        really = services.records_bulk_save(
            actor=request.user,
            created=[r for _, r in created],
            changed=[(r, before) for _, r, before in changed],
            summary=lambda record: f"{request.user} added {record} through the API",
        )
        ids = [None] * len(records)
        for index, record in created:
            ids[index] = record.pk
        for index, record, _ in changed:
            ids[index] = record.pk
        return Response({"created": len(created), "updated": len(really), "ids": ids})


@_upsert_schemas("Account", AccountSerializer)
class AccountViewSet(UpsertMixin, RecordViewSet):
    """Companies the tenant sells to or works with."""

    serializer_class = AccountSerializer
    filterset_class = AccountFilter
    access_action = "accounts.view"
    orderings = SYNC_ORDERINGS
    versioned = True
    model = Account

    def records(self):
        return access.accounts_for(self.request.user)

    def create_record(self, data):
        return services.account_create(actor=self.request.user, **data)

    def update_record(self, instance, data):
        return services.account_update(actor=self.request.user, account=instance, **data)

    def delete_record(self, instance):
        services.account_delete(actor=self.request.user, account=instance)


@_upsert_schemas("Contact", ContactSerializer)
class ContactViewSet(UpsertMixin, RecordViewSet):
    """People the tenant markets to, sells to and serves."""

    serializer_class = ContactSerializer
    filterset_class = ContactFilter
    access_action = "contacts.view"
    orderings = SYNC_ORDERINGS
    versioned = True
    model = Contact

    def records(self):
        return access.contacts_for(self.request.user)

    def create_record(self, data):
        return services.contact_create(actor=self.request.user, **data)

    def update_record(self, instance, data):
        return services.contact_update(actor=self.request.user, contact=instance, **data)

    def delete_record(self, instance):
        services.contact_delete(actor=self.request.user, contact=instance)


class LinkedSerializer(StrictModelSerializer):
    """Something filed against a contact, an account and/or an opportunity (at least one)."""

    contact = RecordField(
        queryset=Contact.objects.none(),
        required=False,
        allow_null=True,
        help_text="The id of the contact it is about.",
    )
    account = RecordField(
        queryset=Account.objects.none(),
        required=False,
        allow_null=True,
        help_text="The id of the account it is about (the contact's, when only a contact is "
        "given).",
    )
    opportunity = RecordField(
        queryset=Opportunity.objects.none(),
        required=False,
        allow_null=True,
        help_text="The id of the opportunity it is about.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.user is not None:
            self.fields["contact"].queryset = access.contacts_for(self.user)
            self.fields["account"].queryset = access.accounts_for(self.user)
            self.fields["opportunity"].queryset = access.opportunities_for(self.user)

    def validate(self, data):
        linked = {**{n: getattr(self.instance, n, None) for n in LINKS}, **data}
        if not any(linked.get(name) for name in LINKS):
            raise serializers.ValidationError(
                {"contact": ["Give a contact, an account or an opportunity."]}
            )
        return data


LINKS = ("contact", "account", "opportunity")


class ActivitySerializer(LinkedSerializer):
    class Meta:
        model = Activity
        fields = [
            "id",
            "kind",
            "subject",
            "notes",
            "outcome",
            "occurred_at",
            "contact",
            "account",
            "opportunity",
            "user",
            "created_at",
        ]
        read_only_fields = ["id", "user", "created_at"]
        extra_kwargs = _described(
            fields,
            kind="Call, meeting, e-mail, letter or note.",
            subject="What it was about.",
            notes="What was said or done.",
            outcome="How it went, e.g. 'Interested'.",
            occurred_at="When it happened (now, if not given).",
            user="The user who logged it.",
        )
        extra_kwargs["occurred_at"]["required"] = False


class TaskSerializer(LinkedSerializer, VersionedSerializer):
    assignee = RecordField(
        queryset=_users(),
        required=False,
        help_text="The user who has to do it; the caller by default.",
    )
    done = serializers.BooleanField(
        required=False, help_text="Whether it is done; set it to tick the task off or reopen it."
    )

    class Meta:
        model = Task
        fields = [
            "id",
            "title",
            "notes",
            "assignee",
            "due_on",
            "priority",
            "done",
            "done_at",
            "contact",
            "account",
            "opportunity",
            "created_by",
            "created_at",
            "updated_at",
            "version",
        ]
        read_only_fields = ["id", "done_at", "created_by", "created_at", "updated_at"]
        extra_kwargs = _described(
            fields,
            title="What has to be done.",
            notes="Details.",
            due_on="The day it is due.",
            priority="1 low, 2 normal, 3 high.",
            done_at="When it was ticked off.",
            created_by="The user who added it.",
        )

    def to_representation(self, instance):
        data = super().to_representation(instance)
        data["done"] = instance.is_done
        return data


class AppointmentSerializer(StrictModelSerializer):
    users = RecordField(
        queryset=_users(), many=True, required=False, help_text="Ids of the attending users."
    )
    contacts = RecordField(
        queryset=Contact.objects.none(),
        many=True,
        required=False,
        help_text="Ids of the attending contacts.",
    )
    account = RecordField(
        queryset=Account.objects.none(),
        required=False,
        allow_null=True,
        help_text="The id of the account it is with.",
    )

    class Meta:
        model = Appointment
        fields = [
            "id",
            "title",
            "starts_at",
            "ends_at",
            "location",
            "notes",
            "organizer",
            "users",
            "contacts",
            "account",
            "remind_minutes_before",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "organizer", "created_at", "updated_at"]
        extra_kwargs = _described(
            fields,
            title="What the meeting is.",
            starts_at="Start (ISO 8601).",
            ends_at="End (ISO 8601), after the start.",
            location="Where.",
            notes="Agenda or notes.",
            organizer="The user who booked it.",
            remind_minutes_before="Minutes before the start that attendees get a reminder.",
        )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.user is not None:
            self.fields["contacts"].child_relation.queryset = access.contacts_for(self.user)
            self.fields["account"].queryset = access.accounts_for(self.user)

    def validate(self, data):
        if data["ends_at"] <= data["starts_at"]:
            raise serializers.ValidationError({"ends_at": ["The end must be after the start."]})
        return data


class LinkedFilter(django_filters.FilterSet):
    contact = django_filters.NumberFilter(help_text="About this contact id.")
    account = django_filters.NumberFilter(help_text="About this account id.")
    opportunity = django_filters.NumberFilter(help_text="About this opportunity id.")


class ActivityFilter(LinkedFilter):
    kind = django_filters.ChoiceFilter(choices=Activity.Kind.choices, help_text="Of this kind.")
    occurred_since = UtcDateTimeFilter(
        field_name="occurred_at", lookup_expr="gte", help_text="Happened at or after this time."
    )
    user = django_filters.NumberFilter(help_text="Logged by this user id.")

    class Meta:
        model = Activity
        fields = []


class TaskFilter(LinkedFilter):
    updated_since = updated_since_filter("tasks")
    assignee = django_filters.NumberFilter(help_text="Assigned to this user id.")
    done = django_filters.BooleanFilter(
        field_name="done_at", lookup_expr="isnull", exclude=True, help_text="Done (true) or open."
    )
    due_before = django_filters.DateFilter(
        field_name="due_on", lookup_expr="lte", help_text="Due on or before this day."
    )

    class Meta:
        model = Task
        fields = []


class AppointmentFilter(django_filters.FilterSet):
    updated_since = updated_since_filter("appointments")
    starts_after = UtcDateTimeFilter(
        field_name="starts_at", lookup_expr="gte", help_text="Starting at or after this time."
    )
    starts_before = UtcDateTimeFilter(
        field_name="starts_at", lookup_expr="lt", help_text="Starting before this time."
    )
    contact = django_filters.NumberFilter(
        field_name="contacts", help_text="With this contact id attending."
    )

    class Meta:
        model = Appointment
        fields = []


class ActivityViewSet(CreateRecordMixin, RetrieveRecordMixin, mixins.ListModelMixin, ApiViewSet):
    """Calls, meetings, e-mails, letters and notes logged against customers."""

    model = Activity
    serializer_class = ActivitySerializer
    filterset_class = ActivityFilter
    access_action = "contacts.view"
    orderings = BY_OCCURRENCE

    def records(self):
        return access.activities_for(self.request.user)

    def create_record(self, data):
        return services.activity_log(actor=self.request.user, **data)


class TaskViewSet(
    CreateRecordMixin,
    UpdateRecordMixin,
    RetrieveRecordMixin,
    mixins.ListModelMixin,
    ApiViewSet,
):
    """Action items: what someone has to do about a customer, by when."""

    model = Task
    serializer_class = TaskSerializer
    filterset_class = TaskFilter
    access_action = "contacts.view"
    # By id first, as before tasks kept a time of change: the default stays what it was.
    orderings = {**BY_ID, **SYNC_ORDERINGS}
    versioned = True
    http_method_names = ["get", "post", "patch", "head", "options"]

    def records(self):
        return access.tasks_for(self.request.user)

    def create_record(self, data):
        done = data.pop("done", False)
        task = services.task_create(actor=self.request.user, **data)
        return services.task_set_done(actor=self.request.user, task=task, done=done)

    def update_record(self, instance, data):
        if "done" in data:
            instance = services.task_set_done(
                actor=self.request.user, task=instance, done=data.pop("done")
            )
        if data:
            instance = services.task_update(actor=self.request.user, task=instance, **data)
        return instance


class AppointmentViewSet(CreateRecordMixin, RetrieveRecordMixin, mixins.ListModelMixin, ApiViewSet):
    """Meetings with colleagues and customers, as in the users' calendar feeds."""

    model = Appointment
    serializer_class = AppointmentSerializer
    filterset_class = AppointmentFilter
    access_action = "contacts.view"
    orderings = {"starts_at": Ordering("starts_at", ("starts_at", "id")), **SYNC_ORDERINGS}

    def records(self):
        return access.appointments_for(self.request.user).prefetch_related("users", "contacts")

    def create_record(self, data):
        return services.appointment_create(actor=self.request.user, **data)
