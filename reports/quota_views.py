"""Quotas: managers set what each of their people should close in a period."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.urls import reverse

from crm import access
from crm.access import require
from reports import forecast
from reports.forecast_forms import PeriodSelect, QuotaForm, quota_people
from reports.models import Quota
from reports.quotas import quota_set


@login_required
@require("quotas.manage")
def quota_list(request):
    """The quotas of the people in the manager's reach for a period, and the form that sets
    one. The period comes from the URL (the forecast links here with its own)."""
    form = QuotaForm(request.POST if request.method == "POST" else None, actor=request.user)
    key = request.GET.get("period", "")
    if not form.fields["period"].valid_value(key):
        if key:
            messages.error(
                request, f"Period: {key[:20]} is not one to choose; here is this quarter."
            )
        key = form.fields["period"].initial()
    period = forecast.period_from_key(key)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            quota_set(
                actor=request.user, user=data["user"], period=data["period"], amount=data["amount"]
            )
        except ValidationError as invalid:
            for name, errors in invalid.message_dict.items():
                for error in errors:
                    form.add_error(name if name in form.fields else None, error)
        else:
            messages.success(
                request, f"{data['user']}'s quota for {data['period'].label} is saved."
            )
            key = forecast.period_key(data["period"])
            return redirect(f"{reverse('reports:quotas')}?period={key}")
    if not form.is_bound:
        form = QuotaForm(initial={"period": key}, actor=request.user)
    people = list(quota_people(request.user))
    quotas = dict(
        access.owned_for(request.user, Quota.objects.all(), owner_field="user")
        .filter(period_kind=period.kind, period_start=period.start)
        .values_list("user_id", "amount")
    )
    return render(
        request,
        "reports/quotas.html",
        {
            "form": form,
            "period": period,
            "period_key": key,
            "period_select": PeriodSelect(choices=form.fields["period"].choices).render(
                "period", key, {"id": "id_show_period"}
            ),
            "people": [(person, quotas.get(person.pk)) for person in people],
        },
    )
