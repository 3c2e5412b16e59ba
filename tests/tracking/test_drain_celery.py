"""The drain through a real Celery worker: beat's dispatcher queues one drain per tenant with new
events, each runs in its own tenant's schema, and the events reach the contacts' timelines."""

import time
import uuid

from django.db import connection
from django_tenants.utils import schema_context

from contacts.services import contact_create
from tests.tracking.conftest import SITE, batch, host, page_view, post, site_origins_set
from tracking import buffer
from tracking.identity import visitor_identify
from tracking.models import Event, TimelineEntry
from tracking.tasks import tracking_drains_dispatch


def wait_for(check, timeout=30):
    """Poll until `check()` is true (the worker runs in another thread); False on timeout."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def entries_of(tenant) -> int:
    with schema_context(tenant.schema_name):
        return TimelineEntry.objects.filter(kind="page_view").count()


def test_the_dispatcher_drains_each_tenant_through_the_worker(committed_tenant, celery_worker):
    first, second = committed_tenant("drain"), committed_tenant("drain")
    visitors = {}
    for tenant in (first, second):
        site_origins_set(tenant, [SITE])
        with schema_context(tenant.schema_name):
            contact = contact_create(actor=None, first_name=tenant.slug, email="x@example.test")
            visitors[tenant.pk] = uuid.uuid4()
            visitor_identify(visitor_id=visitors[tenant.pk], contact=contact, how="identify")
    connection.set_schema_to_public()
    for tenant in (first, second):
        views = [page_view(f"{SITE}/{tenant.slug}", tenant.slug) for _ in range(3)]
        answer = post(host(tenant), batch(visitors[tenant.pk], views, session="one-visit"))
        assert answer.status == 202

    queued = tracking_drains_dispatch.delay().get(timeout=30)

    assert queued == 2
    assert wait_for(lambda: entries_of(first) == 1 and entries_of(second) == 1)
    for tenant in (first, second):
        with schema_context(tenant.schema_name):
            (entry,) = TimelineEntry.objects.filter(kind="page_view")
            assert entry.count == 3 and entry.contact.first_name == tenant.slug
            assert set(Event.objects.values_list("title", flat=True)) == {tenant.slug}
        assert buffer.client().xlen(buffer.stream_key(tenant.schema_name)) == 0
    connection.set_schema_to_public()
    assert not buffer.client().sismember(buffer.DIRTY, first.schema_name)
    # Nothing dirty: the next tick queues nothing.
    assert tracking_drains_dispatch.delay().get(timeout=30) == 0
