"""The sending governor (token buckets per tenant and per recipient domain, in Redis), the
sending window, and what stops a chunk between two messages: pause, cancel, the window's end and
a lease taken over by another worker."""

from datetime import UTC, datetime, time

import pytest
import redis
from django.conf import settings
from django.utils import timezone
from django_tenants.utils import schema_context

from campaigns import governor, sending
from campaigns.governor import Governor, in_window
from campaigns.models import Campaign, OutboxMessage
from crm.tenants.models import Tenant
from tests.campaigns.conftest import campaign_ready, send_all

ALPHA = {"HTTP_HOST": "alpha.localhost"}


@pytest.fixture(autouse=True)
def empty_buckets():
    client = redis.Redis.from_url(settings.REDIS_URL)
    for key in client.scan_iter("*bucket*"):
        client.delete(key)


def _takes(gov: Governor, email: str, n: int) -> list[float]:
    return [gov.wait(email) for _ in range(n)]


@pytest.mark.django_db
def test_a_tenant_gets_its_rate_a_second_and_another_tenant_its_own(alpha, beta):
    Tenant.objects.filter(pk=alpha.pk).update(email_send_rate=3)
    with schema_context(alpha.schema_name):
        waits = _takes(Governor(), "a@one.test", 4)
    assert waits[:3] == [0, 0, 0]
    assert 0 < waits[3] <= 1 / 3
    # Beta's bucket is its own, however dry alpha's is (other domain: the domain bucket is
    # shared by all tenants).
    with schema_context(beta.schema_name):
        assert _takes(Governor(), "b@two.test", 3) == [0, 0, 0]


@pytest.mark.django_db
def test_a_recipient_domain_has_one_rate_across_tenants_with_exceptions(alpha, beta, settings):
    settings.CRM_EMAIL_DOMAIN_RATE = 2
    settings.CRM_EMAIL_DOMAIN_RATES = {"slow.test": 1}
    with schema_context(alpha.schema_name):
        assert _takes(Governor(), "x@Busy.test", 2) == [0, 0]
    with schema_context(beta.schema_name):
        beta_gov = Governor()
        assert beta_gov.wait("y@busy.test") > 0
        assert beta_gov.wait("y@slow.test") == 0
        assert 0 < beta_gov.wait("z@slow.test") <= 1
        # A refusal takes no token: the tenant's bucket still has its allowance.
        assert beta_gov.wait("y@other.test") == 0


def test_windows_by_day_across_midnight_and_in_the_campaigns_time_zone():
    campaign = Campaign(window_start=time(9), window_end=time(17), window_timezone="UTC")
    assert in_window(campaign, now=datetime(2026, 1, 5, 9, 0, tzinfo=UTC))
    assert not in_window(campaign, now=datetime(2026, 1, 5, 17, 0, tzinfo=UTC))
    night = Campaign(window_start=time(22), window_end=time(6), window_timezone="UTC")
    assert in_window(night, now=datetime(2026, 1, 5, 23, 30, tzinfo=UTC))
    assert in_window(night, now=datetime(2026, 1, 5, 5, 59, tzinfo=UTC))
    assert not in_window(night, now=datetime(2026, 1, 5, 12, 0, tzinfo=UTC))
    # 08:30 UTC is 09:30 in Berlin in winter.
    berlin = Campaign(window_start=time(9), window_end=time(17), window_timezone="Europe/Berlin")
    assert in_window(berlin, now=datetime(2026, 1, 5, 8, 30, tzinfo=UTC))
    assert in_window(Campaign(), now=datetime(2026, 1, 5, 3, 0, tzinfo=UTC))
    assert governor.window_zone(Campaign(window_timezone="Mars/Olympus")).key == "UTC"


def _shut_window(campaign):
    now = timezone.now()
    start = time((now.hour + 2) % 24)
    Campaign.objects.filter(pk=campaign.pk).update(
        window_start=start, window_end=time((now.hour + 3) % 24), window_timezone="UTC"
    )


@pytest.mark.django_db
def test_outside_its_window_a_send_waits_and_the_sweep_dispatches_it_when_open(admin, sink):
    campaign = campaign_ready(admin, n=2)
    sending.campaign_send(actor=admin, campaign=campaign)
    _shut_window(campaign)

    assert not sending.campaign_start(campaign_id=campaign.pk)
    send_all(campaign)
    assert sink.messages == []
    assert set(OutboxMessage.objects.values_list("status", flat=True)) == {"queued"}
    assert sending.stalled_campaigns() == []

    Campaign.objects.filter(pk=campaign.pk).update(window_start=None, window_end=None)
    assert sending.stalled_campaigns() == [campaign.pk]
    # Dispatched again just now: not again before CRM_CAMPAIGN_REDISPATCH_SECONDS.
    assert sending.stalled_campaigns() == []
    send_all(campaign)
    assert len(sink.messages) == 2


class _Hook:
    """Stands in for the governor (always lets the message go) and does something to the
    campaign just before the n-th message, as another request or worker would."""

    def __init__(self, n, action):
        self.n, self.action, self.calls = n, action, 0

    def __call__(self, email):
        self.calls += 1
        if self.calls == self.n:
            self.action()
        return 0


@pytest.mark.django_db
@pytest.mark.parametrize("action", ["pause", "cancel", "window"])
def test_pause_cancel_and_the_windows_end_stop_a_chunk_between_two_messages(
    admin, sink, monkeypatch, action
):
    campaign = campaign_ready(admin, n=5)
    sending.campaign_send(actor=admin, campaign=campaign)
    stop = {
        "pause": lambda: sending.campaign_pause(actor=admin, campaign=campaign),
        "cancel": lambda: sending.campaign_cancel(actor=admin, campaign=campaign),
        "window": lambda: _shut_window(campaign),
    }[action]
    monkeypatch.setattr(Governor, "wait", _Hook(3, stop))
    # Check the campaign before every message rather than once a second.
    monkeypatch.setattr(sending, "CHECK_SECONDS", 0)
    [(first, last)] = sending.dispatch_ranges(campaign_id=campaign.pk)

    assert sending.chunk_send(campaign_id=campaign.pk, first_id=first, last_id=last) == 2

    rows = OutboxMessage.objects.order_by("id")
    assert list(rows.values_list("status", "attempts")) == [("sent", 1)] * 2 + [("queued", 0)] * 3
    assert len(sink.messages) == 2


@pytest.mark.django_db
def test_a_chunk_that_lost_its_lease_to_another_worker_sends_none_of_those_rows(
    admin, sink, monkeypatch
):
    campaign = campaign_ready(admin, n=4)
    sending.campaign_send(actor=admin, campaign=campaign)
    rows = list(OutboxMessage.objects.order_by("id"))

    def taken():
        # This worker stalled past its lease: the sweep gave the last two rows back and
        # another worker claimed them.
        OutboxMessage.objects.filter(pk__in=[rows[2].pk, rows[3].pk]).update(
            claimed_at=timezone.now()
        )

    monkeypatch.setattr(Governor, "wait", _Hook(2, taken))
    monkeypatch.setattr(sending, "CHECK_SECONDS", 0)
    monkeypatch.setattr(settings, "CRM_OUTBOX_LEASE_SECONDS", 0)
    [(first, last)] = sending.dispatch_ranges(campaign_id=campaign.pk)

    assert sending.chunk_send(campaign_id=campaign.pk, first_id=first, last_id=last) == 2
    assert [m["Message-ID"] for m in sink.messages] == [rows[0].message_id, rows[1].message_id]
    assert list(OutboxMessage.objects.order_by("id").values_list("status", flat=True)) == [
        "sent",
        "sent",
        "sending",
        "sending",
    ]


@pytest.mark.django_db
def test_the_send_form_keeps_a_window_and_refuses_half_of_one(client, admin):
    campaign = campaign_ready(admin, n=1)
    client.force_login(admin)
    url = f"/campaigns/{campaign.pk}/send/"
    form = {
        "email_template": campaign.email_template_id,
        "segments": [s.pk for s in campaign.segments.all()],
        "when": "now",
        "window_timezone": "Europe/Berlin",
    }

    page = client.post(url, {**form, "window_start": "09:00"}, **ALPHA)
    assert page.status_code == 200
    assert "Give both ends of the sending window, or neither." in page.content.decode()
    assert not OutboxMessage.objects.exists()

    page = client.post(url, {**form, "window_timezone": "Mars/Olympus"}, **ALPHA)
    assert "Mars/Olympus is not one of the available choices" in page.content.decode()

    page = client.post(url, {**form, "window_start": "09:00", "window_end": "17:30"}, **ALPHA)
    assert page.status_code == 302
    campaign.refresh_from_db()
    assert (campaign.window_start, campaign.window_end, campaign.window_timezone) == (
        time(9),
        time(17, 30),
        "Europe/Berlin",
    )
    assert campaign.send_state == "sending"


@pytest.mark.django_db
def test_the_operator_sets_a_tenants_rate_and_a_bad_one_is_refused(alpha):
    from django.core.management import CommandError, call_command

    call_command("set_email_send_rate", "alpha", "25")
    assert Tenant.objects.get(pk=alpha.pk).email_send_rate == 25
    with pytest.raises(CommandError, match="at least 1 message a second"):
        call_command("set_email_send_rate", "alpha", "0")
    with pytest.raises(CommandError, match="No tenant 'nobody'"):
        call_command("set_email_send_rate", "nobody", "5")
    assert Tenant.objects.get(pk=alpha.pk).email_send_rate == 25


@pytest.mark.django_db
def test_tokens_are_taken_only_for_messages_the_chunk_will_send(alpha, settings):
    Tenant.objects.filter(pk=alpha.pk).update(email_send_rate=6)
    emails = [f"x@d{i}.test" for i in range(5)] + ["y@d0.test"]
    with schema_context(alpha.schema_name):
        gov = Governor(emails)
        # Six messages, five domains: six tokens of the tenant's six, none held back.
        assert [gov.wait(email) for email in emails] == [0] * 6
        assert Governor().wait("z@d9.test") > 0


@pytest.mark.django_db
def test_a_domain_rate_below_one_still_lets_a_message_through(alpha, settings):
    settings.CRM_EMAIL_DOMAIN_RATES = {"trickle.test": 0.2}
    with schema_context(alpha.schema_name):
        gov = Governor(["a@trickle.test", "b@trickle.test"])
        assert gov.wait("a@trickle.test") == 0
        assert 0 < gov.wait("b@trickle.test") <= 1
