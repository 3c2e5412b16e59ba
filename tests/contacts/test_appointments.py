from datetime import timedelta

import pytest
from django.utils import timezone
from icalendar import Calendar

from contacts import services
from contacts.models import Appointment
from contacts.selectors import contact_appointments
from crm.users.models import Role, User
from crm.users.services import user_calendar_token, user_create
from tests.conftest import PASSWORD
from tracking.models import TimelineEntry

pytestmark = pytest.mark.django_db

ALPHA = {"HTTP_HOST": "alpha.localhost"}


@pytest.fixture
def admin(in_alpha):
    return User.objects.get(email="admin@alpha.test")


@pytest.fixture
def contact(admin):
    return services.contact_create(actor=admin, first_name="Peter", last_name="Gibbons")


def test_booking_from_the_contact_page_puts_it_on_the_timeline_and_in_the_calendar(
    client, admin, contact
):
    client.post("/login/", {"username": admin.email, "password": PASSWORD}, **ALPHA)

    client.post(
        f"/contacts/{contact.pk}/appointments/",
        {
            "title": "Quarterly review",
            "starts_at": "2027-01-12T10:00",
            "ends_at": "2027-01-12T11:00",
            "location": "Initech HQ",
            "remind_minutes_before": "30",
        },
        **ALPHA,
    )

    appointment = Appointment.objects.get()
    assert list(appointment.contacts.all()) == [contact]
    assert list(appointment.users.all()) == [admin]
    assert TimelineEntry.objects.filter(contact=contact, kind="appointment").exists()
    page = client.get("/calendar/", **ALPHA)
    assert [a.title for a in page.context["appointments"]] == ["Quarterly review"]


def test_an_appointment_that_ends_before_it_starts_is_refused(client, admin, contact):
    client.post("/login/", {"username": admin.email, "password": PASSWORD}, **ALPHA)

    response = client.post(
        f"/contacts/{contact.pk}/appointments/",
        {
            "title": "Backwards",
            "starts_at": "2027-01-12T10:00",
            "ends_at": "2027-01-12T09:00",
            "remind_minutes_before": "15",
        },
        **ALPHA,
        follow=True,
    )

    assert "The end must be after the start." in response.content.decode()
    assert not Appointment.objects.exists()


def test_the_private_feed_is_valid_icalendar_with_only_the_users_appointments(
    client, admin, contact
):
    now = timezone.now()
    other = user_create(
        email="other@alpha.test", password=PASSWORD, full_name="Other", role=Role.SALES
    )
    services.appointment_create(
        actor=admin,
        title="Mine",
        starts_at=now + timedelta(days=1),
        ends_at=now + timedelta(days=1, hours=1),
        contacts=[contact],
        location="Room 1",
    )
    services.appointment_create(
        actor=other,
        title="Theirs",
        starts_at=now + timedelta(days=2),
        ends_at=now + timedelta(days=2, hours=1),
    )

    response = client.get(f"/calendar/feed/{user_calendar_token(user=admin)}.ics", **ALPHA)

    assert response["Content-Type"].startswith("text/calendar")
    events = Calendar.from_ical(response.content).walk("VEVENT")
    assert [str(e["summary"]) for e in events] == ["Mine"]
    assert str(events[0]["location"]) == "Room 1"
    assert "Peter Gibbons" in str(events[0]["description"])
    assert client.get("/calendar/feed/not-a-token.ics", **ALPHA).status_code == 404


def test_a_feed_token_of_one_tenant_means_nothing_on_another(client, admin, beta):
    token = user_calendar_token(user=admin)

    assert client.get(f"/calendar/feed/{token}.ics", HTTP_HOST="beta.localhost").status_code == 404


def test_reminders_are_claimed_once_when_due(admin):
    now = timezone.now()
    soon = services.appointment_create(
        actor=admin,
        title="Soon",
        starts_at=now + timedelta(minutes=10),
        ends_at=now + timedelta(minutes=40),
        remind_minutes_before=15,
    )
    services.appointment_create(
        actor=admin,
        title="Later",
        starts_at=now + timedelta(hours=3),
        ends_at=now + timedelta(hours=4),
        remind_minutes_before=15,
    )
    services.appointment_create(
        actor=admin,
        title="Past",
        starts_at=now - timedelta(hours=1),
        ends_at=now - timedelta(minutes=30),
    )

    first = services.appointment_reminders_claim(now=now)
    second = services.appointment_reminders_claim(now=now)

    assert [a.pk for a in first] == [soon.pk] and second == []


@pytest.fixture
def sales(in_alpha):
    return user_create(
        email="sales@alpha.test", password=PASSWORD, full_name="Sally Sales", role=Role.SALES
    )


BOOKING = {
    "title": "Kick-off",
    "starts_at": "2027-02-01T09:00",
    "ends_at": "2027-02-01T10:00",
    "remind_minutes_before": "15",
}


def test_booking_asks_colleagues_and_other_contacts_and_the_page_shows_them(client, admin, sales):
    peter = services.contact_create(actor=sales, first_name="Peter", last_name="Gibbons")
    milton = services.contact_create(actor=sales, first_name="Milton", last_name="Waddams")
    samir = services.contact_create(actor=sales, first_name="Samir", last_name="Nagheenanajar")
    client.post("/login/", {"username": sales.email, "password": PASSWORD}, **ALPHA)

    suggestions = client.get(
        "/contacts/options/", {"field": "contacts", "contacts": "wadd"}, **ALPHA
    )
    assert f'value="Milton Waddams #{milton.pk}"' in suggestions.content.decode()
    one_letter = client.get("/contacts/options/", {"field": "contacts", "contacts": "w"}, **ALPHA)
    assert one_letter.status_code == 200 and "Waddams" not in one_letter.content.decode()
    client.post(
        f"/contacts/{peter.pk}/appointments/",
        {
            **BOOKING,
            "users": [admin.pk],
            # A suggestion as filled in, a bare id, the page's own contact again, a blank box.
            "contacts": [f"Milton Waddams #{milton.pk}", str(samir.pk), str(peter.pk), ""],
        },
        **ALPHA,
    )

    appointment = Appointment.objects.get()
    assert set(appointment.users.all()) == {sales, admin}
    assert set(appointment.contacts.all()) == {peter, milton, samir}
    assert TimelineEntry.objects.filter(contact=milton, kind="appointment").exists()
    page = client.get(f"/contacts/{peter.pk}/", **ALPHA)
    [shown] = page.context["appointments"]
    assert shown == appointment
    attendees = page.content.decode().split('data-testid="attendees">')[1].split("</small>")[0]
    assert "Sally Sales" in attendees and "Alpha Admin" in attendees
    assert f'<a href="/contacts/{milton.pk}/">Milton Waddams</a>' in attendees
    calendar = client.get("/calendar/", **ALPHA).content.decode()
    assert "Kick-off" in calendar and "Alpha Admin" in calendar


def test_a_contact_out_of_reach_is_refused_and_nothing_is_booked(client, sales, admin):
    peter = services.contact_create(actor=sales, first_name="Peter", last_name="Gibbons")
    hidden = services.contact_create(actor=admin, first_name="Bob", last_name="Porter")
    client.post("/login/", {"username": sales.email, "password": PASSWORD}, **ALPHA)

    suggestions = client.get(
        "/contacts/options/", {"field": "contacts", "contacts": "Porter"}, **ALPHA
    )
    response = client.post(
        f"/contacts/{peter.pk}/appointments/",
        {**BOOKING, "contacts": [f"Bob Porter #{hidden.pk}"]},
        **ALPHA,
        follow=True,
    )

    nonsense = client.post(
        f"/contacts/{peter.pk}/appointments/",
        {**BOOKING, "users": ["nope"], "contacts": [str(peter.pk)] * 21},
        **ALPHA,
        follow=True,
    )

    assert "Bob" not in suggestions.content.decode()
    assert f"Other contacts: No contact “Bob Porter #{hidden.pk}” found." in (
        response.content.decode()
    )
    assert nonsense.status_code == 200
    assert "Other contacts: Choose at most 20 contacts." in nonsense.content.decode()
    assert "Colleagues: “nope” is not a valid value." in nonsense.content.decode()
    assert not Appointment.objects.exists()


def test_the_feed_names_the_organizer_and_every_attendee_with_an_address(
    client, admin, sales, contact
):
    now = timezone.now()
    peter = services.contact_create(
        actor=admin, first_name="Peter", last_name="O'Brien, Jr.", email="peter@initech.test"
    )
    services.appointment_create(
        actor=admin,
        title="Review",
        starts_at=now + timedelta(days=1),
        ends_at=now + timedelta(days=1, hours=1),
        users=[sales],
        contacts=[peter, contact],  # `contact` has no e-mail address
    )

    response = client.get(f"/calendar/feed/{user_calendar_token(user=sales)}.ics", **ALPHA)

    [event] = Calendar.from_ical(response.content).walk("VEVENT")
    attendees = {(str(a), a.params["CN"]) for a in event["attendee"]}
    assert attendees == {
        ("mailto:admin@alpha.test", "Alpha Admin"),
        ("mailto:sales@alpha.test", "Sally Sales"),
        ("mailto:peter@initech.test", "Peter O'Brien, Jr."),
    }
    organizer = event["organizer"]
    assert (str(organizer), organizer.params["CN"]) == ("mailto:admin@alpha.test", "Alpha Admin")


def test_the_contact_page_lists_what_is_ahead_soonest_first_then_the_latest_past(admin, contact):
    now = timezone.now()
    for days in (-30, -2, 1, 3, 20, 40):
        services.appointment_create(
            actor=admin,
            title=f"Day {days}",
            starts_at=now + timedelta(days=days),
            ends_at=now + timedelta(days=days, hours=1),
            contacts=[contact],
        )

    listed = contact_appointments(admin, contact, now=now, limit=5)

    assert [a.title for a in listed] == ["Day 1", "Day 3", "Day 20", "Day 40", "Day -2"]
