"""The marketer's pages: the list of lead forms, the builder, and a form's page with its hosted
address, its embed snippet and its latest submissions. The visitor's side is in
leads.public_views."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.templatetags.static import static
from django.urls import reverse

from crm.access import require
from crm.tenants.selectors import tenant_url
from leads import selectors, services
from leads.forms import (
    HONEYPOT,
    LeadFormForm,
    SubmissionForm,
    TerritoryOwnerFormSet,
    territory_rule_check,
)
from leads.models import LeadForm

PAGE_SIZE = 50


def _lead_form_or_404(pk: int) -> LeadForm:
    lead_form = selectors.lead_form_for_builder(pk=pk)
    if lead_form is None:
        raise Http404
    return lead_form


@login_required
@require("forms.manage")
def form_list(request):
    page = Paginator(selectors.lead_form_list(), PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "leads/form_list.html", {"page": page})


@login_required
@require("forms.manage")
def form_edit(request, pk=None):
    """The builder: the form's settings, and (for the by-territory rule) which user gets each
    territory's new contacts."""
    lead_form = _lead_form_or_404(pk) if pk else None
    form = LeadFormForm(request.POST or None, instance=lead_form)
    initial = (
        [{"territory": t.territory, "owner": t.owner} for t in lead_form.territory_owners.all()]
        if lead_form
        else []
    )
    territories = TerritoryOwnerFormSet(request.POST or None, initial=initial, prefix="territory")
    if (
        request.method == "POST"
        and form.is_valid()
        and territories.is_valid()
        and territory_rule_check(form, territories)
    ):
        if lead_form is None:
            lead_form = services.lead_form_create(
                actor=request.user, territory_owners=territories.pairs(), **form.cleaned_data
            )
        else:
            services.lead_form_update(
                actor=request.user,
                form=lead_form,
                territory_owners=territories.pairs(),
                **form.cleaned_data,
            )
        messages.success(request, f"{lead_form.name} saved.")
        return redirect("leads:form_detail", pk=lead_form.pk)
    return render(
        request,
        "leads/form_builder.html",
        {"form": form, "territories": territories, "lead_form": lead_form},
    )


def embed_snippet(request, lead_form: LeadForm) -> str:
    """The HTML a tenant pastes into their website: a plain form that posts to the hosted
    page, which the script turns into one that posts with fetch and shows the answer in place."""
    return render_to_string(
        "leads/embed_snippet.html",
        {
            "form": SubmissionForm(lead_form=lead_form, auto_id=False),
            "lead_form": lead_form,
            "honeypot": HONEYPOT,
            "hosted_url": tenant_url(
                request.tenant, reverse("leads:hosted_form", args=[lead_form.key])
            ),
            "api_url": tenant_url(request.tenant, reverse("leads:form_api", args=[lead_form.key])),
            "script_url": tenant_url(request.tenant, static("leads/embed.js")),
        },
    ).strip()


@login_required
@require("forms.manage")
def form_detail(request, pk):
    lead_form = _lead_form_or_404(pk)
    return render(
        request,
        "leads/form_detail.html",
        {
            "lead_form": lead_form,
            "hosted_url": tenant_url(
                request.tenant, reverse("leads:hosted_form", args=[lead_form.key])
            ),
            "snippet": embed_snippet(request, lead_form),
            "submissions": selectors.recent_submissions(lead_form),
        },
    )
