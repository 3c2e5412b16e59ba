"""The private iCalendar (RFC 5545) feed of a user's appointments, for phone and desktop
calendars to subscribe to."""

from datetime import datetime, timedelta

from django.db.models import Q
from icalendar import Calendar, Event, vCalAddress, vText

from contacts.models import Appointment

PAST = timedelta(days=60)
FUTURE = timedelta(days=365)


def feed(*, user, tenant, host: str, now: datetime) -> bytes:
    calendar = Calendar()
    calendar.add("prodid", "-//CRM//Appointments//EN")
    calendar.add("version", "2.0")
    calendar.add("x-wr-calname", f"{tenant.name} CRM: {user.full_name}")
    appointments = (
        Appointment.objects.filter(Q(organizer=user) | Q(users=user))
        .filter(starts_at__gte=now - PAST, starts_at__lte=now + FUTURE)
        .select_related("organizer")
        .prefetch_related("contacts")
        .distinct()
    )
    for appointment in appointments:
        event = Event()
        event.add("uid", f"appointment-{appointment.pk}@{host}")
        event.add("dtstamp", now)
        event.add("dtstart", appointment.starts_at)
        event.add("dtend", appointment.ends_at)
        event.add("summary", appointment.title)
        if appointment.location:
            event.add("location", appointment.location)
        people = ", ".join(c.full_name for c in appointment.contacts.all())
        description = "\n".join(
            part for part in (f"With {people}" if people else "", appointment.notes) if part
        )
        if description:
            event.add("description", description)
        organizer = vCalAddress(f"mailto:{appointment.organizer.email}")
        organizer.params["cn"] = vText(appointment.organizer.full_name)
        event.add("organizer", organizer)
        calendar.add_component(event)
    return calendar.to_ical()
