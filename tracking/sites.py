"""Writes for the tenant's websites: the origins allowed to send events (CORS) and the secret its
own server signs `identify` calls with. The ingest endpoint reads both through its per-process
map, so a change applies within CRM_TRACKING_SITE_CACHE_SECONDS."""

from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.db import transaction

from tracking.models import AuditEntry, TrackingSettings, new_secret
from tracking.selectors import tracking_settings
from tracking.services import audited_update

MAX_ORIGINS = 50


def origin_normalize(value: str) -> str:
    """`value` as an origin (scheme://host[:port], lower case), or ValidationError."""
    text = value.strip().rstrip("/")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        parts, port = None, None
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.path
        or parts.query
        or parts.fragment
        or parts.username
        or parts.password
        or len(text) > 200
    ):
        raise ValidationError(
            f"“{value.strip()}” is not a site origin: write it as https://www.example.com "
            "(scheme and host, a port if any, no path)."
        )
    default = {"http": 80, "https": 443}[parts.scheme]
    # As browsers send it in the Origin header: no port when it is the scheme's own.
    return f"{parts.scheme}://{parts.hostname}" + (f":{port}" if port and port != default else "")


@transaction.atomic
def site_origins_set(*, actor, origins: list[str]) -> TrackingSettings:
    """Replace the tenant's site origins (normalized, duplicates dropped); audited."""
    cleaned, errors = [], []
    for value in origins:
        if not value.strip():
            continue
        try:
            origin = origin_normalize(value)
        except ValidationError as error:
            errors.extend(error.messages)
            continue
        if origin not in cleaned:
            cleaned.append(origin)
    if len(cleaned) > MAX_ORIGINS:
        errors.append(f"At most {MAX_ORIGINS} site origins.")
    if errors:
        raise ValidationError({"site_origins": errors})
    found = tracking_settings()
    audited_update(actor=actor, instance=found, fields={"site_origins": cleaned})
    return found


@transaction.atomic
def identify_secret_rotate(*, actor) -> TrackingSettings:
    """A new identify secret: signatures made with the old one are refused from now on. The
    audit trail says it changed, never what it is."""
    found = TrackingSettings.objects.select_for_update().get(pk=tracking_settings().pk)
    found.identify_secret = new_secret()
    found.save(update_fields=["identify_secret"])
    AuditEntry.objects.create(
        model=TrackingSettings._meta.label_lower,
        object_id=found.pk,
        action="updated",
        changes={"identify_secret": ["(hidden)", "(rotated)"]},
        actor=actor,
    )
    return found
