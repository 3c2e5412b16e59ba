import smtplib

from celery import shared_task
from django.core.mail import EmailMessage
from django.db import connection
from django.template.loader import render_to_string
from django.urls import reverse

from crm.mail import sent_as
from crm.tenants.selectors import tenant_url
from leads.services import (
    confirmation_claim,
    confirmation_token,
    confirmation_unclaim,
    unconfirmed_purge,
)


@shared_task(
    autoretry_for=(smtplib.SMTPException, OSError),
    retry_backoff=True,
    max_retries=5,
)
def confirmation_send(submission_id: int) -> bool:
    """E-mail a double opt-in submission's visitor the link that confirms their address. Claims
    the submission first, so a duplicated task sends nothing twice; a failed hand-over releases
    the claim for the retry."""
    submission = confirmation_claim(submission_id=submission_id)
    if submission is None:
        return False
    tenant = connection.tenant
    link = tenant_url(tenant, reverse("leads:confirm", args=[confirmation_token(submission)]))
    context = {"tenant": tenant, "form": submission.form, "link": link}
    message = EmailMessage(
        subject=f"Please confirm your e-mail address for {tenant.name}",
        body=render_to_string("leads/email/confirm.txt", context),
        from_email=sent_as(tenant.name),
        to=[submission.data["email"]],
    )
    try:
        message.send()
    except Exception:
        confirmation_unclaim(submission_id=submission_id)
        raise
    return True


@shared_task
def unconfirmed_submissions_purge() -> int:
    """Beat, per tenant: drop double opt-in submissions whose confirmation link has expired."""
    return unconfirmed_purge()
