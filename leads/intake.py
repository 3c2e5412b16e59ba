"""What every post of a public lead form goes through before its fields are looked at: a rate
limit per visitor's address and a cap on the body's size. Both answer before the body is read,
so a flood or an oversized post costs one Redis round trip and stores nothing.

The address is the connection's (REMOTE_ADDR): a header such as X-Forwarded-For is the
client's to write, and would let a spammer pick a new address for every post. Behind a proxy,
the proxy sets REMOTE_ADDR (gunicorn's `--forwarded-allow-ips`).
"""

import ipaddress
from dataclasses import dataclass

from integrations.ratelimit import window_hit

# A form's fields fit in a few kilobytes; anything bigger is not a person filling a form.
MAX_BODY_BYTES = 16 * 1024
# Posts per minute from one address to one tenant's forms (counted in Redis, per tenant).
SUBMISSIONS_PER_MINUTE = 10


@dataclass(frozen=True)
class Refusal:
    """Why a post is refused before it is read, with the HTTP status that says so."""

    status: int
    message: str
    retry_after: int | None = None


def client_ip(request) -> str | None:
    address = request.META.get("REMOTE_ADDR", "")
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return None


def post_refusal(request) -> Refusal | None:
    """Count the post against its address's allowance; a Refusal when it is over the allowance
    or too big, else None. Runs in the tenant's schema (the counter's name carries it)."""
    allowed, allowance = window_hit(
        f"lead-form:{client_ip(request) or 'unknown'}", limit=SUBMISSIONS_PER_MINUTE
    )
    if not allowed:
        return Refusal(
            429,
            "Too many submissions from your address. Please try again in a minute.",
            retry_after=allowance.reset_seconds,
        )
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return Refusal(400, "The request's Content-Length is not a number.")
    if length > MAX_BODY_BYTES:
        return Refusal(400, f"The form data is too large (at most {MAX_BODY_BYTES:,} bytes).")
    return None


def page_url(request) -> str:
    """The page the form was filled on, as far as the browser tells."""
    return request.META.get("HTTP_REFERER") or request.META.get("HTTP_ORIGIN") or ""
