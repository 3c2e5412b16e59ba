"""Chaos: a campaign to thousands of recipients sent by real Celery workers (separate processes,
with their own Redis and Celery beat) while workers are killed with SIGKILL, a pool child is
killed under its worker, and Redis restarts. Every recipient gets exactly one message, counted
at the SMTP server by Message-ID.

What "exactly one" can mean on the wire: a worker killed after the server accepted a message
but before it wrote that down cannot know; that one message is sent again under the same
Message-ID (see campaigns.sending). So the test asks for one Message-ID per recipient, every row
sent, and at most one second hand-over per kill.
"""

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from email import message_from_bytes
from functools import partial
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from django.conf import settings
from django_tenants.utils import schema_context
from kombu import Connection

from campaigns import sending
from campaigns.models import Campaign, OutboxMessage
from campaigns.segments import segment_create
from campaigns.services import campaign_create
from campaigns.tasks import campaign_dispatch
from campaigns.templating import email_template_create
from contacts.models import Contact
from crm import embedded
from crm.tenants.models import Tenant
from crm.users.models import User
from tests.e2e.conftest import database_url

RECIPIENTS = 3000
ROOT = Path(__file__).resolve().parent.parent.parent


class CountingSink:
    """Keeps, per Message-ID, how often it arrived and for whom."""

    def __init__(self):
        self.arrivals = Counter()
        self.recipients = {}
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        message = message_from_bytes(envelope.original_content)
        with self.lock:
            self.arrivals[message["Message-ID"]] += 1
            self.recipients[message["Message-ID"]] = tuple(envelope.rcpt_tos)
        return "250 OK"

    def distinct(self) -> int:
        with self.lock:
            return len(self.arrivals)


class Stack:
    """Celery workers and beat in processes of their own, on a Redis of their own."""

    def __init__(self, folder: Path, env: dict):
        self.folder, self.env = folder, env
        self.workers: list[subprocess.Popen] = []
        self.beat: subprocess.Popen | None = None
        self.started = 0

    def _spawn(self, *args) -> subprocess.Popen:
        self.started += 1
        log = open(self.folder / f"process-{self.started}.log", "wb")  # noqa: SIM115
        return subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "crm", *args],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            # Its own process group, so a kill reaches its pool children too.
            start_new_session=True,
        )

    def add_worker(self) -> None:
        self.workers.append(
            self._spawn(
                "worker",
                "--pool=prefork",
                "--concurrency=1",
                "--without-gossip",
                "--without-mingle",
                f"--hostname=chaos{self.started}@%h",
                "--loglevel=INFO",
            )
        )

    def start_beat(self) -> None:
        self.beat = self._spawn(
            "beat", "--schedule", str(self.folder / "beat-schedule"), "--loglevel=INFO"
        )

    def kill_worker(self) -> int:
        """SIGKILL a whole worker (main process and pool child) and start another."""
        victim = self.workers.pop(random.randrange(len(self.workers)))
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait()
        self.add_worker()
        return 1

    def kill_pool_child(self) -> int:
        """SIGKILL the pool child of a worker, mid-task: its main process lives on."""
        for worker in self.workers:
            children = Path(f"/proc/{worker.pid}/task/{worker.pid}/children").read_text().split()
            if children:
                os.kill(int(children[0]), signal.SIGKILL)
                return 1
        return 0

    def restart_redis(self, folder: Path) -> int:
        embedded.stop_redis(folder)
        embedded.start_redis(folder)
        return 0

    def stop(self) -> None:
        for process in [*self.workers, self.beat]:
            if process is not None and process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@pytest.fixture
def chaos(tmp_path, committed_tenant, django_db_blocker):
    redis_dir = tmp_path / "redis"
    redis_url = embedded.start_redis(redis_dir).url
    sink = CountingSink()
    controller = Controller(sink, hostname="127.0.0.1", port=embedded.free_port())
    controller.start()
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "REDIS_URL": redis_url,
        "SECRET_KEY": settings.SECRET_KEY,
        "DEBUG": "1",
        "EMAIL_URL": f"smtp://127.0.0.1:{controller.port}",
        # A stopped worker's rows come back after 3 s; the sweep looks every second.
        "CRM_OUTBOX_LEASE_SECONDS": "3",
        "CRM_CAMPAIGN_SWEEP_SECONDS": "1",
        "CRM_CAMPAIGN_REDISPATCH_SECONDS": "2",
        "CRM_EMAIL_DOMAIN_RATE": "10000",
    }
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    stack = Stack(tmp_path, env)
    tenant = committed_tenant("chaos")
    try:
        with django_db_blocker.unblock():
            yield stack, sink, tenant, redis_url, redis_dir
    finally:
        stack.stop()
        controller.stop()
        embedded.stop_redis(redis_dir)


def _campaign(tenant, n: int) -> Campaign:
    Tenant.objects.filter(pk=tenant.pk).update(email_send_rate=300)
    admin = User.objects.get()
    Contact.objects.bulk_create(
        Contact(
            first_name=f"R{i}",
            last_name="Chaos",
            email=f"r{i}@{'abc'[i % 3]}.example.test",
            lifecycle_stage="evaluation",
        )
        for i in range(n)
    )
    template = email_template_create(
        actor=admin,
        name="Chaos",
        subject="Hello {{ contact.first_name }}",
        html_body="<html><body><p>Hi {{ contact.first_name }}</p></body></html>",
    )
    segment = segment_create(
        actor=admin,
        name="Everyone evaluating",
        rules={
            "op": "and",
            "rules": [{"field": "lifecycle_stage", "operator": "eq", "value": "evaluation"}],
        },
    )
    campaign = campaign_create(actor=admin, name="Chaos", kind="email", email_template=template)
    campaign.segments.add(segment)
    return campaign


def _wait(condition, *, timeout: float, what: str, stack: Stack) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            logs = "\n".join(
                f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}"
                for log in sorted(stack.folder.glob("process-*.log"))
            )
            pytest.fail(f"timed out waiting for {what}\n{logs}")
        time.sleep(0.05)


def test_killed_workers_and_a_redis_restart_lose_no_message_and_send_none_twice(chaos, monkeypatch):
    stack, sink, tenant, redis_url, redis_dir = chaos
    random.seed(5)
    stack.start_beat()
    stack.add_worker()
    stack.add_worker()
    with schema_context(tenant.schema_name):
        campaign = _campaign(tenant, RECIPIENTS)
        with Connection(redis_url) as broker:
            # campaign_send queues its dispatch on commit: onto the chaos Redis, where the
            # workers of this test listen.
            monkeypatch.setattr(
                campaign_dispatch,
                "apply_async",
                partial(campaign_dispatch.apply_async, connection=broker),
            )
            admin = User.objects.get()
            assert sending.campaign_send(actor=admin, campaign=campaign) == RECIPIENTS

        kills = 0
        events = [
            (0.10, stack.kill_worker),
            (0.25, stack.kill_pool_child),
            (0.40, partial(stack.restart_redis, redis_dir)),
            (0.55, stack.kill_worker),
            (0.70, stack.kill_pool_child),
            (0.80, stack.kill_worker),
        ]
        for share, event in events:
            _wait(
                lambda share=share: sink.distinct() >= share * RECIPIENTS,
                timeout=120,
                what=f"{share:.0%} of the messages",
                stack=stack,
            )
            kills += event()

        def done():
            return Campaign.objects.get(pk=campaign.pk).send_state == "sent"

        _wait(done, timeout=180, what="the campaign to be sent", stack=stack)

        rows = dict(
            OutboxMessage.objects.filter(campaign=campaign).values_list("message_id", "email")
        )
        statuses = Counter(
            OutboxMessage.objects.filter(campaign=campaign).values_list("status", flat=True)
        )

    assert kills >= 4
    assert statuses == {"sent": RECIPIENTS}
    # One Message-ID per recipient, each the one its outbox row carries, none missing.
    assert set(sink.arrivals) == set(rows)
    assert all(sink.recipients[message_id] == (email,) for message_id, email in rows.items())
    assert len(set(rows.values())) == RECIPIENTS
    # A second hand-over only for a message in flight when its worker was killed.
    again = sum(n - 1 for n in sink.arrivals.values())
    print(f"chaos: {RECIPIENTS} recipients, {kills} kills, {again} sent again under their ID")
    assert again <= kills
