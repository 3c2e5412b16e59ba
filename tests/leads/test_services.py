"""What a filled lead form does to the CRM: the contact (matched on e-mail in any case, or made),
its owner by round-robin or territory, the campaign response, the timeline and the follow-up
action item; and that a submission is processed once."""

from datetime import timedelta

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context

from campaigns.models import CampaignMember
from campaigns.services import campaign_create, campaign_member_advance, campaign_members_add
from contacts.models import Account, Contact, Task
from contacts.services import contact_create
from crm.users.models import User
from leads.models import FormSubmission, LeadForm
from leads.services import (
    confirmation_token,
    confirmation_token_read,
    lead_form_create,
    submission_confirm,
    submission_process,
    submission_receive,
    unconfirmed_purge,
)
from tracking.models import AuditEntry, TimelineEntry

pytestmark = pytest.mark.django_db

ANN = {
    "email": "Ann.Lee@Example.test",
    "first_name": "Ann",
    "last_name": "Lee",
    "company": "Initech",
    "interests": ["AI"],
}


def test_a_new_address_becomes_a_contact_with_owner_task_source_and_timeline(make_form, reps):
    form = make_form(follow_up_days=2)

    submission = submission_receive(form=form, data=ANN, ip="10.0.0.1", page_url="https://x.test/")

    contact = Contact.objects.get()
    assert (contact.full_name, contact.email, contact.interests) == (
        "Ann Lee",
        "Ann.Lee@Example.test",
        ["AI"],
    )
    assert contact.source == "form: Spring webinar"
    assert contact.owner == reps[0]
    assert contact.account == Account.objects.get(name="Initech")
    task = Task.objects.get(contact=contact)
    assert task.assignee == reps[0]
    assert task.title == "Follow up: Ann Lee filled the form Spring webinar"
    assert task.due_on == timezone.localdate() + timedelta(days=2)
    entry = TimelineEntry.objects.get(contact=contact, kind=TimelineEntry.Kind.FORM)
    assert entry.summary == "Filled the form Spring webinar"
    assert "Interests: AI" in entry.detail
    assert TimelineEntry.objects.filter(
        contact=contact, summary="Ann Lee was added to the CRM", actor=None
    ).exists()
    created = AuditEntry.objects.get(model="contacts.contact", object_id=contact.pk)
    assert created.actor is None
    submission.refresh_from_db()
    assert submission.status == FormSubmission.Status.PROCESSED
    assert (submission.contact, submission.created_contact) == (contact, True)
    assert (submission.ip, submission.page_url) == ("10.0.0.1", "https://x.test/")


def test_an_existing_address_in_another_case_is_filled_in_but_never_overwritten(
    make_form, marketer, reps
):
    form = make_form()
    owner = reps[1]
    known = contact_create(
        actor=marketer,
        first_name="Annabel",
        email="ann.lee@example.TEST",
        interests=["analytics"],
        owner=owner,
        source="Trade show",
    )

    submission_receive(
        form=form,
        data={**ANN, "first_name": "Mallory", "phone": "+1 555", "interests": ["Analytics", "AI"]},
    )

    assert Contact.objects.count() == 1
    known.refresh_from_db()
    assert known.first_name == "Annabel"
    assert known.phone == "+1 555"
    assert known.interests == ["analytics", "AI"]
    assert (known.owner, known.source) == (owner, "Trade show")
    assert known.account.name == "Initech"
    assert Task.objects.get(contact=known).assignee == owner
    assert FormSubmission.objects.get().created_contact is False
    change = AuditEntry.objects.get(object_id=known.pk, action="updated")
    assert change.actor is None
    assert set(change.changes) == {"last_name", "phone", "interests", "account"}
    assert TimelineEntry.objects.filter(contact=known, summary__startswith="Changed ").exists()


def test_an_existing_contact_without_an_owner_gets_one_by_the_rule(make_form, marketer, reps):
    form = make_form()
    orphan = contact_create(actor=marketer, first_name="Orphan", email="orphan@example.test")
    Contact.objects.filter(pk=orphan.pk).update(owner=None)

    submission_receive(form=form, data={"email": "ORPHAN@example.test", "first_name": "O"})

    orphan.refresh_from_db()
    assert orphan.owner == reps[0]
    assert Task.objects.get(contact=orphan).assignee == reps[0]


def test_round_robin_takes_turns_skips_inactive_users_and_falls_back(make_form, reps, fallback):
    form = make_form()
    third = User.objects.create(email="tom@alpha.test", full_name="Tom Rep", role="sales")
    form.round_robin_users.add(third)

    owners = []
    for n in range(4):
        submission_receive(form=form, data={"email": f"p{n}@example.test", "first_name": "P"})
        owners.append(Contact.objects.get(email=f"p{n}@example.test").owner)
    reps[1].is_active = False
    reps[1].save()
    submission_receive(form=form, data={"email": "p4@example.test", "first_name": "P"})
    form.round_robin_users.clear()
    submission_receive(form=form, data={"email": "p5@example.test", "first_name": "P"})

    assert owners == [reps[0], reps[1], third, reps[0]]
    assert Contact.objects.get(email="p4@example.test").owner == third
    assert Contact.objects.get(email="p5@example.test").owner == fallback


def test_by_territory_in_any_case_else_the_fallback(make_form, reps, fallback):
    form = make_form(
        contact_fields=["first_name", "territory"],
        assignment=LeadForm.Assignment.TERRITORY,
        territory_owners=[("Nordics", reps[0]), ("Iberia", reps[1])],
    )

    for email, territory in (("a@x.test", "nordics"), ("b@x.test", "IBERIA"), ("c@x.test", "")):
        data = {"email": email, "first_name": "X"}
        if territory:
            data["territory"] = territory
        submission_receive(form=form, data=data)
    reps[1].is_active = False
    reps[1].save()
    submission_receive(
        form=form, data={"email": "d@x.test", "first_name": "X", "territory": "Iberia"}
    )

    owners = dict(Contact.objects.values_list("email", "owner"))
    assert owners == {
        "a@x.test": reps[0].pk,
        "b@x.test": reps[1].pk,
        "c@x.test": fallback.pk,
        "d@x.test": fallback.pk,
    }
    assert Contact.objects.get(email="a@x.test").territory == "nordics"


def test_without_an_active_owner_the_contact_is_kept_and_nobody_gets_a_task(make_form, reps):
    form = make_form(round_robin_users=[])
    form.fallback_owner.is_active = False
    form.fallback_owner.save()

    submission_receive(form=form, data={"email": "lonely@example.test"})

    contact = Contact.objects.get()
    assert (contact.first_name, contact.owner) == ("lonely", None)
    assert not Task.objects.exists()
    assert TimelineEntry.objects.filter(contact=contact, kind="form").exists()


def test_a_filled_form_is_a_response_on_its_campaign_and_never_moves_a_member_back(
    make_form, marketer
):
    campaign = campaign_create(actor=marketer, name="Spring launch", kind="web")
    form = make_form(campaign=campaign)
    converted = contact_create(actor=marketer, first_name="Cid", email="cid@example.test")
    campaign_members_add(actor=marketer, campaign=campaign, contacts=Contact.objects.all())
    campaign_member_advance(campaign=campaign, contact=converted, status="converted")

    submission_receive(form=form, data={**ANN})
    submission_receive(form=form, data={"email": "cid@example.test", "first_name": "Cid"})

    members = CampaignMember.objects.filter(campaign=campaign)
    statuses = dict(members.values_list("contact__first_name", "status"))
    assert statuses == {"Ann": "responded", "Cid": "converted"}
    assert Contact.objects.get(first_name="Ann").source == "Spring launch"


def test_processing_a_submission_twice_does_nothing_the_second_time(make_form):
    form = make_form()
    submission = submission_receive(form=form, data=ANN)

    again = submission_process(submission=submission)

    assert again.status == FormSubmission.Status.PROCESSED
    assert Task.objects.count() == 1
    assert TimelineEntry.objects.filter(kind="form").count() == 1


def test_under_double_opt_in_nothing_reaches_the_crm_before_the_confirmation(
    make_form, django_capture_on_commit_callbacks
):
    form = make_form(double_opt_in=True)

    with django_capture_on_commit_callbacks() as queued:
        submission = submission_receive(form=form, data=ANN)

    assert len(queued) == 1  # the confirmation e-mail
    assert submission.status == FormSubmission.Status.AWAITING_CONFIRMATION
    assert not Contact.objects.exists() and not Task.objects.exists()
    assert confirmation_token_read(confirmation_token(submission)) == submission
    assert confirmation_token_read(confirmation_token(submission) + "x") is None

    submission_confirm(submission=submission)
    submission_confirm(submission=submission)

    submission.refresh_from_db()
    assert submission.status == FormSubmission.Status.PROCESSED
    assert submission.confirmed_at is not None
    assert Contact.objects.get().email == ANN["email"]
    assert Task.objects.count() == 1


def test_unconfirmed_submissions_go_once_their_link_expired_and_confirmed_ones_stay(make_form):
    form = make_form(double_opt_in=True)
    old = submission_receive(form=form, data=ANN)
    recent = submission_receive(form=form, data={**ANN, "email": "recent@example.test"})
    done = submission_receive(form=form, data={**ANN, "email": "done@example.test"})
    submission_confirm(submission=done)
    week_ago = timezone.now() - timedelta(days=8)
    FormSubmission.objects.filter(pk__in=[old.pk, done.pk]).update(submitted_at=week_ago)

    assert unconfirmed_purge() == 1
    assert set(FormSubmission.objects.values_list("pk", flat=True)) == {recent.pk, done.pk}


def test_a_confirmation_token_of_one_tenant_names_nothing_in_another(make_form, beta):
    submission = submission_receive(form=make_form(double_opt_in=True), data=ANN)
    token = confirmation_token(submission)

    with schema_context(beta.schema_name):
        assert confirmation_token_read(token) is None


def test_the_form_s_own_rules_are_checked(marketer, fallback):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as refused:
        lead_form_create(
            actor=marketer,
            name="Bad",
            contact_fields=["first_name"],
            required_fields=["phone"],
            interests=["AI", "ai"],
            assignment=LeadForm.Assignment.TERRITORY,
            redirect_url="javascript:alert(1)",
            fallback_owner=fallback,
        )

    assert set(refused.value.message_dict) == {
        "required_fields",
        "contact_fields",
        "interests",
        "redirect_url",
    }
    assert not LeadForm.objects.exists()
