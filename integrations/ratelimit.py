"""How many API calls each key may make: `Tenant.api_rate_limit` per minute, counted in Redis.

The window is fixed and starts with a caller's first call: the counter is created with a
one-minute expiry and counts until it expires. Counting and starting the window happen in one
Lua script, so concurrent calls on several web workers never lose a count nor leave a counter
without its expiry (which would block the caller for good). Counters are named through the
cache's key function, so they carry the tenant's schema: two tenants never share an allowance,
even for keys or users with the same id.
"""

from dataclasses import dataclass
from functools import cache

import redis
from django.conf import settings
from django.core.cache import caches
from django.core.exceptions import ValidationError
from django.db import connection
from rest_framework.throttling import BaseThrottle

from integrations.models import ApiKey

WINDOW_SECONDS = 60

_HIT = """
local count = redis.call('INCR', KEYS[1])
local ttl = redis.call('TTL', KEYS[1])
if ttl < 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {count, ttl}
"""


@dataclass(frozen=True)
class Allowance:
    """What a caller has left in the current window, as the response headers tell it."""

    limit: int
    remaining: int
    reset_seconds: int


@cache
def _hit_script():
    return redis.Redis.from_url(settings.REDIS_URL).register_script(_HIT)


def window_hit(caller: str, *, limit: int) -> tuple[bool, Allowance]:
    """Count one call by `caller` in the current tenant; whether it is allowed, and what is left.
    Runs in the tenant's schema (the counter's name carries it)."""
    counter = caches["default"].make_key(f"api-rate:{caller}")
    count, ttl = _hit_script()(keys=[counter], args=[WINDOW_SECONDS])
    allowance = Allowance(limit=limit, remaining=max(limit - count, 0), reset_seconds=max(ttl, 1))
    return count <= limit, allowance


def api_rate_limit_set(*, tenant, limit: int) -> None:
    """Set how many calls per minute each of the tenant's keys (and users) may make."""
    if limit < 1:
        raise ValidationError({"api_rate_limit": "The limit is at least 1 call a minute."})
    tenant.api_rate_limit = limit
    tenant.save(update_fields=["api_rate_limit"])


def _caller(request, throttle: BaseThrottle) -> str:
    if isinstance(request.auth, ApiKey):
        return f"key:{request.auth.pk}"
    if request.user is not None and request.user.is_authenticated:
        return f"user:{request.user.pk}"
    return f"ip:{throttle.get_ident(request)}"


class ApiRateThrottle(BaseThrottle):
    """Allows `api_rate_limit` calls a minute per key (per user for calls made with the browser
    session, per address for anonymous ones), and leaves the allowance on the request for
    `RateLimitHeadersMiddleware` to put in the response headers."""

    def allow_request(self, request, view):
        allowed, self.allowance = window_hit(
            _caller(request, self), limit=connection.tenant.api_rate_limit
        )
        # On the Django request, which the middleware sees (DRF's Request wraps it).
        request._request.api_allowance = self.allowance
        return allowed

    def wait(self):
        return self.allowance.reset_seconds
