"""The e-mail telling an owner that a contact is ready to talk: a task of its own, tried again
when the mail server refuses it for now."""

from aiosmtpd.controller import Controller

from crm.embedded import free_port
from tracking.tasks import ready_notice_send


class _BusyOnce:
    """An SMTP server that answers the first message with "try again later" (451)."""

    def __init__(self):
        self.attempts = 0
        self.accepted = []

    async def handle_DATA(self, server, session, envelope):
        self.attempts += 1
        if self.attempts == 1:
            return "451 Busy, try again later"
        self.accepted.append(envelope.original_content)
        return "250 OK"


def test_a_refused_notice_is_sent_again(settings):
    handler = _BusyOnce()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", controller.port
    try:
        # Run here rather than on a worker, so the retry's back-off is not waited for.
        result = ready_notice_send.apply(
            kwargs={"subject": "Ready to talk: Ada", "body": "Score 61", "to": "owner@x.test"}
        )
    finally:
        controller.stop()

    assert result.successful()
    assert handler.attempts == 2
    [message] = handler.accepted
    assert b"Subject: Ready to talk: Ada" in message and b"To: owner@x.test" in message
