"""The send page of an e-mail campaign: choose what and to whom, send now or later, then watch
the progress and pause, resume or cancel. campaigns.sending does the work."""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from campaigns import sending
from campaigns.models import Campaign, EmailTemplate, Segment
from crm.access import require


class SendForm(forms.Form):
    email_template = forms.ModelChoiceField(
        EmailTemplate.objects.order_by("name"), label="Template"
    )
    segments = forms.ModelMultipleChoiceField(
        Segment.objects.order_by("name"), widget=forms.CheckboxSelectMultiple
    )
    when = forms.ChoiceField(
        choices=[("now", "Send now"), ("later", "Schedule")],
        widget=forms.RadioSelect,
        initial="now",
    )
    scheduled_at = forms.DateTimeField(
        required=False,
        label="Send at",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )

    def clean(self):
        data = super().clean()
        if data.get("when") == "later":
            at = data.get("scheduled_at")
            if at is None:
                self.add_error("scheduled_at", "Choose when to send.")
            elif at <= timezone.now():
                self.add_error("scheduled_at", "Choose a time in the future.")
        return data


def _audience_size(segments, user) -> int:
    return sending.audience(segments=segments, user=user).count() if segments else 0


@login_required
@require("campaigns.view")
def campaign_send_page(request, pk):
    """Before the send: the form and the audience size. After: the progress."""
    campaign = get_object_or_404(Campaign, pk=pk)
    if campaign.send_state != Campaign.SendState.DRAFT:
        return render(
            request,
            "campaigns/send/page.html",
            {"campaign": campaign, "progress": sending.send_progress(campaign)},
        )
    initial = {
        "email_template": campaign.email_template_id,
        "segments": list(campaign.segments.all()),
    }
    form = SendForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            count = sending.campaign_send_with(
                actor=request.user,
                campaign=campaign,
                email_template=data["email_template"],
                segments=data["segments"],
                at=data["scheduled_at"] if data["when"] == "later" else None,
            )
        except ValidationError as error:
            for message in error.messages:
                form.add_error(None, message)
        else:
            messages.success(request, f"{campaign.name} is going to {count:,} recipients.")
            return redirect("campaigns:send", pk=campaign.pk)
    chosen = form.cleaned_data.get("segments") if form.is_bound else initial["segments"]
    return render(
        request,
        "campaigns/send/page.html",
        {
            "campaign": campaign,
            "form": form,
            "audience": _audience_size(chosen or [], request.user),
        },
    )


@login_required
@require("campaigns.view")
def campaign_send_audience(request, pk):
    """htmx: how many would receive it with the segments ticked in the form."""
    get_object_or_404(Campaign, pk=pk)
    segments = Segment.objects.filter(
        pk__in=[v for v in request.GET.getlist("segments") if v.isdigit()]
    )
    return render(
        request,
        "campaigns/send/_audience.html",
        {"audience": _audience_size(list(segments), request.user)},
    )


@login_required
@require("campaigns.view")
def campaign_send_progress(request, pk):
    """htmx, every second while it sends: the rows by status."""
    campaign = get_object_or_404(Campaign, pk=pk)
    return render(
        request,
        "campaigns/send/_progress.html",
        {"campaign": campaign, "progress": sending.send_progress(campaign)},
    )


ACTIONS = {
    "pause": (sending.campaign_pause, "paused"),
    "resume": (sending.campaign_resume, "resumed"),
    "cancel": (sending.campaign_cancel, "cancelled"),
}


@login_required
@require("campaigns.view")
@require_POST
def campaign_send_control(request, pk, action):
    if action not in ACTIONS:
        raise Http404
    campaign = get_object_or_404(Campaign, pk=pk)
    service, done = ACTIONS[action]
    if service(actor=request.user, campaign=campaign):
        messages.success(request, f"{campaign.name} {done}.")
    else:
        messages.error(request, f"{campaign.name} is {campaign.get_send_state_display().lower()}.")
    return redirect("campaigns:send", pk=campaign.pk)
