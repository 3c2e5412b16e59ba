"""`Idempotency-Key` on POST: a retried request with the same key gets the first answer again
and creates nothing twice.

The key's row is inserted in the same transaction as the work it guards. A retry that arrives
while the first request is still running waits on the unique index until the first commits,
then finds the stored answer; if the first failed, its row vanished with its rollback and the
retry does the work itself. The same key with another body or path is refused (422): it would
otherwise silently answer a different request.

Only successes are kept, in the database, for KEPT_FOR (a day, then `keys_purge` forgets them): a
refused request (4xx) changed nothing and may be corrected and sent again with its key. A bulk
upsert's answer holds the records' ids, not the records, so even one of 1,000 records is a few
kilobytes.
"""

import hashlib
import json
from datetime import datetime, timedelta
from functools import wraps

from django.db import transaction
from django.utils import timezone
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from integrations.models import IdempotentRequest

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
KEPT_FOR = timedelta(hours=24)


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
            if response.status_code >= 400:
                # A refusal the handler answers rather than raises (a bulk call's failing
                # records) changed nothing: forget the key with it, as a raised one is
                # forgotten, so that the corrected request may use it.
                transaction.set_rollback(True)
                return response
            headers = {
                name: response[name] for name in ("Location", "ETag") if response.has_header(name)
            }
            entry.status_code = response.status_code
            entry.response_body = json.loads(JSONRenderer().render(response.data) or b"null")
            entry.response_headers = headers
            entry.save(update_fields=["status_code", "response_body", "response_headers"])
        return response

    return wrapped


def keys_purge(*, now: datetime | None = None) -> int:
    """Forget the keys older than KEPT_FOR: a retry comes within minutes, not days, and the
    answers would otherwise pile up for good. Returns how many went."""
    cutoff = (now or timezone.now()) - KEPT_FOR
    deleted, _ = IdempotentRequest.objects.filter(created_at__lt=cutoff).delete()
    return deleted
