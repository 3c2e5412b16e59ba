"""A real Celery worker (celery.contrib.testing, in-process) on the real Redis broker."""

import re

import pytest
from django.db import connection
from django_tenants.utils import schema_context

from crm.celery import NoTenantError
from crm.users.models import Role, User
from crm.users.services import user_invite
from crm.users.tasks import invitation_send
from tests.conftest import body_of


def test_a_task_runs_in_the_schema_of_the_tenant_that_queued_it(
    committed_tenant, celery_worker, mailbox
):
    first, second = committed_tenant("first"), committed_tenant("second")
    with schema_context(first.schema_name):
        admin = User.objects.get()
        invited = user_invite(
            invited_by=admin, email="newbie@first.test", full_name="Newbie", role=Role.SALES
        )
    connection.set_schema_to_public()

    # on_commit queued the task; the worker reads the user from first's schema and mails them a
    # link to first's host.
    message = mailbox.wait_for("newbie@first.test")
    assert re.search(rf"http://{first.slug}\.localhost\S*/invitation/", body_of(message))

    # The same user id queued from second's schema names nobody there: the task finds no one.
    with schema_context(second.schema_name):
        assert not User.objects.filter(pk=invited.pk, invited_at__isnull=False).exists()
        result = invitation_send.delay(invited.pk)
    assert result.get(timeout=20) is False


def test_a_task_queued_without_a_tenant_fails_loudly(celery_worker):
    connection.set_schema_to_public()

    result = invitation_send.delay(1)

    with pytest.raises(NoTenantError, match="queued without a tenant"):
        result.get(timeout=20)


def test_the_beat_job_reminds_attendees_in_every_tenant_once(
    committed_tenant, celery_worker, mailbox
):
    from datetime import timedelta

    from django.utils import timezone

    from contacts.services import appointment_create
    from contacts.tasks import appointment_reminders_send
    from crm.tenants.tasks import for_each_tenant

    tenant = committed_tenant("remind")
    with schema_context(tenant.schema_name):
        admin = User.objects.get()
        now = timezone.now()
        appointment_create(
            actor=admin,
            title="Kick-off",
            starts_at=now + timedelta(minutes=5),
            ends_at=now + timedelta(minutes=35),
            location="Room 2",
        )
    connection.set_schema_to_public()

    for_each_tenant.delay("contacts.tasks.appointment_reminders_send").get(timeout=20)
    message = mailbox.wait_for(admin.email)
    with schema_context(tenant.schema_name):
        again = appointment_reminders_send.delay()
    connection.set_schema_to_public()

    assert again.get(timeout=20) == 0
    assert message["Subject"] == "Reminder: Kick-off"
    assert "Room 2" in body_of(message)
    assert len(mailbox.to(admin.email)) == 1


def test_an_email_written_on_a_contact_page_is_sent_once_by_the_worker(
    committed_tenant, celery_worker, mailbox
):
    from contacts.models import Activity
    from contacts.services import contact_create, contact_email
    from contacts.tasks import contact_email_send

    tenant = committed_tenant("mail")
    with schema_context(tenant.schema_name):
        admin = User.objects.get()
        contact = contact_create(actor=admin, first_name="Peter", email="peter@initech.test")
        activity = contact_email(
            actor=admin, contact=contact, subject="Your quote", body="Hello Peter,\nhere it is."
        )
    connection.set_schema_to_public()

    message = mailbox.wait_for("peter@initech.test")
    with schema_context(tenant.schema_name):
        retried = contact_email_send.delay(activity.pk)
        assert retried.get(timeout=20) is False
        assert Activity.objects.get(pk=activity.pk).outcome == "sent"
    connection.set_schema_to_public()

    assert message["Subject"] == "Your quote"
    assert message["Reply-To"] == admin.email
    assert "Founder Person via" in message["From"]
    assert "here it is." in body_of(message)
    assert len(mailbox.to("peter@initech.test")) == 1
