"""The admin's webhook pages: endpoints, each endpoint's delivery log, and the dead-letter list
with its replay button."""

import json

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db.models import Count, Q
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from crm.access import require
from integrations import webhooks
from integrations.models import WebhookDelivery, WebhookEndpoint, WebhookEvent

LOG_PAGE = 50


class EndpointForm(forms.Form):
    url = forms.URLField(
        label="URL",
        max_length=500,
        assume_scheme="https",
        help_text="Where the CRM POSTs each event, signed with this endpoint's secret.",
    )
    description = forms.CharField(max_length=200, required=False)
    events = forms.MultipleChoiceField(
        choices=WebhookEvent.choices, widget=forms.CheckboxSelectMultiple
    )
    is_active = forms.BooleanField(label="Active", required=False, initial=True)


def _save(request, form: EndpointForm, endpoint: WebhookEndpoint | None):
    """Call the service; its refusals (a URL pointing inside, say) become field errors."""
    try:
        if endpoint is None:
            return webhooks.webhook_endpoint_create(actor=request.user, **form.cleaned_data)
        return webhooks.webhook_endpoint_update(
            actor=request.user, endpoint=endpoint, **form.cleaned_data
        )
    except ValidationError as refused:
        form.add_error(None, refused)
        return None


@login_required
@require("webhooks.manage")
def endpoint_list(request):
    dead = Count("deliveries", filter=Q(deliveries__status=WebhookDelivery.Status.DEAD))
    endpoints = WebhookEndpoint.objects.annotate(dead=dead).order_by("-created_at")
    return render(request, "integrations/webhooks/endpoint_list.html", {"endpoints": endpoints})


@login_required
@require("webhooks.manage")
def endpoint_create(request):
    form = EndpointForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        endpoint = _save(request, form, None)
        if endpoint is not None:
            messages.success(request, "Endpoint added. Give its secret to the receiver.")
            return redirect("integrations:webhook_detail", endpoint.pk)
    return render(request, "integrations/webhooks/endpoint_form.html", {"form": form})


@login_required
@require("webhooks.manage")
def endpoint_edit(request, pk):
    endpoint = get_object_or_404(WebhookEndpoint, pk=pk)
    initial = {
        "url": endpoint.url,
        "description": endpoint.description,
        "events": endpoint.events,
        "is_active": endpoint.is_active,
    }
    form = EndpointForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid() and _save(request, form, endpoint):
        messages.success(request, "Endpoint saved.")
        return redirect("integrations:webhook_detail", endpoint.pk)
    return render(
        request, "integrations/webhooks/endpoint_form.html", {"form": form, "endpoint": endpoint}
    )


@login_required
@require("webhooks.manage")
@require_POST
def endpoint_delete(request, pk):
    endpoint = get_object_or_404(WebhookEndpoint, pk=pk)
    webhooks.webhook_endpoint_delete(actor=request.user, endpoint=endpoint)
    messages.success(request, f"Endpoint {endpoint.url} removed.")
    return redirect("integrations:webhook_list")


def _before(request) -> int | None:
    try:
        return int(request.GET["before"])
    except (KeyError, ValueError):
        return None


@login_required
@require("webhooks.manage")
def endpoint_detail(request, pk):
    """The endpoint, its secret, and its delivery log, newest first, a page at a time."""
    endpoint = get_object_or_404(WebhookEndpoint, pk=pk)
    deliveries = endpoint.deliveries.defer("payload").order_by("-pk")
    before = _before(request)
    if before:
        deliveries = deliveries.filter(pk__lt=before)
    page = list(deliveries[: LOG_PAGE + 1])
    more = len(page) > LOG_PAGE
    page = page[:LOG_PAGE]
    return render(
        request,
        "integrations/webhooks/endpoint_detail.html",
        {
            "endpoint": endpoint,
            "deliveries": page,
            "next_before": page[-1].pk if more else None,
            "event_labels": [WebhookEvent(e).label for e in endpoint.events],
        },
    )


@login_required
@require("webhooks.manage")
def delivery_detail(request, pk):
    delivery = get_object_or_404(WebhookDelivery.objects.select_related("endpoint"), pk=pk)
    payload = json.dumps(delivery.payload, indent=2, ensure_ascii=False)
    return render(
        request,
        "integrations/webhooks/delivery_detail.html",
        {"delivery": delivery, "payload": payload},
    )


@login_required
@require("webhooks.manage")
def dead_letters(request):
    """Deliveries that failed every attempt, newest first, to replay once the receiver is fixed."""
    deliveries = (
        WebhookDelivery.objects.filter(status=WebhookDelivery.Status.DEAD)
        .select_related("endpoint")
        .defer("payload")
        .order_by("-pk")
    )
    before = _before(request)
    if before:
        deliveries = deliveries.filter(pk__lt=before)
    page = list(deliveries[: LOG_PAGE + 1])
    more = len(page) > LOG_PAGE
    page = page[:LOG_PAGE]
    return render(
        request,
        "integrations/webhooks/dead_letters.html",
        {"deliveries": page, "next_before": page[-1].pk if more else None},
    )


@login_required
@require("webhooks.manage")
@require_POST
def delivery_replay(request, pk):
    delivery = get_object_or_404(WebhookDelivery, pk=pk)
    if webhooks.webhook_delivery_replay(actor=request.user, delivery=delivery):
        messages.success(request, f"Delivery of {delivery.event} queued again.")
    else:
        messages.info(request, "That delivery is no longer in the dead-letter list.")
    return redirect("integrations:webhook_dead")
