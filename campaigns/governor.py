"""The sending governor: how fast campaign e-mail may leave, and when.

Two token buckets in Redis guard every message: one per tenant (`Tenant.email_send_rate`
messages a second, set by the platform operator) and one per recipient domain, shared by every
tenant on the platform, since receiving providers judge the platform's sending addresses as a
whole (`CRM_EMAIL_DOMAIN_RATE` a second, with `CRM_EMAIL_DOMAIN_RATES` overriding it for named
domains). A bucket holds at most one second's worth of tokens and refills continuously; one Lua
script checks both buckets and takes a token from each only if both have one, on Redis's own
clock, so any number of workers on any number of machines share the same allowance. A lost
bucket (Redis restarted) starts full again: at worst one extra second's worth of messages.

A campaign may also have a sending window (times of day in a time zone of its own): outside it,
nothing of the campaign is sent; the send goes on when the window opens again.
"""

from datetime import datetime, time
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import redis
from django.conf import settings
from django.core.cache import caches
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone

from campaigns.models import Campaign
from crm.tenants.models import Tenant

_TAKE = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local want = tonumber(ARGV[#KEYS + 1])
local levels = {}
local grant = want
local wait = 0
for i, key in ipairs(KEYS) do
  local rate = tonumber(ARGV[i])
  local state = redis.call('HMGET', key, 'tokens', 'at')
  local tokens = tonumber(state[1]) or rate
  local at = tonumber(state[2]) or now
  tokens = math.min(rate, tokens + math.max(now - at, 0) * rate)
  levels[i] = tokens
  grant = math.min(grant, math.floor(tokens))
  if tokens < 1 then
    wait = math.max(wait, (1 - tokens) / rate)
  end
end
if grant >= 1 then
  for i, key in ipairs(KEYS) do
    redis.call('HSET', key, 'tokens', tostring(levels[i] - grant), 'at', tostring(now))
    redis.call('EXPIRE', key, 60)
  end
  return {grant, 0}
end
return {0, math.ceil(wait * 1000000)}
"""


@cache
def _take_script():
    return redis.Redis.from_url(settings.REDIS_URL).register_script(_TAKE)


def domain_rate(domain: str) -> float:
    """Messages a second to `domain`, at least one (a bucket holding less than one token would
    never hand one out)."""
    rate = settings.CRM_EMAIL_DOMAIN_RATES.get(domain, settings.CRM_EMAIL_DOMAIN_RATE)
    return max(1.0, float(rate))


class Governor:
    """The allowance of the current tenant's sends; make one per chunk (it reads the tenant's
    rate once), tell it the chunk's recipients, and ask it before each message. It takes up to
    BATCH tokens from Redis at a time, never more than the chunk still has messages for that
    domain, and spends them locally, so one round trip serves several messages to a domain and
    no token is taken for nothing."""

    BATCH = 10

    def __init__(self, emails=()):
        self.rate = max(
            1.0,
            float(
                Tenant.objects.values_list("email_send_rate", flat=True).get(
                    schema_name=connection.schema_name
                )
            ),
        )
        # The tenant's bucket is named through the cache's key function, so it carries the
        # tenant's schema; the domain buckets are the platform's, deliberately shared.
        self.tenant_key = caches["default"].make_key("email-send-bucket")
        self.held: dict[str, int] = {}
        self.ahead: dict[str, int] = {}
        for email in emails:
            domain = _domain(email)
            self.ahead[domain] = self.ahead.get(domain, 0) + 1

    def wait(self, email: str) -> float:
        """Take a token for a message to `email` from both buckets and return 0, or take
        nothing and return the seconds until both will have one."""
        domain = _domain(email)
        if self.held.get(domain, 0) > 0:
            self.held[domain] -= 1
            self.ahead[domain] = self.ahead.get(domain, 1) - 1
            return 0
        rate = domain_rate(domain)
        # Never more at once than either bucket refills in a second, nor than this chunk still
        # sends to the domain.
        want = max(1, min(self.BATCH, int(self.rate), int(rate), self.ahead.get(domain, 1)))
        granted, micros = _take_script()(
            keys=[self.tenant_key, f"crm:email-domain-bucket:{domain}"],
            args=[self.rate, rate, want],
        )
        if granted:
            self.held[domain] = int(granted) - 1
            self.ahead[domain] = self.ahead.get(domain, 1) - 1
            return 0
        return int(micros) / 1_000_000


def _domain(email: str) -> str:
    return email.rpartition("@")[2].lower()


def window_zone(campaign: Campaign) -> ZoneInfo:
    try:
        return ZoneInfo(campaign.window_timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _within(start: time, end: time, now: time) -> bool:
    if start <= end:
        return start <= now < end
    # A window across midnight, say 22:00 to 06:00.
    return now >= start or now < end


def in_window(campaign: Campaign, *, now: datetime | None = None) -> bool:
    """Whether the campaign may send at `now` (always, without a window)."""
    if campaign.window_start is None or campaign.window_end is None:
        return True
    local = (now or timezone.now()).astimezone(window_zone(campaign)).time()
    return _within(campaign.window_start, campaign.window_end, local)


def email_send_rate_set(*, tenant: Tenant, rate: int) -> None:
    """Set how many marketing e-mails a second the tenant may send (the platform operator's
    call: it protects the platform's sending reputation)."""
    if rate < 1:
        raise ValidationError({"email_send_rate": "The rate is at least 1 message a second."})
    tenant.email_send_rate = rate
    tenant.save(update_fields=["email_send_rate"])
