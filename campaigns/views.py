from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from campaigns import selectors, services
from campaigns.forms import AddSegmentForm, CampaignForm
from campaigns.models import Campaign
from campaigns.segments import segment_contacts
from crm.access import require

PAGE_SIZE = 50


@login_required
@require("campaigns.view")
def campaign_list(request):
    page = Paginator(selectors.campaign_list(), PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "campaigns/campaign_list.html", {"page": page})


@login_required
@require("campaigns.view")
def campaign_detail(request, pk):
    """A campaign's page: what it is, what it cost, and how far its members went."""
    campaign = get_object_or_404(Campaign.objects.select_related("owner"), pk=pk)
    return render(
        request,
        "campaigns/campaign_detail.html",
        {
            "campaign": campaign,
            "counts": selectors.member_counts(campaign),
            "engagement": selectors.engagement_counts(campaign),
            "links": selectors.link_clicks(campaign),
            "members": selectors.campaign_members(campaign),
            "segment_form": AddSegmentForm(),
        },
    )


@login_required
@require("campaigns.view")
def campaign_edit(request, pk=None):
    campaign = get_object_or_404(Campaign, pk=pk) if pk else None
    form = CampaignForm(request.POST or None, instance=campaign)
    if request.method == "POST" and form.is_valid():
        if campaign is None:
            campaign = services.campaign_create(actor=request.user, **form.cleaned_data)
        else:
            services.campaign_update(actor=request.user, campaign=campaign, **form.cleaned_data)
        messages.success(request, f"{campaign.name} saved.")
        return redirect("campaigns:detail", pk=campaign.pk)
    return render(request, "campaigns/campaign_form.html", {"form": form, "campaign": campaign})


@login_required
@require("campaigns.view")
@require_POST
def campaign_add_segment(request, pk):
    """Target every contact of a segment (those already members stay as they are)."""
    campaign = get_object_or_404(Campaign, pk=pk)
    form = AddSegmentForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a segment.")
    else:
        segment = form.cleaned_data["segment"]
        added = services.campaign_members_add(
            actor=request.user,
            campaign=campaign,
            contacts=segment_contacts(segment, user=request.user),
        )
        messages.success(request, f"{added:,} contacts of {segment} added.")
    return redirect("campaigns:detail", pk=pk)
