from datetime import timedelta

import pytest
from django.utils import timezone
from icalendar import Calendar

from contacts import services
from contacts.models import Appointment
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
