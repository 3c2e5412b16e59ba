"""The admin's API key pages: the list, making a key (shown once), and revoking one."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache

from crm.access import require
from integrations import keys
from integrations.forms import ApiKeyForm
from integrations.models import ApiKey


@login_required
@require("api.manage")
def api_key_list(request):
    api_keys = ApiKey.objects.select_related("user", "created_by").order_by(
        "revoked_at", "-created_at"
    )
    return render(request, "integrations/api_keys.html", {"api_keys": api_keys})


@login_required
@require("api.manage")
@never_cache
def api_key_create(request):
    form = ApiKeyForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            key, key_text = keys.api_key_create(actor=request.user, **form.cleaned_data)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            # Rendered, not redirected: the key's text exists only in this one answer.
            return render(
                request, "integrations/api_keys_created.html", {"key": key, "key_text": key_text}
            )
    return render(request, "integrations/api_keys_form.html", {"form": form})


@login_required
@require("api.manage")
def api_key_revoke(request, pk):
    key = get_object_or_404(ApiKey.objects.select_related("user"), pk=pk)
    if request.method == "POST":
        if keys.api_key_revoke(actor=request.user, key=key):
            messages.success(request, f"The key “{key.name}” was revoked.")
        else:
            messages.info(request, f"The key “{key.name}” was already revoked.")
        return redirect("integrations:api_key_list")
    return render(request, "integrations/api_keys_revoke.html", {"key": key})
