import io

import pytest
from django.test import Client
from pypdf import PdfReader

from contacts import letters, services
from contacts.models import Activity, LetterTemplate
from crm.users.models import PartnerOrganization, Role, Team
from crm.users.services import user_create
from tests.conftest import PASSWORD
from tracking.models import AuditEntry, TimelineEntry

pytestmark = pytest.mark.django_db

ALPHA = {"HTTP_HOST": "alpha.localhost"}
BETA = {"HTTP_HOST": "beta.localhost"}

BODY = """{{ contact.full_name }}
{{ account.name }}
{{ account.street }}
{{ account.postal_code }} {{ account.city }}

Dear {{ contact.first_name }},
Your title: {{ contact.title | default("Valued customer") }}.
Yours, {{ sender.full_name }} of {{ sender.company }}, {{ today }}
"""


def person(email, role, **extra):
    return user_create(
        email=email, password=PASSWORD, full_name=email.split("@")[0].title(), role=role, **extra
    )


@pytest.fixture
def sales(in_alpha):
    return person("sally@alpha.test", Role.SALES, team=Team.objects.create(name="North"))


@pytest.fixture
def contact(sales):
    account = services.account_create(
        actor=sales, name="Initech", street="1 Initech Way", postal_code="78701", city="Austin"
    )
    return services.contact_create(
        actor=sales, first_name="Peter", last_name="Gibbons", account=account
    )


@pytest.fixture
def template(sales):
    return letters.letter_template_create(
        actor=sales, name="Welcome", subject="Welcome, {{ contact.first_name }}", body=BODY
    )


def logged_in(user, host=ALPHA) -> Client:
    client = Client()
    assert client.post("/login/", {"username": user.email, "password": PASSWORD}, **host)
    return client


def pdf_text(content: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)


# --- merge fields and the sandbox ---------------------------------------------------------------


def test_merge_fields_are_filled_and_empty_fields_fall_back(sales, contact):
    text = letters.letter_render(
        source=BODY, context=letters.letter_context(contact=contact, sender=sales)
    )

    assert text.startswith("Peter Gibbons\nInitech\n1 Initech Way\n78701 Austin\n")
    assert "Dear Peter," in text
    assert "Your title: Valued customer." in text
    assert "Yours, Sally of Alpha Inc, " in text

    contact.title = "CTO"
    titled = letters.letter_render(
        source=BODY, context=letters.letter_context(contact=contact, sender=sales)
    )
    assert "Your title: CTO." in titled


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ contact.__class__ }}",
        "{% for x in ().__class__.__base__.__subclasses__() %}{{ x }}{% endfor %}",
        "{{ ().__class__.__base__.__subclasses__() }}",
        "{{ settings }}",
        "{{ settings.SECRET_KEY }}",
        "{{ request }}",
        "{{ contact.first_name.__len__ }}",
        "{{ contact|attr('__class__') }}",
        "{{ contact.first_name.upper() }}",
        "{{ range(10) }}",
        "{{ 'x' * 1000000000 }}",
        "{{ '%1000000000s' % 'x' }}",
        "{{ contact.first_name|center(1000000000) }}",
    ],
)
def test_templates_cannot_reach_beyond_the_merge_fields(sales, contact, settings, source):
    context = letters.letter_context(contact=contact, sender=sales)

    with pytest.raises(letters.LetterError) as refused:
        letters.letter_render(source=source, context=context)

    assert settings.SECRET_KEY not in str(refused.value)
    assert "<class" not in str(refused.value)


def test_the_sandbox_refuses_unsafe_attributes_even_on_allowed_values(sales, contact):
    with pytest.raises(letters.LetterError, match="unsafe"):
        letters.letter_render(
            source="{{ contact.first_name.__class__ }}",
            context=letters.letter_context(contact=contact, sender=sales),
        )


def test_a_template_that_does_not_fill_in_is_refused_when_saved(sales):
    for body, message in [
        ("Dear {{ contact.first_name ", "syntax error"),
        ("{% if contact.title %}no end", "syntax error"),
        ("Dear {{ contact.nickname }}", "Unknown merge field: contact.nickname"),
    ]:
        with pytest.raises(Exception, match=message):
            letters.letter_template_create(actor=sales, name="Bad", subject="", body=body)
    assert not LetterTemplate.objects.exists()


# --- writing a letter -----------------------------------------------------------------------------


def test_a_letter_is_logged_with_its_timeline_entry_and_becomes_a_pdf(sales, contact, template):
    letter = letters.contact_letter_create(actor=sales, contact=contact, template=template)

    assert letter.kind == Activity.Kind.LETTER
    assert letter.subject == "Welcome, Peter"
    assert "Dear Peter," in letter.notes
    entry = TimelineEntry.objects.get(contact=contact, kind=TimelineEntry.Kind.LETTER)
    assert entry.summary == "Letter: Welcome, Peter"
    assert entry.occurred_at == letter.occurred_at

    pdf = letters.letter_pdf([letter])
    assert pdf.startswith(b"%PDF")
    text = pdf_text(pdf)
    assert "Peter Gibbons" in text and "Dear Peter," in text


def test_the_pdf_is_made_from_the_letter_as_written_not_the_template_as_it_is_now(
    sales, contact, template
):
    letter = letters.contact_letter_create(actor=sales, contact=contact, template=template)
    letters.letter_template_update(actor=sales, template=template, body="Changed completely")

    assert "Dear Peter," in pdf_text(letters.letter_pdf([letter]))
    assert AuditEntry.objects.filter(model="contacts.lettertemplate", action="updated").exists()


def test_names_beyond_latin_1_do_not_break_the_pdf(sales, contact, template):
    contact.first_name, contact.last_name = "Zoë", "Łukasiewicz"
    contact.save()
    chinese = services.contact_create(actor=sales, first_name="李雷", last_name="")

    zoe = letters.contact_letter_create(actor=sales, contact=contact, template=template)
    li = letters.contact_letter_create(actor=sales, contact=chinese, template=template)

    assert "Zoë Łukasiewicz" in pdf_text(letters.letter_pdf([zoe]))
    assert "李雷" in li.notes
    # The font has no Chinese glyphs: the name prints as question marks rather than vanishing.
    assert "Dear ??," in pdf_text(letters.letter_pdf([li]))


def test_a_contact_who_asked_not_to_be_mailed_gets_no_letter(sales, contact, template):
    contact.do_not_mail = True
    contact.save()

    with pytest.raises(letters.LetterError, match="asked not to receive mail"):
        letters.contact_letter_create(actor=sales, contact=contact, template=template)
    assert not Activity.objects.filter(kind=Activity.Kind.LETTER).exists()


# --- pages ---------------------------------------------------------------------------------


def test_template_form_reports_syntax_errors_and_unknown_fields(sales):
    client = logged_in(sales)

    page = client.post(
        "/letters/new/",
        {"name": "Broken", "subject": "Hi {{ contact.nickname }}", "body": "Dear {{ contact."},
        **ALPHA,
    )

    assert page.status_code == 200
    assert "syntax error" in " ".join(page.context["form"].errors["body"])
    assert "contact.nickname" in " ".join(page.context["form"].errors["subject"])
    assert not LetterTemplate.objects.exists()


def test_template_pages_create_edit_and_list_with_merge_field_help(sales):
    client = logged_in(sales)

    blank = client.get("/letters/new/", **ALPHA)
    assert "{{ contact.first_name }}" in blank.content.decode()
    created = client.post(
        "/letters/new/",
        {"name": "Offer <b>", "subject": "Our offer", "body": "Dear {{ contact.first_name }}"},
        **ALPHA,
    )
    assert created.status_code == 302
    template = LetterTemplate.objects.get()
    assert template.created_by == sales
    edited = client.post(
        f"/letters/{template.pk}/edit/",
        {"name": "Offer <b>", "subject": "New offer", "body": "Hello"},
        **ALPHA,
    )
    assert edited.status_code == 302
    listing = client.get("/letters/", **ALPHA).content.decode()
    assert "Offer &lt;b&gt;" in listing and "New offer" in listing


def test_write_a_letter_preview_then_pdf_download(sales, contact, template):
    client = logged_in(sales)
    contact.first_name = "<script>alert(1)</script>"
    contact.save()

    panel = client.get(f"/contacts/{contact.pk}/letters/", HTTP_HX_REQUEST="true", **ALPHA)
    assert 'data-testid="write-letter"' in panel.content.decode()
    preview = client.get(f"/contacts/{contact.pk}/letters/?template={template.pk}", **ALPHA)
    html = preview.content.decode()
    assert "Dear &lt;script&gt;alert(1)&lt;/script&gt;," in html
    assert "<script>alert(1)" not in html
    assert not Activity.objects.exists()

    created = client.post(f"/contacts/{contact.pk}/letters/", {"template": template.pk}, **ALPHA)
    letter = Activity.objects.get(kind=Activity.Kind.LETTER)
    assert created.url == f"/contacts/{contact.pk}/letters/{letter.pk}.pdf"
    pdf = client.get(created.url, **ALPHA)
    assert pdf["Content-Type"] == "application/pdf"
    assert (
        f'filename="letter-scriptalert1script-gibbons-{letter.occurred_at:%Y-%m-%d}.pdf"'
        in (pdf["Content-Disposition"])
    )
    assert "Dear <script>alert(1)</script>," in pdf_text(pdf.content)
    again = client.get(f"/contacts/{contact.pk}/letters/", HTTP_HX_REQUEST="true", **ALPHA)
    assert f"/contacts/{contact.pk}/letters/{letter.pk}.pdf" in again.content.decode()


def test_do_not_mail_is_refused_on_the_page(sales, contact, template):
    client = logged_in(sales)
    contact.do_not_mail = True
    contact.save()

    page = client.post(f"/contacts/{contact.pk}/letters/", {"template": template.pk}, **ALPHA)

    assert page.status_code == 200
    assert "asked not to receive mail" in page.content.decode()
    assert not Activity.objects.exists()


def test_letters_of_contacts_out_of_reach_are_404(sales, contact, template):
    letter = letters.contact_letter_create(actor=sales, contact=contact, template=template)
    rival = person("rita@alpha.test", Role.SALES, team=Team.objects.create(name="South"))
    partner = person(
        "pat@alpha.test",
        Role.PARTNER,
    )
    partner.partner_organization = PartnerOrganization.objects.create(name="Reseller")
    partner.save()
    marketer = person("mark@alpha.test", Role.MARKETING)

    for user in (rival, partner):
        client = logged_in(user)
        assert (
            client.get(f"/contacts/{contact.pk}/letters/{letter.pk}.pdf", **ALPHA).status_code
            == 404
        )
        assert client.get(f"/contacts/{contact.pk}/letters/", **ALPHA).status_code == 404
        posted = client.post(f"/contacts/{contact.pk}/letters/", {"template": template.pk}, **ALPHA)
        assert posted.status_code == 404
    # A letter of one contact is not reachable through another contact's address.
    other = services.contact_create(actor=rival, first_name="Rival", last_name="Contact")
    rival_client = logged_in(rival)
    assert (
        rival_client.get(f"/contacts/{other.pk}/letters/{letter.pk}.pdf", **ALPHA).status_code
        == 404
    )
    # Marketers see every contact and may write letters and manage templates; partners may not.
    marketing = logged_in(marketer)
    assert (
        marketing.get(f"/contacts/{contact.pk}/letters/{letter.pk}.pdf", **ALPHA).status_code == 200
    )
    assert marketing.get("/letters/", **ALPHA).status_code == 200
    assert logged_in(partner).get("/letters/", **ALPHA).status_code == 403
    assert Activity.objects.filter(kind=Activity.Kind.LETTER).count() == 1


def test_another_tenants_templates_and_letters_are_not_there(sales, contact, template, beta):
    letter = letters.contact_letter_create(actor=sales, contact=contact, template=template)
    client = Client()
    client.post("/login/", {"username": "admin@beta.test", "password": PASSWORD}, **BETA)

    assert client.get(f"/letters/{template.pk}/edit/", **BETA).status_code == 404
    assert "Welcome" not in client.get("/letters/", **BETA).content.decode()
    pdf = client.get(f"/contacts/{contact.pk}/letters/{letter.pk}.pdf", **BETA)
    assert pdf.status_code == 404
