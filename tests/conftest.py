"""Shared fixtures: two tenants, a real SMTP server, a real Celery worker, a live app server.

Tests talk to a real PostgreSQL and Redis: the embedded ones when DATABASE_URL / REDIS_URL are not
set (crm.settings starts them), the given servers otherwise. pytest-django creates `test_crm` on
that server; the session fixture below adds the template tenant and two tenants, `alpha` and
`beta`, committed, so every test (and every live server or worker) can use them.
"""

import itertools
import os
import threading
import uuid
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message

import pytest
import redis
from aiosmtpd.controller import Controller
from django.conf import settings
from django.db import connection
from django_tenants.utils import schema_context

from crm.embedded import free_port

# Playwright's sync API runs an event loop in the test thread; Django's guard against ORM calls
# from async code would otherwise refuse the test's own (synchronous) database work.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "1")

PASSWORD = "a-long-test-password-42"


@pytest.fixture(scope="session")
def django_db_setup(request, django_test_environment, django_db_blocker):
    """Create the test database, with the template tenant and two committed tenants, `alpha`
    and `beta`, for every session, whatever its tests are marked with: live servers, Celery
    workers and committed-data tests need it as much as `@pytest.mark.django_db` tests do
    (pytest-django on its own sets it up only for the latter)."""
    from django.test.utils import setup_databases, teardown_databases

    from crm.tenants.models import Tenant
    from crm.tenants.services import template_ensure, tenant_provision

    # The test Redis database is this run's alone: nothing a previous run left (cache entries,
    # counters, queued tasks) may count here.
    redis.Redis.from_url(settings.REDIS_URL).flushdb()
    with django_db_blocker.unblock():
        config = setup_databases(
            verbosity=request.config.option.verbose, interactive=False, aliases={"default"}
        )
        template_ensure()
        for slug in ("alpha", "beta"):
            if not Tenant.objects.filter(slug=slug).exists():
                tenant_provision(
                    slug=slug,
                    name=slug.title() + " Inc",
                    admin_email=f"admin@{slug}.test",
                    admin_password=PASSWORD,
                    admin_name=f"{slug.title()} Admin",
                )
        connection.set_schema_to_public()
    yield
    with django_db_blocker.unblock():
        # A Celery worker thread may still hold an idle connection; it must not keep the test
        # database from being dropped.
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        connection.close()
        teardown_databases(config, verbosity=request.config.option.verbose)


@pytest.fixture(autouse=True)
def public_schema_after_each_test():
    """A request on a tenant's host leaves the test's connection in that tenant's schema; the
    next test starts from the public schema, as a new request would."""
    yield
    connection.set_schema_to_public()


@pytest.fixture
def alpha(db):
    from crm.tenants.models import Tenant

    return Tenant.objects.get(slug="alpha")


@pytest.fixture
def beta(db):
    from crm.tenants.models import Tenant

    return Tenant.objects.get(slug="beta")


@pytest.fixture
def in_alpha(alpha):
    """Run the test body in alpha's schema."""
    with schema_context(alpha.schema_name):
        yield alpha


@pytest.fixture
def sales(in_alpha):
    """A salesperson of alpha, in a team (North) of her own."""
    from crm.users.models import Role, Team
    from crm.users.services import user_create

    return user_create(
        email="sales@alpha.test",
        password=PASSWORD,
        full_name="Sally Sales",
        role=Role.SALES,
        team=Team.objects.create(name="North"),
    )


def host(tenant) -> str:
    return f"{tenant.slug}.localhost"


@pytest.fixture
def alpha_client(client, alpha):
    """A test client on alpha's host."""
    client.defaults["HTTP_HOST"] = host(alpha)
    return client


_unique = itertools.count()


def unique_slug(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}{next(_unique)}"


@pytest.fixture
def committed_tenant(django_db_setup, django_db_blocker):
    """A fresh tenant whose rows are committed (visible to a live server or a Celery worker);
    dropped with its schema afterwards. Returns a factory: `make(role_emails...)`."""
    from crm.tenants.models import Tenant
    from crm.tenants.services import tenant_provision

    made = []

    def make(prefix: str = "t") -> "Tenant":
        slug = unique_slug(prefix)
        with django_db_blocker.unblock():
            tenant = tenant_provision(
                slug=slug,
                name=f"{slug} Ltd",
                admin_email=f"admin@{slug}.test",
                admin_password=PASSWORD,
                admin_name="Founder Person",
            )
            connection.set_schema_to_public()
        made.append(tenant)
        return tenant

    yield make
    with django_db_blocker.unblock():
        for tenant in made:
            connection.set_schema_to_public()
            Tenant.objects.filter(pk=tenant.pk).first() and tenant.delete(force_drop=True)


# --- mail -------------------------------------------------------------------------------------


@dataclass
class Mailbox:
    """Messages received by the in-process SMTP server, as parsed e-mail messages."""

    messages: list[Message] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    def to(self, address: str) -> list[Message]:
        return [m for m in self.messages if address.lower() in (m["To"] or "").lower()]

    def wait_for(self, address: str, timeout: float = 20) -> Message:
        with self.arrived:
            self.arrived.wait_for(lambda: self.to(address), timeout=timeout)
        found = self.to(address)
        assert found, f"no mail to {address} within {timeout}s"
        return found[-1]


class _Collector:
    def __init__(self, mailbox: Mailbox):
        self.mailbox = mailbox

    async def handle_DATA(self, server, session, envelope):
        with self.mailbox.arrived:
            self.mailbox.messages.append(message_from_bytes(envelope.original_content))
            self.mailbox.arrived.notify_all()
        return "250 OK"


@pytest.fixture(scope="session")
def smtp_server():
    """A real SMTP server (aiosmtpd) on loopback for the whole session."""
    mailbox = Mailbox()
    controller = Controller(_Collector(mailbox), hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, mailbox
    controller.stop()


@pytest.fixture
def mailbox(smtp_server, settings):
    """Route Django's mail to the SMTP server; returns the mailbox to read from."""
    controller, box = smtp_server
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = controller.port
    settings.EMAIL_USE_TLS = False
    return box


def body_of(message: Message) -> str:
    payload = (
        message.get_payload(decode=True)
        if not message.is_multipart()
        else (message.get_payload(0).get_payload(decode=True))
    )
    return payload.decode()


# --- Celery -----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def celery_worker_session():
    """A real Celery worker (in a thread of this process) consuming from the test Redis."""
    from celery.contrib.testing.worker import start_worker
    from celery.signals import task_postrun
    from django.db import connections

    from crm.celery import app

    def close_worker_connections(**kwargs):
        # The worker thread's own connections; left open, they keep the test database from
        # being dropped at the end of the session.
        connections.close_all()

    task_postrun.connect(close_worker_connections, weak=False)
    app.control.purge()
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=30) as worker:
        yield worker
    task_postrun.disconnect(close_worker_connections)


@pytest.fixture
def celery_worker(celery_worker_session, mailbox, django_db_setup, django_db_blocker):
    """The session worker, with mail going to the test SMTP server and the database open."""
    with django_db_blocker.unblock():
        yield celery_worker_session
