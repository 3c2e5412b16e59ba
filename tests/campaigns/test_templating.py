import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django_tenants.utils import schema_context

from campaigns import templating
from campaigns.models import ContentBlock, EmailTemplate, Segment, SegmentMember
from contacts import services
from crm.users.models import Role
from crm.users.services import user_create
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

ALPHA = {"HTTP_HOST": "alpha.localhost"}
BETA = {"HTTP_HOST": "beta.localhost"}
URL = "https://alpha.example/u/token/"

HTML = """<html><head><style>.lead { color: #ff0000; }</style></head><body>
<p class="lead">Hi {{ contact.first_name|default("there") }},</p>
{% if "analytics" in contact.interests %}<p>Our analytics webinar.</p>{% endif %}
{% if contact.lifecycle_stage == "evaluation" %}<p>Book a demo.</p>{% endif %}
{% if "VIP customers" in contact.segments %}<p>VIP lounge.</p>{% endif %}
<p>{{ account.name }}</p>
</body></html>"""


@pytest.fixture
def marketer(in_alpha):
    return user_create(
        email="mia@alpha.test", password=PASSWORD, full_name="Mia", role=Role.MARKETING
    )


@pytest.fixture
def contact(marketer):
    account = services.account_create(actor=marketer, name="Initech")
    return services.contact_create(
        actor=marketer,
        first_name="Peter",
        last_name="Gibbons",
        email="peter@initech.test",
        account=account,
        interests=["analytics"],
        lifecycle_stage="evaluation",
    )


def make(marketer, html=HTML, **fields) -> EmailTemplate:
    fields.setdefault("subject", "News for {{ contact.first_name|default('you') }}")
    return templating.email_template_create(
        actor=marketer, name=fields.pop("name", "News"), html_body=html, **fields
    )


def render(template, contact, segments=()):
    compiled = templating.email_template_compile(template)
    return compiled.render(
        templating.email_context(contact, segments=segments, unsubscribe_url=URL)
    )


def logged_in(user, host=ALPHA) -> Client:
    client = Client()
    assert client.post("/login/", {"username": user.email, "password": PASSWORD}, **host)
    return client


# --- merge fields, conditions, blocks ----------------------------------------------------------


def test_merge_fields_fall_back_when_empty(marketer, contact):
    template = make(marketer, preheader="Only for {{ contact.first_name }}")

    filled = render(template, contact)
    assert filled.subject == "News for Peter"
    assert filled.preheader == "Only for Peter"
    assert "Hi Peter," in filled.html

    contact.first_name = ""
    empty = render(template, contact)
    assert empty.subject == "News for you"
    assert "Hi there," in empty.html


def test_conditions_on_interest_stage_and_segment(marketer, contact):
    template = make(marketer)
    vip = Segment.objects.create(name="VIP customers", kind=Segment.Kind.STATIC)
    SegmentMember.objects.create(segment=vip, contact=contact)
    segments = templating.contact_segment_names([contact.pk])[contact.pk]

    html = render(template, contact, segments=segments).html
    assert "analytics webinar" in html and "Book a demo" in html and "VIP lounge" in html

    contact.interests, contact.lifecycle_stage = ["pricing"], "awareness"
    html = render(template, contact).html
    assert "analytics webinar" not in html and "Book a demo" not in html
    assert "VIP lounge" not in html


def test_content_blocks_are_included_in_html_and_text(marketer, contact):
    templating.content_block_create(
        actor=marketer,
        name="footer",
        html="<p>Sent by {{ company.name }} to {{ contact.first_name }}</p>",
        text="Sent by {{ company.name }}",
    )
    template = make(
        marketer,
        html="<body><p>Hello</p>{{ block('footer') }}</body>",
        text_body="Hello\n{{ block('footer') }}",
    )

    rendered = render(template, contact)
    assert "<p>Sent by Alpha Inc to Peter</p>" in rendered.html
    assert "Hello\nSent by Alpha Inc" in rendered.text


def test_blocks_cannot_include_blocks_and_unknown_blocks_are_refused(marketer):
    with pytest.raises(ValidationError, match="function calls"):
        templating.content_block_create(actor=marketer, name="loop", html="{{ block('loop') }}")
    with pytest.raises(ValidationError, match='no content block "missing" \\(line 2\\)'):
        make(marketer, html="<p>Hi</p>\n{{ block('missing') }}")
    with pytest.raises(ValidationError, match="block"):
        make(marketer, html="{{ block }}")
    assert not ContentBlock.objects.exists() and not EmailTemplate.objects.exists()


def test_html_in_contact_fields_is_escaped_in_html_and_kept_in_text(marketer, contact):
    contact.first_name = '<script>alert("x")</script>'
    template = make(marketer, text_body="Hi {{ contact.first_name }}")

    rendered = render(template, contact)
    assert "<script>alert" not in rendered.html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in rendered.html
    assert rendered.text.startswith('Hi <script>alert("x")</script>')


def test_css_is_inlined_and_preheader_and_unsubscribe_link_added(marketer, contact):
    rendered = render(make(marketer, preheader="A short teaser"), contact)

    assert "<style" not in rendered.html
    assert '<p class="lead" style="color: #ff0000;">Hi Peter,</p>' in rendered.html
    body_start = rendered.html.index("<body>") + len("<body>")
    assert rendered.html[body_start:].startswith('<div style="display:none;')
    assert "A short teaser</div>" in rendered.html
    assert f'<a href="{URL}">Unsubscribe</a>' in rendered.html
    assert rendered.text.rstrip().endswith(f"Unsubscribe: {URL}")
    # The text part, made from the HTML, keeps the merge fields and drops the style sheet.
    assert "Hi Peter," in rendered.text and "color" not in rendered.text


def test_template_syntax_inside_tables_survives_css_inlining(marketer, contact):
    html = (
        "<style>td { padding: 4px; }</style><table>{% if contact.email %}<tr><td>"
        '<a href="{{ unsubscribe_url }}">Leave</a></td></tr>{% endif %}</table>'
    )
    rendered = render(make(marketer, html=html), contact)

    assert f'<td style="padding: 4px;"><a href="{URL}">Leave</a></td>' in rendered.html
    assert rendered.html.count(URL) == 1


# --- the sandbox -------------------------------------------------------------------------------


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
        "{{ contact.interests.__class__ }}",
        "{{ contact|attr('__class__') }}",
        "{{ contact.first_name.upper() }}",
        "{{ 'x{0.__class__}'.format(contact) }}",
        "{{ range(100000000) }}",
        "{{ 'x' * 1000000000 }}",
        "{{ '%1000000000s' % 'x' }}",
        "{{ contact.first_name|center(1000000000) }}",
        "{{ block('footer', contact) }}",
        "{{ block(contact.first_name) }}",
        "{% include 'app.html' %}",
        "{% extends 'base.html' %}",
    ],
)
def test_templates_cannot_reach_beyond_the_merge_fields(marketer, settings, source):
    with pytest.raises(ValidationError) as refused:
        make(marketer, html=f"<p>{source}</p>")

    message = " ".join(refused.value.messages)
    assert settings.SECRET_KEY not in message and "<class" not in message
    assert not EmailTemplate.objects.exists()


def test_a_syntax_error_reports_its_line_and_is_not_saved(marketer):
    with pytest.raises(ValidationError) as refused:
        make(marketer, html="<p>One</p>\n<p>Two</p>\n<p>{{ contact.first_name </p>")

    assert "syntax error (line 3)" in refused.value.message_dict["html_body"][0]
    assert not EmailTemplate.objects.exists()


# --- pages -------------------------------------------------------------------------------------


def test_editor_shows_the_line_of_an_error_and_saves_nothing(marketer):
    client = logged_in(marketer)

    page = client.post(
        "/campaigns/templates/new/",
        {"name": "Bad", "subject": "Hi", "html_body": "<p>ok</p>\n{% if contact.email %}\n"},
        **ALPHA,
    )

    assert page.status_code == 200
    assert "line 2" in " ".join(page.context["form"].errors["html_body"])
    assert not EmailTemplate.objects.exists()


def test_create_edit_list_and_preview_as_a_contact(
    marketer, contact, django_assert_max_num_queries
):
    client = logged_in(marketer)
    created = client.post(
        "/campaigns/templates/new/",
        {"name": "Hello <b>", "subject": "Hi {{ contact.first_name }}", "html_body": HTML},
        **ALPHA,
    )
    template = EmailTemplate.objects.get()
    assert created.status_code == 302 and template.created_by == marketer
    edited = client.post(
        f"/campaigns/templates/{template.pk}/edit/",
        {"name": "Hello <b>", "subject": "Hey {{ contact.first_name }}", "html_body": HTML},
        **ALPHA,
    )
    assert edited.status_code == 302
    with django_assert_max_num_queries(8):
        listing = client.get("/campaigns/templates/", **ALPHA).content.decode()
    assert "Hello &lt;b&gt;" in listing

    found = client.get(f"/campaigns/templates/{template.pk}/preview/?q=gibb", **ALPHA)
    assert f"?contact={contact.pk}" in found.content.decode()
    preview = client.get(
        f"/campaigns/templates/{template.pk}/preview/?contact={contact.pk}", **ALPHA
    )
    assert preview.context["rendered"].subject == "Hey Peter"
    body = preview.content.decode()
    # The HTML is shown in a sandboxed frame, as an escaped srcdoc attribute.
    assert '<iframe title="HTML version" class="email-html" sandbox srcdoc="' in body
    assert "&lt;p class=&quot;lead&quot;" in body


def test_blocks_pages_create_and_edit(marketer):
    client = logged_in(marketer)

    bad = client.post("/campaigns/blocks/new/", {"name": "footer", "html": "{{ oops"}, **ALPHA)
    assert bad.status_code == 200 and not ContentBlock.objects.exists()
    assert (
        client.post(
            "/campaigns/blocks/new/", {"name": "footer", "html": "<p>Bye</p>"}, **ALPHA
        ).status_code
        == 302
    )
    block = ContentBlock.objects.get()
    client.post(
        f"/campaigns/blocks/{block.pk}/edit/", {"name": "footer", "html": "<p>Ciao</p>"}, **ALPHA
    )
    block.refresh_from_db()
    assert block.html == "<p>Ciao</p>"
    assert "footer" in client.get("/campaigns/blocks/", **ALPHA).content.decode()


def test_salespeople_may_not_manage_templates(marketer):
    sales = user_create(email="sal@alpha.test", password=PASSWORD, full_name="Sal", role=Role.SALES)
    template = make(marketer)
    client = logged_in(sales)

    for url in [
        "/campaigns/templates/",
        "/campaigns/templates/new/",
        f"/campaigns/templates/{template.pk}/preview/",
        "/campaigns/blocks/",
    ]:
        assert client.get(url, **ALPHA).status_code == 403
    assert client.post(f"/campaigns/templates/{template.pk}/test/", **ALPHA).status_code == 403


def test_another_tenants_templates_are_not_there(marketer, beta):
    template = make(marketer)
    with schema_context(beta.schema_name):
        beta_marketer = user_create(
            email="mia@beta.test", password=PASSWORD, full_name="Mia", role=Role.MARKETING
        )
    client = logged_in(beta_marketer, host=BETA)

    for url in [
        f"/campaigns/templates/{template.pk}/edit/",
        f"/campaigns/templates/{template.pk}/preview/",
    ]:
        assert client.get(url, **BETA).status_code == 404
    assert client.post(f"/campaigns/templates/{template.pk}/test/", **BETA).status_code == 404
    assert "News" not in client.get("/campaigns/templates/", **BETA).content.decode()
