"""Marketing e-mail templates and content blocks: the editors, preview as a contact, and a test
sent to yourself."""

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from campaigns import templating
from campaigns.models import ContentBlock, EmailTemplate
from campaigns.unsubscribe import UnsubscribeLinks, can_receive_marketing, message_headers
from crm.access import contacts_for, require

CONTACT_MATCHES = 10


class EmailTemplateForm(forms.ModelForm):
    class Meta:
        model = EmailTemplate
        fields = ["name", "subject", "preheader", "html_body", "text_body"]
        widgets = {
            "html_body": forms.Textarea(attrs={"rows": 18, "class": "letter-body"}),
            "text_body": forms.Textarea(attrs={"rows": 8, "class": "letter-body"}),
        }
        labels = {"html_body": "HTML body", "text_body": "Plain-text body"}
        help_texts = {
            "preheader": "The line mail clients show after the subject; hidden in the message.",
            "text_body": "Leave empty to make it from the HTML.",
        }

    def clean(self):
        data = super().clean()
        if not self.errors:
            templating.email_template_check(
                subject=data["subject"],
                preheader=data["preheader"],
                html_body=data["html_body"],
                text_body=data["text_body"],
            )
        return data


class ContentBlockForm(forms.ModelForm):
    class Meta:
        model = ContentBlock
        fields = ["name", "html", "text"]
        widgets = {
            "html": forms.Textarea(attrs={"rows": 10, "class": "letter-body"}),
            "text": forms.Textarea(attrs={"rows": 6, "class": "letter-body"}),
        }
        labels = {"html": "HTML", "text": "Plain text"}
        help_texts = {"name": 'Templates include it as {{ block("name") }}.'}


def _saved(request, form, create, update, instance, **update_args):
    """Call the create or update service with the form's data; False (errors on the form) when
    the service refuses."""
    try:
        if instance is None:
            return create(actor=request.user, **form.cleaned_data)
        return update(actor=request.user, **update_args, **form.cleaned_data)
    except ValidationError as error:
        form.add_error(None, error)
        return None


@login_required
@require("templates.manage")
def template_list(request):
    templates = EmailTemplate.objects.select_related("created_by").order_by("name")
    return render(request, "campaigns/email_templates/list.html", {"templates": templates})


def _template_form_page(request, template: EmailTemplate | None):
    form = EmailTemplateForm(request.POST or None, instance=template)
    if request.method == "POST" and form.is_valid():
        saved = _saved(
            request,
            form,
            templating.email_template_create,
            templating.email_template_update,
            template,
            template=template,
        )
        if saved:
            messages.success(request, f"E-mail template {saved.name} saved.")
            return redirect("campaigns:template_preview", pk=saved.pk)
    return render(
        request,
        "campaigns/email_templates/form.html",
        {
            "form": form,
            "template": template,
            "merge_fields": templating.MERGE_FIELDS,
            "blocks": ContentBlock.objects.order_by("name").values_list("name", flat=True),
        },
    )


@login_required
@require("templates.manage")
def template_create(request):
    return _template_form_page(request, None)


@login_required
@require("templates.manage")
def template_edit(request, pk):
    return _template_form_page(request, get_object_or_404(EmailTemplate, pk=pk))


def _rendered_for(template: EmailTemplate, contact, *, to: str, contact_id):
    """The template filled in for `contact` (or the sample contact), with a real unsubscribe
    link for the address `to`; returns (rendered, url) or raises ValidationError."""
    compiled = templating.email_template_compile(template)
    url = UnsubscribeLinks().url(contact_id=contact_id, email=to)
    if contact is None:
        context = {**templating.SAMPLE_CONTACT, templating.UNSUBSCRIBE_URL: url}
    else:
        segments = templating.contact_segment_names([contact.pk]).get(contact.pk, ())
        context = templating.email_context(contact, segments=segments, unsubscribe_url=url)
    try:
        return compiled.render(context), url
    except templating.MergeFieldError as error:
        raise ValidationError(str(error)) from error


def _picked_contact(request, source):
    contact_id = source.get("contact", "")
    if not contact_id.isdigit():
        return None
    contacts = contacts_for(request.user).select_related("account")
    return get_object_or_404(contacts, pk=contact_id)


@login_required
@require("templates.manage")
def template_preview(request, pk):
    """The template as a contact would get it: pick the contact with a small search."""
    template = get_object_or_404(EmailTemplate, pk=pk)
    contact = _picked_contact(request, request.GET)
    query = request.GET.get("q", "").strip()
    matches = []
    if query:
        matches = (
            contacts_for(request.user)
            .filter(
                Q(first_name__icontains=query)
                | Q(last_name__icontains=query)
                | Q(email__icontains=query)
            )
            .order_by("last_name", "first_name", "id")[:CONTACT_MATCHES]
        )
    context = {"template": template, "contact": contact, "query": query, "matches": matches}
    try:
        context["rendered"], _url = _rendered_for(
            template,
            contact,
            to=contact.email if contact else request.user.email,
            contact_id=contact.pk if contact else None,
        )
    except ValidationError as error:
        context["error"] = " ".join(error.messages)
    if contact is not None:
        context["receives_marketing"] = can_receive_marketing(contact)
    return render(request, "campaigns/email_templates/preview.html", context)


@login_required
@require("templates.manage")
@require_POST
def template_send_test(request, pk):
    """Send the template, filled in as the chosen contact, to the user's own address. Its
    unsubscribe link and headers are real and unsubscribe that address."""
    template = get_object_or_404(EmailTemplate, pk=pk)
    contact = _picked_contact(request, request.POST)
    try:
        rendered, url = _rendered_for(template, contact, to=request.user.email, contact_id=None)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        templating.email_message(
            rendered,
            to=request.user.email,
            headers=message_headers(url=url),
            from_email=settings.DEFAULT_FROM_EMAIL,
        ).send()
        messages.success(request, f"Test sent to {request.user.email}.")
    response = redirect("campaigns:template_preview", pk=template.pk)
    if contact is not None:
        response["Location"] += f"?contact={contact.pk}"
    return response


@login_required
@require("templates.manage")
def block_list(request):
    blocks = ContentBlock.objects.order_by("name")
    return render(request, "campaigns/email_templates/block_list.html", {"blocks": blocks})


def _block_form_page(request, block: ContentBlock | None):
    form = ContentBlockForm(request.POST or None, instance=block)
    if request.method == "POST" and form.is_valid():
        saved = _saved(
            request,
            form,
            templating.content_block_create,
            templating.content_block_update,
            block,
            block=block,
        )
        if saved:
            messages.success(request, f"Content block {saved.name} saved.")
            return redirect("campaigns:block_list")
    return render(
        request,
        "campaigns/email_templates/block_form.html",
        {"form": form, "block": block, "merge_fields": templating.MERGE_FIELDS},
    )


@login_required
@require("templates.manage")
def block_create(request):
    return _block_form_page(request, None)


@login_required
@require("templates.manage")
def block_edit(request, pk):
    return _block_form_page(request, get_object_or_404(ContentBlock, pk=pk))
