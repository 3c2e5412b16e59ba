import pytest
from django.core.exceptions import ValidationError

from contacts import services
from contacts.models import Activity, Contact
from crm.users.models import User
from tracking.models import AuditEntry, TimelineEntry

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin(in_alpha):
    return User.objects.get(email="admin@alpha.test")


def test_creating_a_contact_records_who_added_it(admin):
    account = services.account_create(actor=admin, name="Initech")

    contact = services.contact_create(
        actor=admin,
        first_name="Peter",
        last_name="Gibbons",
        email="peter@initech.test",
        account=account,
    )

    assert contact.owner == admin
    audit = AuditEntry.objects.get(model="contacts.contact", object_id=contact.pk)
    assert audit.action == "created" and audit.actor == admin
    assert audit.changes["email"] == [None, "peter@initech.test"]
    entry = TimelineEntry.objects.get(contact=contact)
    assert entry.account == account and "added Peter Gibbons" in entry.summary


def test_an_update_keeps_only_what_changed_and_nothing_when_nothing_did(admin):
    contact = services.contact_create(actor=admin, first_name="Milton", email="m@initech.test")

    services.contact_update(actor=admin, contact=contact, title="Collator", email="m@initech.test")
    services.contact_update(actor=admin, contact=contact, title="Collator")

    updates = AuditEntry.objects.filter(object_id=contact.pk, action="updated")
    assert [u.changes for u in updates] == [{"title": ["", "Collator"]}]
    assert (
        TimelineEntry.objects.filter(contact=contact, summary__contains="changed title").count()
        == 1
    )


def test_an_invalid_contact_saves_nothing(admin):
    with pytest.raises(ValidationError) as error:
        services.contact_create(actor=admin, first_name="", email="not-an-email")

    assert {"first_name", "email"} <= set(error.value.message_dict)
    assert not Contact.objects.exists()
    assert not TimelineEntry.objects.exists()


def test_logging_a_call_puts_it_on_the_contacts_and_accounts_timelines(admin):
    account = services.account_create(actor=admin, name="Initech")
    contact = services.contact_create(actor=admin, first_name="Bill", account=account)

    services.activity_log(
        actor=admin,
        contact=contact,
        kind=Activity.Kind.CALL,
        subject="Discussed TPS reports",
        outcome="Call back Friday",
        notes="Wants the new cover sheet",
    )

    activity = Activity.objects.get()
    assert (activity.contact, activity.account, activity.user) == (contact, account, admin)
    call = TimelineEntry.objects.get(kind="call")
    assert call.summary == "Call: Discussed TPS reports (Call back Friday)"
    assert call.contact == contact and call.account == account


def test_completing_a_task_twice_records_it_once(admin):
    contact = services.contact_create(actor=admin, first_name="Samir")
    task = services.task_create(actor=admin, contact=contact, title="Send the quote")

    services.task_set_done(actor=admin, task=task, done=True)
    services.task_set_done(actor=admin, task=task, done=True)

    task.refresh_from_db()
    assert task.is_done and task.assignee == admin
    assert TimelineEntry.objects.filter(summary__contains="completed the task").count() == 1
