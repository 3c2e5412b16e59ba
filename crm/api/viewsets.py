"""The base of the API's viewsets: who may call (crm.access, as in the browser), which records
(the same `*_for(user)` querysets, so anything out of reach is a 404), and how writes go
through the services, with idempotent POSTs and optimistic concurrency (ETag / If-Match)."""

from django.db import transaction
from rest_framework import mixins, status, viewsets
from rest_framework.permissions import BasePermission
from rest_framework.response import Response

from crm.access import can
from crm.api.errors import PreconditionFailed
from crm.api.idempotency import idempotent
from crm.api.serializers import version_of


class RoleAllowed(BasePermission):
    """The view's `access_action` (a crm.access rule) decides, as for the browser's pages."""

    message = "Your role may not use this resource."

    def has_permission(self, request, view):
        return can(request.user, view.access_action)


class ApiViewSet(viewsets.GenericViewSet):
    """Subclasses name their `model` and give the caller's `records()`, from crm.access."""

    model: type
    access_action: str
    orderings: dict
    versioned = False
    # Any path segment: an id that is not a number is a JSON 404 from the view, not the site's
    # HTML "not found" page for an address no route matches.
    lookup_value_regex = "[^/]+"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # drf-spectacular reading the view
            return self.model.objects.none()
        return self.records()

    def get_permissions(self):
        return [*super().get_permissions(), RoleAllowed()]

    def initial(self, request, *args, **kwargs):
        """DRF's, but with the call counted against the rate limit before its permissions are
        checked (DRF checks them first): so a call refused for its role or a read-only key (403)
        is counted, and told its allowance, like any other. A call without valid credentials
        is refused (401) before counting, as is one failing the session's CSRF check, so that a
        forged request cannot use up its victim's allowance."""
        self.format_kwarg = self.get_format_suffix(**kwargs)
        request.accepted_renderer, request.accepted_media_type = self.perform_content_negotiation(
            request
        )
        request.version, request.versioning_scheme = self.determine_version(
            request, *args, **kwargs
        )
        self.perform_authentication(request)
        if request.user is None:
            self.check_permissions(request)  # no credentials: 401, uncounted
        self.check_throttles(request)
        self.check_permissions(request)

    def headers_for(self, instance, *, created: bool = False) -> dict[str, str]:
        headers = {}
        if self.versioned:
            headers["ETag"] = f'"{version_of(instance)}"'
        if created:
            headers["Location"] = self.request.build_absolute_uri(f"{instance.pk}/")
        return headers

    def check_if_match(self, instance) -> None:
        """With `If-Match`, refuse (412) a write to a record that changed since that version.
        Locks the row until the write's transaction ends, so the check cannot go stale."""
        expected = self.request.headers.get("If-Match")
        if not self.versioned or expected is None:
            return
        locked = type(instance).objects.select_for_update().get(pk=instance.pk)
        current = version_of(locked)
        if expected.strip() != "*" and current not in {
            tag.strip().removeprefix("W/").strip('"') for tag in expected.split(",")
        }:
            raise PreconditionFailed(current)

    def output(self, instance, **kwargs) -> Response:
        serializer = self.get_serializer(instance)
        return Response(serializer.data, headers=self.headers_for(instance), **kwargs)


class RetrieveRecordMixin:
    def retrieve(self, request, *args, **kwargs):
        return self.output(self.get_object())


class CreateRecordMixin:
    @idempotent
    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        instance = self.create_record(serializer.validated_data)
        return Response(
            self.get_serializer(instance).data,
            status=status.HTTP_201_CREATED,
            headers=self.headers_for(instance, created=True),
        )


class UpdateRecordMixin:
    def update(self, request, *args, partial=False, **kwargs):
        with transaction.atomic():
            instance = self.get_object()
            self.check_if_match(instance)
            serializer = self.get_serializer(instance, data=request.data, partial=partial)
            serializer.is_valid(raise_exception=True)
            instance = self.update_record(instance, serializer.validated_data)
        return self.output(instance)

    def partial_update(self, request, *args, **kwargs):
        return self.update(request, *args, partial=True, **kwargs)


class DestroyRecordMixin:
    def destroy(self, request, *args, **kwargs):
        with transaction.atomic():
            instance = self.get_object()
            self.check_if_match(instance)
            self.delete_record(instance)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ReadOnlyViewSet(RetrieveRecordMixin, mixins.ListModelMixin, ApiViewSet):
    pass


class RecordViewSet(
    CreateRecordMixin,
    UpdateRecordMixin,
    DestroyRecordMixin,
    RetrieveRecordMixin,
    mixins.ListModelMixin,
    ApiViewSet,
):
    """Full CRUD; subclasses write through services in create_record / update_record /
    delete_record."""
