"""Marketing e-mail templates filled in for each recipient: subject, preheader, HTML and text.

Templates are untrusted code and run in the sandbox of crm.merge_fields, the one letters use, with
what e-mail adds: if-blocks on interests, life-cycle stage and static segments
(`{% if "analytics" in contact.interests %}`), content blocks included by name
(`{{ block("footer") }}`, the tenant's ContentBlock rows, which cannot include blocks themselves,
so there is no recursion), and HTML escaping of contact data in the HTML body.

A send compiles a template once (`email_template_compile`): the checks, the block look-up, the CSS
inlining for mail clients (css-inline), the hidden preheader and the unsubscribe footer all happen
then, so each recipient costs only the render.
"""

import re
from dataclasses import dataclass

import css_inline
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives
from django.db import connection, transaction
from jinja2 import Template, nodes, pass_context
from markupsafe import Markup

from campaigns.models import ContentBlock, EmailTemplate, Segment, SegmentMember
from contacts.models import Contact, CustomerType, LifecycleStage
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
        "lifecycle_stage": "Life-cycle stage (awareness, evaluation ...)",
        "customer_type": "Customer type",
        "territory": "Territory",
        "source": "Source",
        "interests": "Interests (a list: use with `in`)",
        "segments": "Names of the static segments the contact is on (use with `in`)",
    },
    "account": {
        "name": "Company name",
        "industry": "Industry",
        "city": "City",
        "country": "Country",
    },
    "company": {"name": "Your company's name"},
}
UNSUBSCRIBE_URL = "unsubscribe_url"
BLOCK = "block"
# Set by the compiled template itself (the hidden preheader), never by its author.
PREHEADER = "preheader"

SAMPLE_CONTACT = {
    "contact": {
        "first_name": "Jane",
        "last_name": "Doe",
        "full_name": "Jane Doe",
        "title": "Head of Purchasing",
        "email": "jane@example.com",
        "lifecycle_stage": LifecycleStage.EVALUATION.value,
        "customer_type": CustomerType.PROSPECT.value,
        "territory": "West",
        "source": "Web",
        "interests": ("analytics",),
        "segments": ("Newsletter",),
    },
    "account": {
        "name": "Example Ltd",
        "industry": "Software",
        "city": "Springfield",
        "country": "",
    },
    UNSUBSCRIBE_URL: "https://example.com/u/sample/",
}
EMPTY_CONTACT = {
    "contact": {
        name: (() if name in ("interests", "segments") else "") for name in MERGE_FIELDS["contact"]
    },
    "account": dict.fromkeys(MERGE_FIELDS["account"], ""),
    UNSUBSCRIBE_URL: "https://example.com/u/sample/",
}

HTML_ENV = sandbox_environment(autoescape=True)
TEXT_ENV = sandbox_environment(autoescape=False)
INLINER = css_inline.CSSInliner(load_remote_stylesheets=False)

# Template syntax, hidden from the HTML parser of the CSS inliner as comments (which survive
# anywhere, even between table rows, where text would be moved out of the table).
_SYNTAX = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)
_HIDDEN = re.compile(r"(?:<|&lt;)!--merge:(\d+)--(?:>|&gt;)")
_BODY_OPEN = re.compile(r"<body[^>]*>", re.IGNORECASE)
_BODY_CLOSE = re.compile(r"</body\s*>", re.IGNORECASE)
_HEAD = re.compile(r"<(head|style|script)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]+>")

PREHEADER_HTML = (
    '<div style="display:none;max-height:0;overflow:hidden;mso-hide:all;" aria-hidden="true">'
    "{{ preheader }}</div>"
)
UNSUBSCRIBE_HTML = (
    '<p style="font-size:12px;color:#666666;">Don\'t want these e-mails? '
    '<a href="{{ unsubscribe_url }}">Unsubscribe</a>.</p>'
)
UNSUBSCRIBE_TEXT = "\n\nUnsubscribe: {{ unsubscribe_url }}\n"


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    preheader: str
    html: str
    text: str


def _parse(env, source: str, *, blocks: bool) -> nodes.Template:
    return merge_template_parse(
        env,
        source,
        fields=MERGE_FIELDS,
        names={UNSUBSCRIBE_URL},
        calls={BLOCK} if blocks else (),
        noun="E-mail templates",
    )


def _block_names(tree: nodes.Template) -> dict[str, int]:
    return {
        call.args[0].value: call.lineno
        for call in tree.find_all(nodes.Call)
        if isinstance(call.node, nodes.Name) and call.node.name == BLOCK
    }


def _uses_unsubscribe_link(tree: nodes.Template) -> bool:
    return any(name.name == UNSUBSCRIBE_URL for name in tree.find_all(nodes.Name))


def css_inlined(source: str) -> str:
    """The HTML with its <style> rules moved into style attributes, template syntax untouched."""
    hidden: list[str] = []

    def hide(match: re.Match) -> str:
        hidden.append(match.group())
        return f"<!--merge:{len(hidden) - 1}-->"

    inlined = INLINER.inline(_SYNTAX.sub(hide, source))
    return _HIDDEN.sub(lambda match: hidden[int(match.group(1))], inlined)


def _text_from_html(source: str) -> str:
    # A template without a text body gets one made from its HTML (template syntax kept).
    text = _TAG.sub("", _HEAD.sub("", source))
    return "\n".join(line.strip() for line in text.splitlines() if line.strip()) + "\n"


def _block_function(templates: dict[str, Template], *, html: bool):
    @pass_context
    def block(context, name: str):
        out = merge_render(templates[name], context.get_all())
        return Markup(out) if html else out

    return block


def _company() -> dict[str, str]:
    tenant = Tenant.objects.only("name").filter(schema_name=connection.schema_name).first()
    return {"name": tenant.name if tenant else ""}


class CompiledEmail:
    """A template ready to render for many recipients. Build it with `email_template_compile`."""

    def __init__(self, *, subject: Template, preheader: Template, html: Template, text: Template):
        self.subject, self.preheader, self.html, self.text = subject, preheader, html, text

    def render(self, context: dict) -> RenderedEmail:
        """Fill in every part for one recipient (`email_context`); raises MergeFieldError."""
        subject = " ".join(merge_render(self.subject, context).split())
        preheader = " ".join(merge_render(self.preheader, context).split())
        html = merge_render(self.html, {**context, PREHEADER: preheader})
        return RenderedEmail(subject, preheader, html, merge_render(self.text, context))


def _template(env, source, *, globals: dict | None = None) -> Template:
    """`env.from_string`, with the template's globals in a plain dict: Jinja keeps them as a
    ChainMap over the environment's (empty here) and copies that into a dict key by key, in
    Python, at every render (a fifth of a campaign message's render)."""
    template = env.from_string(source, globals=globals)
    template.globals = dict(template.globals)
    return template


def _compile(
    *, subject: str, preheader: str, html_body: str, text_body: str, check: bool
) -> CompiledEmail:
    """Compile the four parts, raising ValidationError keyed by field. With `check`, also
    render them for a sample contact with every field set and with every field empty, so an
    if-block or fallback that breaks on either shows up when saving."""
    errors: dict[str, str] = {}
    trees: dict[str, nodes.Template] = {}
    sources = {
        "subject": (TEXT_ENV, subject, False),
        "preheader": (TEXT_ENV, preheader, False),
        "html_body": (HTML_ENV, html_body, True),
        "text_body": (TEXT_ENV, text_body or _text_from_html(html_body), True),
    }
    for field, (env, source, blocks) in sources.items():
        try:
            trees[field] = _parse(env, source, blocks=blocks)
        except MergeFieldError as error:
            errors[field] = str(error)
    wanted: dict[str, tuple[str, int]] = {}
    for field in ("html_body", "text_body"):
        if field in trees:
            wanted.update(
                {name: (field, line) for name, line in _block_names(trees[field]).items()}
            )
    found = {block.name: block for block in ContentBlock.objects.filter(name__in=wanted)}
    html_blocks: dict[str, Template] = {}
    text_blocks: dict[str, Template] = {}
    for name, (field, line) in wanted.items():
        block = found.get(name)
        if block is None:
            errors.setdefault(field, f'There is no content block "{name}" (line {line}).')
            continue
        try:
            html_blocks[name] = _template(HTML_ENV, _parse(HTML_ENV, block.html, blocks=False))
            text_blocks[name] = _template(
                TEXT_ENV, _parse(TEXT_ENV, block.text or _text_from_html(block.html), blocks=False)
            )
        except MergeFieldError as error:
            errors.setdefault(field, f'The content block "{name}" cannot be used: {error}')
    if errors:
        raise ValidationError(errors)

    company = {"company": _company()}
    html_source = css_inlined(html_body)
    html_source = _BODY_OPEN.sub(lambda match: match.group() + PREHEADER_HTML, html_source, 1)
    text_source = text_body or _text_from_html(html_body)
    if not _uses_unsubscribe_link(trees["html_body"]):
        html_source = _BODY_CLOSE.sub(lambda match: UNSUBSCRIBE_HTML + match.group(), html_source)
    if not _uses_unsubscribe_link(trees["text_body"]):
        text_source = text_source.rstrip("\n") + UNSUBSCRIBE_TEXT
    compiled = CompiledEmail(
        subject=_template(TEXT_ENV, trees["subject"], globals=company),
        preheader=_template(TEXT_ENV, trees["preheader"], globals=company),
        html=_template(
            HTML_ENV,
            html_source,
            globals={**company, BLOCK: _block_function(html_blocks, html=True)},
        ),
        text=_template(
            TEXT_ENV,
            text_source,
            globals={**company, BLOCK: _block_function(text_blocks, html=False)},
        ),
    )
    if check:
        parts = {
            "subject": compiled.subject,
            "preheader": compiled.preheader,
            "html_body": compiled.html,
            "text_body": compiled.text,
        }
        for field, part in parts.items():
            for sample in (SAMPLE_CONTACT, EMPTY_CONTACT):
                try:
                    merge_render(part, {**sample, PREHEADER: ""})
                except MergeFieldError as error:
                    errors.setdefault(field, str(error))
        if errors:
            raise ValidationError(errors)
    return compiled


def email_template_check(*, subject: str, preheader: str, html_body: str, text_body: str) -> None:
    """Raise ValidationError (per field, with the line at fault) unless the template compiles
    and fills in for a contact with every field set and with every field empty."""
    _compile(
        subject=subject, preheader=preheader, html_body=html_body, text_body=text_body, check=True
    )


def email_template_compile(template: EmailTemplate) -> CompiledEmail:
    """Compile a saved template once for a send or a preview (one query for its blocks, one for
    the tenant's name). Raises ValidationError if it no longer compiles (a block was deleted)."""
    return _compile(
        subject=template.subject,
        preheader=template.preheader,
        html_body=template.html_body,
        text_body=template.text_body,
        check=False,
    )


def contact_segment_names(contact_ids) -> dict[int, tuple[str, ...]]:
    """The names of the static segments each contact is on, in one query."""
    names: dict[int, list[str]] = {}
    rows = (
        SegmentMember.objects.filter(contact_id__in=contact_ids, segment__kind=Segment.Kind.STATIC)
        .order_by("segment__name")
        .values_list("contact_id", "segment__name")
    )
    for contact_id, name in rows:
        names.setdefault(contact_id, []).append(name)
    return {contact_id: tuple(found) for contact_id, found in names.items()}


# The columns email_context reads (a send loads only these for each chunk of recipients).
CONTEXT_COLUMNS = (
    *(name for name in MERGE_FIELDS["contact"] if name not in ("full_name", "segments")),
    *(f"account__{name}" for name in MERGE_FIELDS["account"]),
)


def email_contacts(contact_ids) -> dict[int, Contact]:
    """The contacts of `contact_ids` by id, with their accounts and only what email_context
    reads, in one query."""
    return Contact.objects.select_related("account").only(*CONTEXT_COLUMNS).in_bulk(contact_ids)


def email_context(
    contact: Contact, *, segments: tuple[str, ...] = (), unsubscribe_url: str
) -> dict:
    """The values a template may use for this contact, as plain strings and tuples (with the
    account joined in: select_related("account") when rendering many)."""
    account = contact.account
    return {
        "contact": {
            "first_name": contact.first_name,
            "last_name": contact.last_name,
            "full_name": contact.full_name,
            "title": contact.title,
            "email": contact.email,
            "lifecycle_stage": contact.lifecycle_stage,
            "customer_type": contact.customer_type,
            "territory": contact.territory,
            "source": contact.source,
            "interests": tuple(contact.interests),
            "segments": segments,
        },
        "account": {
            name: (getattr(account, name) if account else "") for name in MERGE_FIELDS["account"]
        },
        UNSUBSCRIBE_URL: unsubscribe_url,
    }


def email_message(
    rendered: RenderedEmail, *, to: str, headers: dict[str, str], from_email: str | None = None
) -> EmailMultiAlternatives:
    """The message for one recipient: text with the HTML as its alternative, and the headers
    (unsubscribe.message_headers) every marketing e-mail carries."""
    message = EmailMultiAlternatives(
        subject=rendered.subject,
        body=rendered.text,
        from_email=from_email,
        to=[to],
        headers=headers,
    )
    message.attach_alternative(rendered.html, "text/html")
    return message


# --- writes ---------------------------------------------------------------------------------------


def _check_template(template: EmailTemplate) -> None:
    email_template_check(
        subject=template.subject,
        preheader=template.preheader,
        html_body=template.html_body,
        text_body=template.text_body,
    )


@transaction.atomic
def email_template_create(
    *, actor, name: str, subject: str, html_body: str, preheader: str = "", text_body: str = ""
) -> EmailTemplate:
    """Add an e-mail template; raises ValidationError (with the line at fault) for one that
    does not compile or fill in."""
    template = EmailTemplate(
        name=name,
        subject=subject,
        preheader=preheader,
        html_body=html_body,
        text_body=text_body,
        created_by=actor,
    )
    template.full_clean()
    _check_template(template)
    template.save()
    audit_record(instance=template, action="created", actor=actor)
    return template


@transaction.atomic
def email_template_update(*, actor, template: EmailTemplate, **fields) -> EmailTemplate:
    audited_update(actor=actor, instance=template, fields=fields, validate=_check_template)
    return template


def _check_block(block: ContentBlock) -> None:
    errors = {}
    for field, env in (("html", HTML_ENV), ("text", TEXT_ENV)):
        try:
            compiled = env.from_string(_parse(env, getattr(block, field), blocks=False))
            for sample in (SAMPLE_CONTACT, EMPTY_CONTACT):
                merge_render(compiled, {**sample, "company": {"name": ""}})
        except MergeFieldError as error:
            errors[field] = str(error)
    if errors:
        raise ValidationError(errors)


@transaction.atomic
def content_block_create(*, actor, name: str, html: str, text: str = "") -> ContentBlock:
    """Add a content block; it may use merge fields but not include other blocks."""
    block = ContentBlock(name=name, html=html, text=text)
    block.full_clean()
    _check_block(block)
    block.save()
    audit_record(instance=block, action="created", actor=actor)
    return block


@transaction.atomic
def content_block_update(*, actor, block: ContentBlock, **fields) -> ContentBlock:
    audited_update(actor=actor, instance=block, fields=fields, validate=_check_block)
    return block
