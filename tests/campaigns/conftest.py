"""Fixtures for the campaign tests: an SMTP server that refuses, drops and keeps messages, an
admin of alpha, and an e-mail campaign ready to send."""

import threading
from email import message_from_bytes

import pytest
from aiosmtpd.controller import Controller

from campaigns import sending
from campaigns.segments import segment_create
from campaigns.services import campaign_create
from campaigns.templating import email_template_create
from contacts.services import contact_create
from crm.embedded import free_port
from crm.users.models import User

REFUSED = "refused@example.test"
DROPPED = "dropped@example.test"
GOING_AWAY = "busy@example.test"
EVALUATING = {
    "op": "and",
    "rules": [{"field": "lifecycle_stage", "operator": "eq", "value": "evaluation"}],
}


class _Sink:
    """An SMTP server that refuses one recipient with 550, drops the connection on another's
    message, and keeps the rest."""

    def __init__(self):
        self.messages = []
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address == REFUSED:
            return "550 5.1.1 No such user here"
        if address == GOING_AWAY:
            return "421 4.3.2 Closing, try later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if DROPPED in envelope.rcpt_tos:
            # The connection breaks while the message is being handed over.
            server.transport.close()
            return "421 Going away"
        with self.lock:
            self.messages.append(message_from_bytes(envelope.original_content))
        return "250 OK"

    def ids(self):
        return [m["Message-ID"] for m in self.messages]


@pytest.fixture
def sink(settings):
    handler = _Sink()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_USE_TLS = (
        "127.0.0.1",
        controller.port,
        False,
    )
    yield handler
    controller.stop()


def campaign_ready(admin, n=5):
    """An e-mail campaign with a template and a segment of n evaluating contacts."""
    template = email_template_create(
        actor=admin,
        name="Launch mail",
        subject="Hello {{ contact.first_name }}",
        html_body="<html><body><p>Hi {{ contact.first_name }}!</p></body></html>",
    )
    segment = segment_create(actor=admin, name="Evaluating", rules=EVALUATING)
    for i in range(n):
        contact_create(
            actor=admin,
            first_name=f"P{i}",
            email=f"p{i}@example.test",
            lifecycle_stage="evaluation",
        )
    campaign = campaign_create(actor=admin, name="Launch", kind="email", email_template=template)
    campaign.segments.add(segment)
    return campaign


@pytest.fixture
def admin(in_alpha):
    return User.objects.get(email="admin@alpha.test")


def send_all(campaign):
    for first, last in sending.dispatch_ranges(campaign_id=campaign.pk, size=2):
        sending.chunk_send(campaign_id=campaign.pk, first_id=first, last_id=last)
