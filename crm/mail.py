"""What the platform's own mail shares."""

from email.utils import formataddr, parseaddr

from django.conf import settings


def sent_as(name: str) -> str:
    """A From header that shows `name` (a person, a tenant) over the platform's own sending
    address, which its mail server is allowed to send from."""
    return formataddr((name, parseaddr(settings.DEFAULT_FROM_EMAIL)[1]))
