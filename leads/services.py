"""Writes for lead capture: building forms, and taking in what visitors send through them.

A submission is stored first (`submission_receive`) and then processed
(`submission_process`): the contact is matched on e-mail (any case) or created, its owner is
chosen by the form's rule, the response goes on the campaign and the timeline, and the owner gets
a follow-up action item. Under double opt-in, processing waits until the visitor confirms the
address through the signed link the confirmation e-mail carries (`submission_confirm`).

A public form is filled by anyone, who can type anyone's address: so a submission only fills in
what the CRM does not know yet about an existing contact (blank fields, a first source, an owner)
and adds the ticked interests; it never overwrites a name, phone or owner already there.

Everything runs in the current tenant's schema, as contacts.services does.
"""

from datetime import datetime, timedelta

from django.core import signing
from django.db import connection, transaction
from django.utils import timezone

from campaigns.models import CampaignMember
from campaigns.services import campaign_member_advance, campaign_members_add
from contacts.models import Account, Contact
from contacts.services import account_create, contact_create, contact_update, task_create
from crm.users.models import User
from leads.models import ContactField, FormSubmission, LeadForm, TerritoryOwner
from tracking.identity import VISITOR_FIELD, How, visitor_id_parse, visitor_identify
from tracking.models import TimelineEntry
from tracking.scoring import exposure_record
from tracking.services import audit_record, audited_update, timeline_add

CONFIRM_SALT = "leads.confirm"
# How long a confirmation link works.
CONFIRM_MAX_AGE = timedelta(days=7)

# Labels of a submission's values, in the order the timeline entry lists them.
VALUE_LABELS = {"email": "E-mail", **dict(ContactField.choices), "interests": "Interests"}


# --- building forms ---------------------------------------------------------------------------


def _territory_owners_set(*, form: LeadForm, territory_owners: list[tuple[str, User]]) -> None:
    form.territory_owners.all().delete()
    TerritoryOwner.objects.bulk_create(
        TerritoryOwner(form=form, territory=territory.strip(), owner=owner)
        for territory, owner in territory_owners
    )


@transaction.atomic
def lead_form_create(
    *,
    actor,
    round_robin_users=(),
    territory_owners: list[tuple[str, User]] = (),
    **fields,
) -> LeadForm:
    """Make a lead form. `territory_owners` maps territories to users for the by-territory
    rule (territories are matched in any case)."""
    form = LeadForm(created_by=actor, **fields)
    form.full_clean()
    form.save()
    form.round_robin_users.set(round_robin_users)
    _territory_owners_set(form=form, territory_owners=territory_owners)
    audit_record(instance=form, action="created", actor=actor)
    return form


@transaction.atomic
def lead_form_update(
    *,
    actor,
    form: LeadForm,
    round_robin_users=None,
    territory_owners: list[tuple[str, User]] | None = None,
    **fields,
) -> LeadForm:
    """Change a lead form; the round-robin users and territory owners are replaced when
    given."""
    audited_update(actor=actor, instance=form, fields=fields)
    if round_robin_users is not None:
        form.round_robin_users.set(round_robin_users)
    if territory_owners is not None:
        _territory_owners_set(form=form, territory_owners=territory_owners)
    return form


# --- owners -----------------------------------------------------------------------------------


def owner_pick(*, form: LeadForm, territory: str = "") -> User | None:
    """The owner of a new contact from `form`: by the form's rule, else its fallback owner;
    only active users. Round-robin locks the form's row until the caller's transaction ends, so
    two submissions at once go to two different users."""
    if form.assignment == LeadForm.Assignment.TERRITORY and territory.strip():
        match = (
            TerritoryOwner.objects.filter(
                form=form, territory__iexact=territory.strip(), owner__is_active=True
            )
            .select_related("owner")
            .first()
        )
        if match is not None:
            return match.owner
    elif form.assignment == LeadForm.Assignment.ROUND_ROBIN:
        last_id = (
            LeadForm.objects.select_for_update()
            .values_list("round_robin_last_id", flat=True)
            .get(pk=form.pk)
        )
        users = list(form.round_robin_users.filter(is_active=True).order_by("id"))
        if users:
            chosen = next((user for user in users if user.pk > (last_id or 0)), users[0])
            # Not an edit of the form: no audit entry, and updated_at stays.
            LeadForm.objects.filter(pk=form.pk).update(round_robin_last=chosen)
            return chosen
    fallback = form.fallback_owner
    return fallback if fallback is not None and fallback.is_active else None


# --- submissions ------------------------------------------------------------------------------


@transaction.atomic
def submission_receive(
    *,
    form: LeadForm,
    data: dict,
    ip: str | None = None,
    user_agent: str = "",
    page_url: str = "",
    visitor_id: str = "",
) -> FormSubmission:
    """Store a valid submission (`data` as the form cleaned it) and act on it: at once, or,
    under double opt-in, after the visitor confirms (the confirmation e-mail is queued to go
    after the commit). `visitor_id` is the tracking snippet's id of the browser, kept with the
    data so that processing identifies it (tracking.identity)."""
    from leads.tasks import confirmation_send

    visitor = visitor_id_parse(visitor_id)
    if visitor is not None:
        data = {**data, VISITOR_FIELD: str(visitor)}
    submission = FormSubmission.objects.create(
        form=form,
        data=data,
        ip=ip,
        user_agent=user_agent[:300],
        page_url=page_url[:500],
    )
    if form.double_opt_in:
        transaction.on_commit(lambda: confirmation_send.delay(submission.pk))
        return submission
    return submission_process(submission=submission)


def confirmation_token(submission: FormSubmission) -> str:
    """The signed token of a submission's confirmation link, for the current tenant."""
    return signing.dumps({"t": connection.schema_name, "s": submission.pk}, salt=CONFIRM_SALT)


def confirmation_token_read(token: str) -> FormSubmission | None:
    """The submission a confirmation token names, if the token is intact, not expired, and
    was made in the current tenant; else None."""
    try:
        data = signing.loads(token, salt=CONFIRM_SALT, max_age=CONFIRM_MAX_AGE)
    except signing.BadSignature:
        return None
    if not isinstance(data, dict) or data.get("t") != connection.schema_name:
        return None
    if not isinstance(data.get("s"), int):
        return None
    return FormSubmission.objects.select_related("form").filter(pk=data["s"]).first()


def confirmation_claim(*, submission_id: int) -> FormSubmission | None:
    """Mark a submission's confirmation e-mail as being sent and return the submission; None
    when it was already sent (a retried task) or needs none."""
    claimed = FormSubmission.objects.filter(
        pk=submission_id,
        status=FormSubmission.Status.AWAITING_CONFIRMATION,
        confirmation_sent_at__isnull=True,
    ).update(confirmation_sent_at=timezone.now())
    if not claimed:
        return None
    return FormSubmission.objects.select_related("form").get(pk=submission_id)


def confirmation_unclaim(*, submission_id: int) -> None:
    """The confirmation e-mail could not be handed over: let a retry claim it again."""
    FormSubmission.objects.filter(pk=submission_id).update(confirmation_sent_at=None)


def unconfirmed_purge(*, now: datetime | None = None) -> int:
    """Delete double opt-in submissions never confirmed while their link was valid: an address
    nobody confirmed is not kept. Returns how many went."""
    cutoff = (now or timezone.now()) - CONFIRM_MAX_AGE
    deleted, _ = FormSubmission.objects.filter(
        status=FormSubmission.Status.AWAITING_CONFIRMATION, submitted_at__lt=cutoff
    ).delete()
    return deleted


@transaction.atomic
def submission_confirm(*, submission: FormSubmission) -> FormSubmission:
    """The visitor followed the confirmation link: process the submission. Confirming twice
    does nothing the second time."""
    FormSubmission.objects.filter(pk=submission.pk, confirmed_at__isnull=True).update(
        confirmed_at=timezone.now()
    )
    return submission_process(submission=submission)


def _email_lock(email: str) -> None:
    """Hold, until the transaction ends, a lock on this address in this tenant, so two
    submissions from one new address at once make one contact, not two."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
            [f"leads:{connection.schema_name}:{email.lower()}"],
        )


def _source(form: LeadForm) -> str:
    return (form.campaign.name if form.campaign else f"form: {form.name}")[:100]


def _account_for(*, company: str, owner: User | None, territory: str) -> Account | None:
    """The account named `company` (in any case), or a new one."""
    if not company:
        return None
    account = Account.objects.filter(name__iexact=company).order_by("id").first()
    if account is None:
        account = account_create(actor=None, name=company, owner=owner, territory=territory)
    return account


def _describe(data: dict) -> str:
    lines = []
    for name, label in VALUE_LABELS.items():
        value = data.get(name)
        if value:
            lines.append(f"{label}: {', '.join(value) if isinstance(value, list) else value}")
    return "\n".join(lines)


def _contact_upsert(*, form: LeadForm, data: dict) -> tuple[Contact, bool]:
    """The contact with the submitted address (the oldest, if several share it), filled in
    and with the ticked interests added; or a new one, owned by the form's rule."""
    email = data["email"]
    _email_lock(email)
    contact = (
        Contact.objects.select_related("owner", "account")
        .filter(email__iexact=email)
        .order_by("id")
        .first()
    )
    interests = list(data.get("interests", []))
    territory = data.get("territory", "")
    if contact is None:
        owner = owner_pick(form=form, territory=territory)
        contact = contact_create(
            actor=None,
            email=email,
            first_name=data.get("first_name") or email.split("@")[0][:100],
            last_name=data.get("last_name", ""),
            phone=data.get("phone", ""),
            title=data.get("title", ""),
            territory=territory,
            source=_source(form),
            interests=interests,
            owner=owner,
            account=_account_for(company=data.get("company", ""), owner=owner, territory=territory),
        )
        return contact, True

    changes = {
        name: data[name]
        for name in ("first_name", "last_name", "phone", "title", "territory")
        if data.get(name) and not getattr(contact, name)
    }
    known = {interest.lower() for interest in contact.interests}
    added = [interest for interest in interests if interest.lower() not in known]
    if added:
        changes["interests"] = [*contact.interests, *added]
    if not contact.source:
        changes["source"] = _source(form)
    if contact.owner_id is None:
        changes["owner"] = owner_pick(form=form, territory=territory or contact.territory)
    if contact.account_id is None and data.get("company"):
        changes["account"] = _account_for(
            company=data["company"],
            owner=changes.get("owner") or contact.owner,
            territory=territory or contact.territory,
        )
    if changes:
        contact_update(actor=None, contact=contact, **changes)
    return contact, False


@transaction.atomic
def submission_process(*, submission: FormSubmission) -> FormSubmission:
    """Bring a stored submission into the CRM: the contact (matched or made), the campaign
    response, the timeline entry and the owner's follow-up action item. Locks the submission's
    row; a submission already processed is returned as it is."""
    locked = (
        FormSubmission.objects.select_for_update(of=("self",))
        .select_related("form__campaign", "form__fallback_owner", "form__created_by")
        .get(pk=submission.pk)
    )
    if locked.status == FormSubmission.Status.PROCESSED:
        return locked
    form = locked.form
    contact, created = _contact_upsert(form=form, data=locked.data)
    if locked.data.get(VISITOR_FIELD) and (created or locked.confirmed_at is not None):
        # The browser's earlier page views join the contact's history, but only when the form
        # proves the visitor is that contact: the contact is new, or the address was confirmed
        # (double opt-in). Anyone can type a customer's address into a public form; that alone
        # must not put a stranger's browsing on the customer's record or personalize the site
        # for the stranger as that customer.
        visitor_identify(visitor_id=locked.data[VISITOR_FIELD], contact=contact, how=How.FORM)
    detail = _describe(locked.data)

    if form.campaign is not None:
        campaign_members_add(
            actor=None, campaign=form.campaign, contacts=Contact.objects.filter(pk=contact.pk)
        )
        campaign_member_advance(
            campaign=form.campaign, contact=contact, status=CampaignMember.Status.RESPONDED
        )
    timeline_add(
        kind=TimelineEntry.Kind.FORM,
        contact=contact,
        summary=f"Filled the form {form.name}",
        detail=detail,
    )
    # The engagement score and the life-cycle stage (a first form: awareness -> education).
    exposure_record(
        contact=contact,
        kind="form",
        reason=f"Filled form '{form.name}'",
        occurred_at=locked.submitted_at,
    )
    owner = contact.owner
    if owner is not None and owner.is_active:
        task_create(
            # Action items record who set them; here the rule's author did (the model needs one).
            actor=form.created_by or owner,
            title=f"Follow up: {contact.full_name} filled the form {form.name}"[:200],
            assignee=owner,
            due_on=timezone.localdate() + timedelta(days=form.follow_up_days),
            notes=detail,
            contact=contact,
        )

    locked.contact = contact
    locked.created_contact = created
    locked.status = FormSubmission.Status.PROCESSED
    locked.processed_at = timezone.now()
    locked.save(update_fields=["contact", "created_contact", "status", "processed_at"])
    return locked
