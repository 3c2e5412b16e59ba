"""Every API error is JSON that names the problem, never an HTML page or a 500.

DRF answers its own exceptions (400 with the fields at fault, 401, 403, 404, 405, 415, 429);
this adds the errors that come from Django or the database beneath it: a body over the size
limit (413), a model's own validation (400), a unique or protected row (409).
"""

from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError
from django.db.models import ProtectedError
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


class PreconditionFailed(Exception):
    """The record changed since the version the client sent in `If-Match`."""

    def __init__(self, current_version: str):
        self.current_version = current_version


def exception_handler(exc, context):
    response = drf_exception_handler(exc, context)
    if response is not None:
        return response
    if isinstance(exc, RequestDataTooBig):
        return Response(
            {"detail": "The request body is too large."},
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    if isinstance(exc, DjangoValidationError):
        body = exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages}
        return Response(body, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, PreconditionFailed):
        return Response(
            {
                "detail": "The record changed since you read it: fetch it again and re-apply "
                "your change.",
                "version": exc.current_version,
            },
            status=status.HTTP_412_PRECONDITION_FAILED,
            headers={"ETag": f'"{exc.current_version}"'},
        )
    if isinstance(exc, ProtectedError):
        return Response(
            {"detail": "Other records depend on this one; it cannot be deleted."},
            status=status.HTTP_409_CONFLICT,
        )
    if isinstance(exc, IntegrityError):
        return Response(
            {"detail": "This conflicts with a record that exists (a unique value is taken)."},
            status=status.HTTP_409_CONFLICT,
        )
    return None
