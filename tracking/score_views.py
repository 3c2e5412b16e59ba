"""Browser pages of the engagement score: the admin's scoring settings, the ready-to-talk list,
and the engagement panel of the 360-degree page (loaded into it by htmx)."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render

from contacts import selectors as contact_selectors
from crm.access import can, require
from tracking import score_selectors, scoring
from tracking.score_forms import ScoringSettingsForm
from tracking.selectors import tracking_settings


@login_required
@require("scoring.manage")
def scoring_settings(request):
    current = tracking_settings()
    form = ScoringSettingsForm(
        request.POST or None, initial=ScoringSettingsForm.initial_from(current)
    )
    if request.method == "POST" and form.is_valid():
        scoring.scoring_settings_update(actor=request.user, **form.settings_fields())
        messages.success(request, "Saved: scores and the ready-to-talk list use the new settings.")
        return redirect("scoring:settings")
    status = 400 if form.is_bound else 200
    return render(
        request,
        "tracking/scoring/settings.html",
        {"form": form, "can_set_up_sites": can(request.user, "tracking.manage")},
        status=status,
    )


@login_required
@require("ready.view")
def ready_list(request):
    page = score_selectors.ready_page(request.user, cursor=request.GET.get("after", ""))
    return render(request, "tracking/scoring/ready_list.html", {"page": page})


@login_required
@require("contacts.view")
def contact_engagement(request, pk):
    """The 360-degree page's engagement sections, for a contact the user may see (404
    otherwise, as for the page itself)."""
    contact = contact_selectors.contact_get(request.user, pk)
    return render(
        request,
        "tracking/scoring/_engagement.html",
        {"contact": contact, "panel": score_selectors.engagement_panel(contact)},
    )
