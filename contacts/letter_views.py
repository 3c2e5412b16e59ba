"""Letters by post: the template editor, writing a letter from a contact's page, and the PDF."""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from contacts import letters, selectors
from contacts.models import Activity, LetterBatch, LetterTemplate
from crm.access import can, require


class LetterTemplateForm(forms.ModelForm):
    class Meta:
        model = LetterTemplate
        fields = ["name", "subject", "body"]
        widgets = {"body": forms.Textarea(attrs={"rows": 18, "class": "letter-body"})}
        help_texts = {"subject": "Shown on the timeline; may use merge fields too."}

    def _checked(self, field: str) -> str:
        source = self.cleaned_data[field]
        try:
            letters.letter_check(source)
        except letters.LetterError as error:
            raise ValidationError(str(error)) from error
        return source

    def clean_subject(self):
        return self._checked("subject")

    def clean_body(self):
        return self._checked("body")


class WriteLetterForm(forms.Form):
    template = forms.ModelChoiceField(
        queryset=LetterTemplate.objects.order_by("name"), empty_label=None
    )


def _template_form_page(request, template: LetterTemplate | None):
    initial = None if template else {"body": letters.STARTER_BODY}
    form = LetterTemplateForm(request.POST or None, instance=template, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            if template is None:
                template = letters.letter_template_create(actor=request.user, **form.cleaned_data)
            else:
                letters.letter_template_update(
                    actor=request.user, template=template, **form.cleaned_data
                )
        except ValidationError as error:
            form.add_error(None, error)
        else:
            messages.success(request, f"Letter template {template.name} saved.")
            return redirect("contacts:letter_template_list")
    return render(
        request,
        "contacts/letters/template_form.html",
        {"form": form, "template": template, "merge_fields": letters.MERGE_FIELDS},
    )


@login_required
@require("letters.manage")
def template_list(request):
    templates = LetterTemplate.objects.select_related("created_by").order_by("name")
    return render(request, "contacts/letters/template_list.html", {"templates": templates})


@login_required
@require("letters.manage")
def template_create(request):
    return _template_form_page(request, None)


@login_required
@require("letters.manage")
def template_edit(request, pk):
    return _template_form_page(request, get_object_or_404(LetterTemplate, pk=pk))


def _contact_letters(contact) -> list[Activity]:
    return list(
        Activity.objects.filter(contact=contact, kind=Activity.Kind.LETTER)
        .select_related("user")
        .order_by("-occurred_at", "-id")[:20]
    )


@login_required
@require("contacts.view")
def contact_letter(request, pk):
    """Write a letter to a contact: pick a template, read the merged text, then create the PDF
    (which logs the letter). Requested by htmx without a template, it is the contact page's
    letter panel."""
    contact = selectors.contact_get(request.user, pk)
    source = request.POST if request.method == "POST" else request.GET
    form = WriteLetterForm(source if "template" in source else None)
    context = {
        "contact": contact,
        "form": form,
        "letters": _contact_letters(contact),
        "can_manage": can(request.user, "letters.manage"),
        "has_templates": form.fields["template"].queryset.exists(),
    }
    if request.htmx and not form.is_bound:
        return render(request, "contacts/letters/_panel.html", context)
    if form.is_valid():
        template = form.cleaned_data["template"]
        try:
            if request.method == "POST":
                letter = letters.contact_letter_create(
                    actor=request.user, contact=contact, template=template
                )
                return redirect("contacts:letter_download", pk=contact.pk, letter_pk=letter.pk)
            context["subject"], context["text"] = letters.letter_preview(
                contact=contact, template=template, sender=request.user
            )
        except letters.LetterError as error:
            context["error"] = str(error)
    return render(request, "contacts/letters/write.html", context)


@login_required
@require("contacts.view")
def letter_download(request, pk, letter_pk):
    """The PDF of a letter already written, made again from its stored text."""
    contact = selectors.contact_get(request.user, pk)
    letter = get_object_or_404(
        Activity.objects.select_related("contact"),
        pk=letter_pk,
        contact=contact,
        kind=Activity.Kind.LETTER,
    )
    response = HttpResponse(letters.letter_pdf([letter]), content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{letters.letter_filename(letter)}"'
    return response


# --- letters to a whole contact list ------------------------------------------------------------


class BatchForm(forms.Form):
    template = forms.ModelChoiceField(
        queryset=LetterTemplate.objects.order_by("name"), empty_label=None
    )
    # The contact list's filters, as its query string.
    query = forms.CharField(required=False, max_length=2000, widget=forms.HiddenInput)


def _list_query(params) -> str:
    """The contact list's filters among a request's parameters (its page and sort left out)."""
    params = params.copy()
    for name in ("after", "sort"):
        params.pop(name, None)
    return params.urlencode()


@login_required
@require("contacts.view")
def batch_new(request):
    """Letters from one template to every contact of a filtered contact list (the list's "Letters
    to these"): how many its filters select, how many of them asked for no mail, and the button
    that has a Celery task write them."""
    if request.method == "POST":
        form = BatchForm(request.POST)
        query = request.POST.get("query", "")
    else:
        query = _list_query(request.GET)
        form = BatchForm(initial={"query": query})
    context = {
        "form": form,
        "query": query,
        "has_templates": form.fields["template"].queryset.exists(),
        "most": letters.MAX_BATCH,
        "total": None,
    }
    try:
        total, no_mail = letters.batch_size(letters.batch_contacts(request.user, query))
        context |= {
            "total": total,
            "no_mail": no_mail,
            "letters": total - no_mail if total <= letters.MAX_BATCH else 0,
        }
        if request.method == "POST" and form.is_valid():
            batch = letters.letter_batch_create(actor=request.user, **form.cleaned_data)
            return redirect("contacts:letter_batch_detail", pk=batch.pk)
    except letters.LetterError as error:
        context["error"] = str(error)
    return render(request, "contacts/letters/batch_new.html", context)


@login_required
@require("contacts.view")
def batch_list(request):
    batches = letters.letter_batches_for(request.user).order_by("-created_at", "-id")[:50]
    return render(request, "contacts/letters/batch_list.html", {"batches": batches})


@login_required
@require("contacts.view")
def batch_detail(request, pk):
    """A batch's progress (polled by htmx while it runs), then its counts and its PDF."""
    batch = get_object_or_404(letters.letter_batches_for(request.user), pk=pk)
    progress = letters.letter_batch_progress(batch)
    context = {
        "batch": batch,
        "live": batch.status in (LetterBatch.Status.QUEUED, LetterBatch.Status.RUNNING),
        "progress": progress,
        "percent": progress * 100 // batch.total if batch.total else 100,
    }
    template = (
        "contacts/letters/_batch_status.html"
        if request.htmx
        else "contacts/letters/batch_detail.html"
    )
    return render(request, template, context)


@login_required
@require("contacts.view")
def batch_download(request, pk):
    batch = get_object_or_404(
        letters.letter_batches_for(request.user).defer(None),
        pk=pk,
        status=LetterBatch.Status.DONE,
        pdf__isnull=False,
    )
    response = HttpResponse(bytes(batch.pdf), content_type="application/pdf")
    response["Content-Disposition"] = (
        f'attachment; filename="{letters.letter_batch_filename(batch)}"'
    )
    return response
