from celery import shared_task
from django.core.mail import EmailMessage, send_mass_mail
from django.db import connection
from django.utils import timezone

from contacts.imports import import_job_run
from contacts.letters import letter_batch_run
from contacts.models import Activity
from contacts.services import EMAIL_SENT, appointment_reminders_claim, contact_email_claim
from crm.mail import sent_as


@shared_task
def appointment_reminders_send() -> int:
    """E-mail each attending user of the appointments about to start. Runs in one tenant's
    schema (queued for every tenant by the beat job); claiming marks them, so none twice."""
    appointments = appointment_reminders_claim(now=timezone.now())
    messages = []
    for appointment in appointments:
        when = timezone.localtime(appointment.starts_at).strftime("%H:%M on %d %b %Y")
        people = ", ".join(c.full_name for c in appointment.contacts.all())
        body = (
            f"{appointment.title} starts at {when}"
            f"{' at ' + appointment.location if appointment.location else ''}.\n"
            f"{'With ' + people + '.' if people else ''}\n\n"
            f"{connection.tenant.name} CRM"
        )
        for user in appointment.users.all():
            if user.is_active:
                messages.append((f"Reminder: {appointment.title}", body, None, [user.email]))
    send_mass_mail(messages, fail_silently=False)
    return len(messages)


@shared_task
def contact_email_send(activity_id: int) -> bool:
    """Send an e-mail written on a contact's page. Claims the activity first (queued -> sending),
    so a retried or duplicated task sends nothing twice; replies go to the salesperson."""
    activity = contact_email_claim(activity_id=activity_id)
    if activity is None:
        return False
    sender = activity.user
    message = EmailMessage(
        subject=activity.subject,
        body=activity.notes,
        from_email=sent_as(f"{sender.full_name} via {connection.tenant.name}"),
        to=[activity.contact.email],
        reply_to=[sender.email],
    )
    message.send()
    Activity.objects.filter(pk=activity.pk).update(outcome=EMAIL_SENT)
    return True


@shared_task
def import_job_run_task(job_id: int) -> bool:
    """Import an uploaded CSV file; a duplicated delivery does nothing (the claim is a row lock,
    see contacts.imports.import_job_run); progress goes to the cache as it runs."""
    return import_job_run(job_id=job_id) is not None


@shared_task
def letter_batch_run_task(batch_id: int) -> bool:
    """Write a batch of letters to a contact list; a duplicated delivery does nothing (the claim
    is a row lock, see contacts.letters.letter_batch_run)."""
    return letter_batch_run(batch_id=batch_id) is not None
