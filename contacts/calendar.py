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
        .prefetch_related("users", "contacts")
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
        event.add("organizer", _address(appointment.organizer))
        # Everyone who attends and has an address: the users (the organizer among them) and the
        # contacts. A contact without an e-mail is named in the description only.
        for person in [*appointment.users.all(), *appointment.contacts.all()]:
            if person.email:
                event.add("attendee", _address(person))
        calendar.add_component(event)
    return calendar.to_ical()


def _address(person) -> vCalAddress:
    """A user or contact as a calendar address: their e-mail, with their name."""
    address = vCalAddress(f"mailto:{person.email}")
    address.params["cn"] = vText(person.full_name)
    return address
