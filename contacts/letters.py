"""Letters by post (mail merge): templates with merge fields, filled in for a contact, logged as a
letter activity on the timeline and produced as a PDF.

Templates are untrusted code: they fill in through the shared sandbox of crm.merge_fields.
"""

from datetime import date

from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import QuerySet
from django.http import QueryDict
from django.utils import formats, timezone
from django.utils.text import slugify
from fontpkg_noto_sans import ROOT as NOTO_SANS
from fpdf import FPDF
from jinja2 import Template

from contacts.filters import ContactFilter
from contacts.models import Activity, Contact, LetterBatch, LetterTemplate
from contacts.services import activity_log, letters_bulk_log
from crm import access
from crm.claims import claimed
from crm.merge_fields import (
    MergeFieldError,
    merge_render,
    merge_template_parse,
    sandbox_environment,
)
from crm.tenants.models import Tenant
from crm.users.models import Role
from tracking.services import audit_record, audited_update

# The merge fields a template may use, with what each holds (shown in the editor's help box).
MERGE_FIELDS: dict[str, dict[str, str]] = {
    "contact": {
        "first_name": "First name",
        "last_name": "Last name",
        "full_name": "First and last name",
        "title": "Job title",
        "email": "E-mail address",
        "phone": "Phone number",
    },
    "account": {
        "name": "Company name",
        "street": "Street",
        "postal_code": "Postal code",
        "city": "City",
        "country": "Country",
    },
    "sender": {
        "full_name": "Your name",
        "email": "Your e-mail address",
        "company": "Your company's name",
    },
}
TODAY = "today"

SAMPLE = {
    "contact": {
        "first_name": "Jane",
        "last_name": "Doe",
        "full_name": "Jane Doe",
        "title": "Head of Purchasing",
        "email": "jane@example.com",
        "phone": "+1 555 0100",
    },
    "account": {
        "name": "Example Ltd",
        "street": "1 Main Street",
        "postal_code": "12345",
        "city": "Springfield",
        "country": "United States",
    },
    "sender": {"full_name": "Sam Sender", "email": "sam@example.com", "company": "Our Company"},
    TODAY: "1 January 2030",
}

STARTER_BODY = """{{ contact.full_name }}
{{ account.name }}
{{ account.street }}
{{ account.postal_code }} {{ account.city }}
{{ account.country }}

{{ today }}

Dear {{ contact.first_name | default("Sir or Madam") }},



Kind regards,

{{ sender.full_name }}
{{ sender.company }}
"""


class LetterError(MergeFieldError):
    """A letter cannot be written: a template that does not work, or a contact who asked not to
    receive mail. The message is meant for the user."""


ENVIRONMENT = sandbox_environment(autoescape=False)


def _compiled(source: str) -> Template:
    try:
        tree = merge_template_parse(
            ENVIRONMENT, source, fields=MERGE_FIELDS, names={TODAY}, noun="Letters"
        )
    except MergeFieldError as error:
        raise LetterError(str(error), error.lineno) from error
    return ENVIRONMENT.from_string(tree)


def _filled(template: Template, context: dict) -> str:
    try:
        return merge_render(template, context)
    except MergeFieldError as error:
        raise LetterError(str(error), error.lineno) from error


def letter_render(*, source: str, context: dict) -> str:
    """Fill in a template's merge fields from `context` (plain dicts and strings only).

    Raises LetterError, with a message for the user, for syntax errors, unknown merge fields,
    what the sandbox refuses and what crm.merge_fields.FORBIDDEN_NODES lists."""
    return _filled(_compiled(source), context)


def letter_check(source: str) -> None:
    """Raise LetterError unless the template fills in, with every field set and with every
    field empty (so an if-block or a fallback that breaks on either shows up when saving)."""
    letter_render(source=source, context=SAMPLE)
    empty = {
        group: ({name: "" for name in fields} if isinstance(fields, dict) else "")
        for group, fields in SAMPLE.items()
    }
    letter_render(source=source, context=empty)


def _company_name() -> str:
    return Tenant.objects.only("name").get(schema_name=connection.schema_name).name


def letter_context(
    *, contact: Contact, sender, today: date | None = None, company: str | None = None
) -> dict:
    """The values a template may use for this contact, as plain strings. `company`, the
    tenant's name, is looked up unless given."""
    account = contact.account
    return {
        "contact": {
            "first_name": contact.first_name,
            "last_name": contact.last_name,
            "full_name": contact.full_name,
            "title": contact.title,
            "email": contact.email,
            "phone": contact.phone,
        },
        "account": {
            name: getattr(account, name, "") if account else "" for name in MERGE_FIELDS["account"]
        },
        "sender": {
            "full_name": sender.full_name,
            "email": sender.email,
            "company": _company_name() if company is None else company,
        },
        TODAY: formats.date_format(today or timezone.localdate(), "j F Y"),
    }


def letter_preview(*, contact: Contact, template: LetterTemplate, sender) -> tuple[str, str]:
    """The subject and text the letter to this contact would have; raises LetterError."""
    if contact.do_not_mail:
        raise LetterError(f"{contact.full_name} asked not to receive mail.")
    context = letter_context(contact=contact, sender=sender)
    return _subject_and_text(
        _compiled(template.subject or template.name), _compiled(template.body), context
    )


def _subject_and_text(subject: Template, body: Template, context: dict) -> tuple[str, str]:
    return " ".join(_filled(subject, context).split())[:200], _filled(body, context)


@transaction.atomic
def contact_letter_create(*, actor, contact: Contact, template: LetterTemplate) -> Activity:
    """Write a letter to a contact: the merged text is kept as a letter activity (with its
    timeline entry), which is what the PDF is made from, now and whenever it is downloaded
    again, whatever becomes of the template. Raises LetterError."""
    subject, text = letter_preview(contact=contact, template=template, sender=actor)
    return activity_log(
        actor=actor, kind=Activity.Kind.LETTER, subject=subject, notes=text, contact=contact
    )


def _check_template(template: LetterTemplate) -> None:
    errors = {}
    for field in ("subject", "body"):
        try:
            letter_check(getattr(template, field))
        except LetterError as error:
            errors[field] = str(error)
    if errors:
        raise ValidationError(errors)


@transaction.atomic
def letter_template_create(*, actor, name: str, subject: str, body: str) -> LetterTemplate:
    """Add a letter template; raises ValidationError for a template that does not fill in."""
    template = LetterTemplate(name=name, subject=subject, body=body, created_by=actor)
    template.full_clean()
    _check_template(template)
    template.save()
    audit_record(instance=template, action="created", actor=actor)
    return template


@transaction.atomic
def letter_template_update(*, actor, template: LetterTemplate, **fields) -> LetterTemplate:
    """Change a letter template. Letters already written keep their text."""
    audited_update(actor=actor, instance=template, fields=fields, validate=_check_template)
    return template


# --- PDF ----------------------------------------------------------------------------------------

# Noto Sans covers Latin, Greek and Cyrillic. It is a variable font: without `variations`, fpdf2
# embeds its default instance (Regular), which is quick; instancing takes seconds.
FONT_FILE = NOTO_SANS / "files" / "NotoSans[wdth,wght].ttf"
FONT = "noto-sans"


def _printable(pdf: FPDF, text: str) -> str:
    # A character the font has no glyph for would silently vanish from the page (a name in
    # Chinese would print as nothing); a visible "?" tells the reader something is missing.
    cmap = pdf.fonts[FONT].cmap
    return "".join(c if c in "\n\t" or ord(c) in cmap else "?" for c in text)


def letter_pdf(activities: list[Activity]) -> bytes:
    """One PDF of the letters kept in these letter activities, each starting on a new page."""
    pdf = FPDF(format="A4")
    pdf.set_margins(25, 25, 20)
    pdf.set_auto_page_break(auto=True, margin=20)
    pdf.add_font(FONT, fname=FONT_FILE)
    pdf.set_font(FONT, size=11)
    pdf.set_title(_printable(pdf, activities[0].subject if len(activities) == 1 else "Letters"))
    for activity in activities:
        pdf.add_page()
        pdf.multi_cell(0, 5.5, _printable(pdf, activity.notes.rstrip()))
    return bytes(pdf.output())


def letter_filename(activity: Activity) -> str:
    who = slugify(activity.contact.full_name) if activity.contact else ""
    day = timezone.localdate(activity.occurred_at).isoformat()
    return f"letter-{who or activity.contact_id}-{day}.pdf"


# --- letters to a whole list --------------------------------------------------------------------

MAX_BATCH = 1_000


def batch_contacts(user, query: str) -> QuerySet[Contact]:
    """The contacts the contact list shows `user` with these filters (its query string), in the
    list's order by name. Raises LetterError when the filters are not understood."""
    filters = ContactFilter(QueryDict(query) or None, queryset=access.contacts_for(user))
    if filters.is_bound and not filters.is_valid():
        raise LetterError("Some of the list's filters were not understood; open the list again.")
    contacts = filters.qs if filters.is_bound else filters.queryset
    return contacts.order_by("last_name", "first_name", "id")


def batch_size(contacts: QuerySet[Contact]) -> tuple[int, int]:
    """How many of these contacts there are and how many of them asked not to receive mail,
    each counted up to MAX_BATCH + 1 (more than a batch may write)."""
    keys = contacts.order_by().values("pk")
    return (
        keys[: MAX_BATCH + 1].count(),
        keys.filter(do_not_mail=True)[: MAX_BATCH + 1].count(),
    )


@transaction.atomic
def letter_batch_create(*, actor, template: LetterTemplate, query: str) -> LetterBatch:
    """Ask for letters from `template` to every contact the contact list's filters (`query`, its
    query string) select among those `actor` may see. A Celery task writes them after the commit
    (letter_batch_run). Raises LetterError for an empty list or one of more than MAX_BATCH."""
    from contacts.tasks import letter_batch_run_task

    total, no_mail = batch_size(batch_contacts(actor, query))
    if not total:
        raise LetterError("There are no contacts in this list.")
    if total > MAX_BATCH:
        raise LetterError(
            f"This list has more than {MAX_BATCH:,} contacts, the most one batch writes to. "
            "Narrow it with the list's filters."
        )
    if no_mail == total:
        raise LetterError("Everyone in this list asked not to receive mail.")
    batch = LetterBatch.objects.create(
        template=template, template_name=template.name, query=query, total=total, created_by=actor
    )
    transaction.on_commit(lambda: letter_batch_run_task.delay(batch.pk))
    return batch


def letter_batch_run(*, batch_id: int) -> LetterBatch | None:
    """Write a queued batch's letters in one transaction: every letter logged on its contact's
    timeline and all of them in one PDF, or none. None if the batch is not to be run.

    The batch's row is claimed for that transaction (crm.claims): a second delivery does
    nothing, and a worker killed mid-way leaves nothing behind for the redelivered task. A
    problem the user can act on (the template deleted, the list grown past the limit)
    fails the batch with its reason; anything else fails it and is raised. Only a batch still
    queued or running is failed: never one a duplicate delivery finished meanwhile."""
    pending = LetterBatch.objects.filter(
        pk=batch_id, status__in=(LetterBatch.Status.QUEUED, LetterBatch.Status.RUNNING)
    )
    try:
        with claimed(
            pending, running=LetterBatch.Status.RUNNING, related=("created_by", "template")
        ) as batch:
            if batch is None:
                return None
            cache.delete(_progress_key(batch.pk))
            return _batch_write(batch)
    except LetterError as error:
        pending.update(
            status=LetterBatch.Status.FAILED, finished_at=timezone.now(), error=str(error)
        )
        return LetterBatch.objects.get(pk=batch_id)
    except Exception:
        pending.update(
            status=LetterBatch.Status.FAILED,
            finished_at=timezone.now(),
            error="Writing the letters stopped on an unexpected error; none was kept.",
        )
        raise


def _batch_write(batch: LetterBatch) -> LetterBatch:
    user = batch.created_by
    if user is None or not user.is_active:
        raise LetterError("The user who asked for these letters is no longer active.")
    if batch.template is None:
        raise LetterError("The template was deleted before the letters were written.")
    contacts = list(batch_contacts(user, batch.query).select_related("account")[: MAX_BATCH + 1])
    if len(contacts) > MAX_BATCH:
        raise LetterError(
            f"The list has grown past {MAX_BATCH:,} contacts since the letters were asked for. "
            "Narrow it with the list's filters and ask again."
        )
    subject = _compiled(batch.template.subject or batch.template.name)
    body = _compiled(batch.template.body)
    company, today = _company_name(), timezone.localdate()
    filled = []
    for done, contact in enumerate(contacts, start=1):
        if not contact.do_not_mail:
            context = letter_context(contact=contact, sender=user, today=today, company=company)
            filled.append((contact, *_subject_and_text(subject, body, context)))
        if done % PROGRESS_EVERY == 0:
            cache.set(_progress_key(batch.pk), done, timeout=24 * 3600)
    written = letters_bulk_log(actor=user, letters=filled)
    batch.total, batch.written = len(contacts), len(written)
    batch.skipped = batch.total - batch.written
    batch.pdf = letter_pdf(written) if written else None
    batch.status, batch.finished_at, batch.error = LetterBatch.Status.DONE, timezone.now(), ""
    batch.save()
    return batch


# Progress goes to the cache, whose keys carry the tenant's schema: the batch's row is written in
# the same transaction as the letters, so other connections see it only when all is over.
PROGRESS_EVERY = 25


def _progress_key(batch_id: int) -> str:
    return f"letter-batch-progress:{batch_id}"


def letter_batch_progress(batch: LetterBatch) -> int:
    """Contacts done so far: none while queued or after a failure (nothing was kept), live from
    the cache while the batch runs, all of them once it is done."""
    if batch.status == LetterBatch.Status.RUNNING:
        return min(int(cache.get(_progress_key(batch.pk)) or 0), batch.total)
    return batch.total if batch.status == LetterBatch.Status.DONE else 0


def letter_batches_for(user) -> QuerySet[LetterBatch]:
    """The batches a user may open: their own; admins see everyone's."""
    batches = LetterBatch.objects.select_related("created_by").defer("pdf")
    return batches if user.role == Role.ADMIN else batches.filter(created_by=user)


def letter_batch_filename(batch: LetterBatch) -> str:
    name = slugify(batch.template_name) or "letters"
    return f"letters-{name}-{timezone.localdate(batch.created_at).isoformat()}.pdf"
