"""A development SMTP server that keeps every message in a Maildir instead of delivering it, and
what lets each tenant read the mail it sent there in the browser.

`make run` starts the server, points the app's mail at it and sets CRM_MAILCATCHER_DIR to its
Maildir; the caught-mail pages (crm.mailcatcher_views, /mail/) then list a tenant's messages,
and `manage.py read_mail` prints them all in a terminal. In production the setting is unset and
the pages do not exist. Run on its own with
`python -m crm.mailcatcher --port 1025 --maildir .data/mail`.

Which tenant a caught message belongs to. The recipients cannot tell (one address can be a
contact of two tenants, and a marketer's test goes to the marketer's own address), nor can the
Message-ID (only campaign mail carries the tenant's host). What knows is the app at the moment
it sends: its database connection is in the schema of the tenant whose request or Celery task
sends the mail, the same thing that decides which rows that code can read. So while the catcher
is in use, `TenantStampingBackend` writes that schema into an X-CRM-Tenant header of every
message (replacing any such header already there), and a tenant is shown only messages stamped
with its schema and nothing else. Mail sent outside any tenant (the public site) is stamped
`public` and shown to no tenant. No sending code has to remember anything for this.
"""

import argparse
import mailbox
import signal
import threading
from dataclasses import dataclass, field
from datetime import datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

from aiosmtpd.controller import Controller
from django.core.mail.backends import smtp
from django.db import connection

HEADER = "X-CRM-Tenant"


class MaildirHandler:
    def __init__(self, folder: str):
        self.box = mailbox.Maildir(folder, create=True)

    async def handle_DATA(self, server, session, envelope):
        self.box.add(envelope.original_content)
        return "250 Message accepted for delivery"


class TenantStampingBackend(smtp.EmailBackend):
    """Django's SMTP backend, stamping each message with the schema it is sent from (see the
    module docstring). Needs the tenant's schema to be the connection's when it sends."""

    def send_messages(self, email_messages):
        for message in email_messages:
            headers = {
                name: value
                for name, value in message.extra_headers.items()
                if name.lower() != HEADER.lower()
            }
            message.extra_headers = {**headers, HEADER: connection.schema_name}
        return super().send_messages(email_messages)


@dataclass(frozen=True)
class CaughtSummary:
    """A caught message as the list shows it."""

    key: str
    tenant: str | None
    to: str
    subject: str
    date: datetime | None
    # When the catcher took it (from its Maildir name), for newest-first order.
    arrived: float


@dataclass
class Attachment:
    filename: str
    content_type: str
    size: int


@dataclass
class CaughtMessage:
    """A caught message opened: its headers, HTML and text bodies, and attachments."""

    summary: CaughtSummary
    sender: str
    html: str
    text: str
    attachments: list[Attachment] = field(default_factory=list)


def _box(folder: str) -> mailbox.Maildir | None:
    if not (Path(folder) / "cur").is_dir():
        return None
    return mailbox.Maildir(folder, factory=None, create=False)


def _arrived(key: str) -> float:
    """Python's Maildir names a message "<seconds>.M<microseconds>P<pid>Q<n>.<host>"."""
    seconds, _, rest = key.partition(".M")
    micro = rest.partition("P")[0]
    if seconds.isdigit() and micro.isdigit():
        return int(seconds) + int(micro) / 1e6
    return 0.0


def _stamp(message: EmailMessage) -> str | None:
    stamps = message.get_all(HEADER) or []
    return str(stamps[0]).strip() if len(stamps) == 1 else None


def _date(message: EmailMessage) -> datetime | None:
    try:
        return message["Date"].datetime if message["Date"] else None
    except (AttributeError, TypeError, ValueError):
        return None


def _summarize(key: str, message: EmailMessage) -> CaughtSummary:
    return CaughtSummary(
        key=key,
        tenant=_stamp(message),
        to=str(message["To"] or ""),
        subject=str(message["Subject"] or ""),
        date=_date(message),
        arrived=_arrived(key),
    )


# Headers of the messages already read, by (folder, key): a caught message never changes, so
# each is parsed once per process however often the list is shown.
_SUMMARIES: dict[tuple[str, str], CaughtSummary] = {}
_SUMMARIES_MAX = 100_000


def _summary(box: mailbox.Maildir, folder: str, key: str) -> CaughtSummary | None:
    cached = _SUMMARIES.get((folder, key))
    if cached is not None:
        return cached
    try:
        with box.get_file(key) as file:
            message = BytesParser(policy=policy.default).parse(file, headersonly=True)
    except (KeyError, OSError):
        # Deleted since the folder was listed.
        return None
    if len(_SUMMARIES) >= _SUMMARIES_MAX:
        _SUMMARIES.clear()
    summary = _SUMMARIES[(folder, key)] = _summarize(key, message)
    return summary


def caught_list(*, folder: str, schema: str) -> list[CaughtSummary]:
    """The messages caught for the tenant of this schema, newest first."""
    box = _box(folder)
    if box is None:
        return []
    summaries = (_summary(box, folder, key) for key in box.iterkeys())
    mine = [summary for summary in summaries if summary and summary.tenant == schema]
    return sorted(mine, key=lambda summary: (summary.arrived, summary.key), reverse=True)


def caught_get(*, folder: str, schema: str, key: str) -> CaughtMessage | None:
    """One caught message of the tenant of this schema; None if there is none by that key or
    it is another tenant's."""
    box = _box(folder)
    if box is None:
        return None
    try:
        with box.get_file(key) as file:
            message = BytesParser(policy=policy.default).parse(file)
    except (KeyError, OSError):
        return None
    summary = _summarize(key, message)
    if summary.tenant != schema:
        return None
    html = message.get_body(preferencelist=("html",))
    text = message.get_body(preferencelist=("plain",))
    return CaughtMessage(
        summary=summary,
        sender=str(message["From"] or ""),
        html=html.get_content() if html is not None else "",
        text=text.get_content() if text is not None else "",
        attachments=[
            Attachment(
                filename=part.get_filename() or "(no name)",
                content_type=part.get_content_type(),
                size=len(part.get_payload(decode=True) or b""),
            )
            for part in message.iter_attachments()
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--maildir", required=True)
    args = parser.parse_args()

    controller = Controller(MaildirHandler(args.maildir), hostname="127.0.0.1", port=args.port)
    controller.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
