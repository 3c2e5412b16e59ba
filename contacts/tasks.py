from celery import shared_task
from django.core.mail import send_mass_mail
from django.db import connection
from django.utils import timezone

from contacts.services import appointment_reminders_claim


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
