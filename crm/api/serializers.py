"""Base pieces of the API's serializers."""

from collections.abc import Mapping
from functools import cached_property

from rest_framework import serializers
from rest_framework.validators import UniqueValidator


def version_of(instance) -> str:
    """A record's version: its last change to the microsecond. It goes out as the ETag and
    comes back in `If-Match`; any write moves it on."""
    return str(int(instance.updated_at.timestamp() * 1_000_000))


def help_texts(**texts) -> dict:
    """A serializer Meta's `extra_kwargs` giving each named field its description."""
    return {name: {"help_text": text} for name, text in texts.items()}


class StrictModelSerializer(serializers.ModelSerializer):
    """Refuses fields it does not know, so that a misspelt field is an error the client sees,
    not a value silently dropped. Read-only fields may be sent back as they were read."""

    @cached_property
    def _field_names(self) -> frozenset[str]:
        # Once per serializer: a bulk upsert checks a thousand records with the same one.
        return frozenset(self.fields)

    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            unknown = sorted(set(data) - self._field_names)
            if unknown:
                raise serializers.ValidationError(
                    {name: ["Unknown field."] for name in unknown}, code="unknown_field"
                )
        return super().to_internal_value(data)

    def get_fields(self):
        fields = super().get_fields()
        # A bulk upsert settles external ids for the whole batch at once, not a query a record.
        if self.context.get("bulk") and "external_id" in fields:
            fields["external_id"].validators = [
                v for v in fields["external_id"].validators if not isinstance(v, UniqueValidator)
            ]
        return fields

    @property
    def user(self):
        """The caller, or None when there is none (the schema generator reading fields)."""
        request = self.context.get("request")
        return getattr(request, "user", None)


class VersionedSerializer(StrictModelSerializer):
    version = serializers.SerializerMethodField(
        help_text="Changes with every write; send it back in `If-Match` to update safely."
    )

    def get_version(self, instance) -> str:
        return version_of(instance)


class RecordField(serializers.PrimaryKeyRelatedField):
    """A related record by its id. In a bulk request the view looks up the ids of the whole
    batch at once and hands them over in the context (`known`), instead of a query a record."""

    def to_internal_value(self, data):
        known = self.context.get("known", {}).get(self.field_name)
        if known is None:
            return super().to_internal_value(data)
        if isinstance(data, bool) or not isinstance(data, int | str):
            self.fail("incorrect_type", data_type=type(data).__name__)
        try:
            pk = int(data)
        except ValueError:
            self.fail("incorrect_type", data_type=type(data).__name__)
        if pk not in known:
            self.fail("does_not_exist", pk_value=data)
        return known[pk]


def known_records(serializer, records: list) -> dict[str, dict]:
    """For each RecordField of `serializer`, the records the batch names that the field may
    take, by id: one query a field for the whole batch."""
    known = {}
    for name, field in serializer.fields.items():
        if isinstance(field, RecordField):
            ids = {
                r[name]
                for r in records
                if isinstance(r, dict)
                and isinstance(r.get(name), int)
                and not isinstance(r.get(name), bool)
            }
            known[name] = {o.pk: o for o in field.get_queryset().filter(pk__in=ids)}
    return known
