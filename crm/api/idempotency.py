"""`Idempotency-Key` on POST: a retried request with the same key gets the first answer again
and creates nothing twice.

The key's row is inserted in the same transaction as the work it guards. A retry that arrives
while the first request is still running waits on the unique index until the first commits,
then finds the stored answer; if the first failed, its row vanished with its rollback and the
retry does the work itself. The same key with another body or path is refused (422): it would
otherwise silently answer a different request.
"""

import hashlib
import json
from functools import wraps

from django.db import transaction
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from integrations.models import IdempotentRequest

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255


def _fingerprint(request) -> str:
    body = json.dumps(request.data, sort_keys=True, default=str).encode()
    return hashlib.sha256(request.method.encode() + b" " + request.path.encode() + body).hexdigest()


def idempotent(handler):
    """Wrap a POST handler of a viewset so that it honours the `Idempotency-Key` header."""

    @wraps(handler)
    def wrapped(self, request, *args, **kwargs):
        key = request.headers.get(HEADER)
        if key is None:
            return handler(self, request, *args, **kwargs)
        if not key.strip() or len(key) > MAX_KEY_LENGTH or not key.isprintable():
            raise ValidationError(
                {HEADER: [f"1 to {MAX_KEY_LENGTH} printable characters."]}, code="invalid"
            )
        fingerprint = _fingerprint(request)
        with transaction.atomic():
            entry, created = IdempotentRequest.objects.get_or_create(
                user=request.user,
                key=key,
                defaults={
                    "method": request.method,
                    "path": request.path[:500],
                    "request_hash": fingerprint,
                },
            )
            if not created:
                if entry.request_hash != fingerprint:
                    return Response(
                        {
                            HEADER: [
                                "This key was used for a different request; use a new key "
                                "for a new request."
                            ]
                        },
                        status=status.HTTP_422_UNPROCESSABLE_ENTITY,
                    )
                replay = Response(
                    entry.response_body, status=entry.status_code, headers=entry.response_headers
                )
                replay["Idempotent-Replayed"] = "true"
                return replay
            response = handler(self, request, *args, **kwargs)
            headers = {
                name: response[name] for name in ("Location", "ETag") if response.has_header(name)
            }
            entry.status_code = response.status_code
            entry.response_body = json.loads(JSONRenderer().render(response.data) or b"null")
            entry.response_headers = headers
            entry.save(update_fields=["status_code", "response_body", "response_headers"])
        return response

    return wrapped
