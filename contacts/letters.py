"""Letters by post (mail merge): templates with merge fields, filled in for a contact, logged as a
letter activity on the timeline and produced as a PDF.

Templates are untrusted code: they fill in through the shared sandbox of crm.merge_fields.
"""

from datetime import date

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import formats, timezone
from django.utils.text import slugify
from fontpkg_noto_sans import ROOT as NOTO_SANS
from fpdf import FPDF

from contacts.models import Activity, Contact, LetterTemplate
from contacts.services import activity_log
from crm.merge_fields import (
    MergeFieldError,
    merge_render,
    merge_template_parse,
    sandbox_environment,
)
from crm.tenants.models import Tenant
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


def letter_render(*, source: str, context: dict) -> str:
    """Fill in a template's merge fields from `context` (plain dicts and strings only).

    Raises LetterError, with a message for the user, for syntax errors, unknown merge fields,
    what the sandbox refuses and what crm.merge_fields.FORBIDDEN_NODES lists."""
    try:
        tree = merge_template_parse(
            ENVIRONMENT, source, fields=MERGE_FIELDS, names={TODAY}, noun="Letters"
        )
        return merge_render(ENVIRONMENT.from_string(tree), context)
    except MergeFieldError as error:
        raise LetterError(str(error), error.lineno) from error


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


def letter_context(*, contact: Contact, sender, today: date | None = None) -> dict:
    """The values a template may use for this contact, as plain strings."""
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
            "company": _company_name(),
        },
        TODAY: formats.date_format(today or timezone.localdate(), "j F Y"),
    }


def letter_preview(*, contact: Contact, template: LetterTemplate, sender) -> tuple[str, str]:
    """The subject and text the letter to this contact would have; raises LetterError."""
    if contact.do_not_mail:
        raise LetterError(f"{contact.full_name} asked not to receive mail.")
    context = letter_context(contact=contact, sender=sender)
    subject = letter_render(source=template.subject or template.name, context=context)
    text = letter_render(source=template.body, context=context)
    return " ".join(subject.split())[:200], text


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
