"""The admin's website tracking page: the snippet to install, the sites allowed to send events,
the identify secret, and what the ingest endpoint counted (accepted, dropped, refused)."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.templatetags.static import static
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from crm.access import require
from tracking import ingest, selectors, sites
from tracking.forms import SiteOriginsForm


@never_cache
@login_required
@require("tracking.manage")
def tracking_setup(request):
    found = selectors.tracking_settings()
    form = SiteOriginsForm(
        request.POST or None, initial={"site_origins": "\n".join(found.site_origins)}
    )
    if request.method == "POST" and form.is_valid():
        try:
            sites.site_origins_set(actor=request.user, origins=form.origins())
        except ValidationError as error:
            form.add_error("site_origins", error.message_dict["site_origins"])
        else:
            messages.success(request, "Saved: the endpoint takes the new list within seconds.")
            return redirect("tracking:setup")
    return render(
        request,
        "tracking/setup.html",
        {
            "form": form,
            "settings": found,
            "status": selectors.ingest_status(),
            "script_url": request.build_absolute_uri(static("tracking/crm.js")),
            "endpoint": request.build_absolute_uri(ingest.PATH),
        },
    )


@login_required
@require("tracking.manage")
@require_POST
def identify_secret_rotate(request):
    sites.identify_secret_rotate(actor=request.user)
    messages.success(request, "A new identify secret: update your website's server with it.")
    return redirect("tracking:setup")
