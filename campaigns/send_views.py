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
from campaigns.models import Campaign, EmailTemplate, Segment, time_zones
from crm.access import require

WINDOW_BOTH = "Give both ends of the sending window, or neither."


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

    window_start = forms.TimeField(
        required=False,
        label="Send only from",
        help_text="Optional: a daily sending window, say 09:00 to 17:00.",
        widget=forms.TimeInput(attrs={"type": "time"}),
    )
    window_end = forms.TimeField(
        required=False, label="until", widget=forms.TimeInput(attrs={"type": "time"})
    )
    window_timezone = forms.ChoiceField(
        choices=[(zone, zone) for zone in sorted(time_zones())],
        initial="UTC",
        required=False,
        label="Time zone of the window",
    )

    def clean(self):
        data = super().clean()
        data["window_timezone"] = data.get("window_timezone") or "UTC"
        start, end = data.get("window_start"), data.get("window_end")
        if (start is None) != (end is None):
            self.add_error("window_end" if end is None else "window_start", WINDOW_BOTH)
        elif start is not None and start == end:
            self.add_error("window_end", "The window must not end when it starts.")
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
        "window_start": campaign.window_start,
        "window_end": campaign.window_end,
        "window_timezone": campaign.window_timezone,
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
                window=(data["window_start"], data["window_end"], data["window_timezone"]),
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
