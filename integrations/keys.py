"""API keys: creating, revoking and checking them. Each function runs in the schema of the
current tenant, so a key only ever exists (and is only ever found) in its own tenant.

A key reads `crm_<prefix>_<secret>`. The prefix is stored in clear and finds the key's row; of
the whole key only a SHA-256 is kept. The secret is 32 random bytes, so a plain fast hash is
enough: slow, salted hashes protect guessable passwords, and nobody can guess 2**256 values.
"""

import hashlib
import hmac
import secrets
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from integrations.models import ApiKey
from tracking.services import audit_record, field_values

KEY_PREFIX = "crm"
# Within this time of the last recorded use, a call does not write `last_used_at` again.
LAST_USED_PRECISION = timedelta(minutes=1)


def _hash(key_text: str) -> str:
    return hashlib.sha256(key_text.encode()).hexdigest()


def api_key_create(*, actor, user, name: str, read_only: bool) -> tuple[ApiKey, str]:
    """Make a key that acts as `user`; returns the row and the key's text, which is shown once
    and cannot be recovered afterwards."""
    name = name.strip()
    if not name:
        raise ValidationError({"name": "Give the key a name (who or what uses it)."})
    if not user.is_active:
        raise ValidationError({"user": "A key cannot act as a deactivated user."})
    prefix = secrets.token_hex(6)
    key_text = f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    key = ApiKey(
        name=name,
        prefix=prefix,
        secret_hash=_hash(key_text),
        user=user,
        read_only=read_only,
        created_by=actor,
    )
    # No creator when the platform operator makes the key (create_api_key).
    key.full_clean(exclude=["created_by"])
    with transaction.atomic():
        key.save()
        audit_record(instance=key, action="created", actor=actor)
    return key, key_text


def api_key_revoke(*, actor, key: ApiKey) -> bool:
    """Revoke the key from now on; False when it was revoked already (nothing changes then)."""
    with transaction.atomic():
        locked = ApiKey.objects.select_for_update().get(pk=key.pk)
        if locked.revoked_at is not None:
            return False
        before = field_values(locked)
        locked.revoked_at = timezone.now()
        locked.save(update_fields=["revoked_at"])
        audit_record(instance=locked, action="revoked", actor=actor, before=before)
    key.revoked_at = locked.revoked_at
    return True


def api_key_authenticate(key_text: str) -> ApiKey | None:
    """The live key with this text, its user loaded, or None: unknown, wrong secret, revoked,
    or its user deactivated all give the same None, so a caller learns nothing from the answer."""
    parts = key_text.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX or not parts[1] or not parts[2]:
        return None
    key = (
        ApiKey.objects.select_related("user")
        .filter(prefix=parts[1], revoked_at__isnull=True)
        .first()
    )
    if key is None or not hmac.compare_digest(key.secret_hash, _hash(key_text)):
        return None
    if not key.user.is_active:
        return None
    _mark_used(key)
    return key


def _mark_used(key: ApiKey) -> None:
    """Record the use at most once a minute: busy keys would otherwise write their row on every
    call. The condition in the UPDATE keeps concurrent calls from all writing it."""
    now = timezone.now()
    stale = now - LAST_USED_PRECISION
    if key.last_used_at is not None and key.last_used_at >= stale:
        return
    never_or_stale = Q(last_used_at__isnull=True) | Q(last_used_at__lt=stale)
    ApiKey.objects.filter(never_or_stale, pk=key.pk).update(last_used_at=now)
    key.last_used_at = now
