"""The caught-mail pages: `make run`'s local mail catcher read in the browser, each tenant's users
seeing only the messages sent for their tenant (crm.mailcatcher says how that is known), and of
those only the roles that send marketing mail (the pages show everyone's mail, invitations
included). They exist only while the catcher is in use (CRM_MAILCATCHER_DIR); otherwise every
URL here is 404."""

from functools import wraps

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import render

from crm.access import require
from crm.mailcatcher import caught_get, caught_list

PAGE_SIZE = 50


def catcher_in_use(view):
    """404 unless `make run`'s mail catcher is in use (never in production)."""

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if not settings.CRM_MAILCATCHER_DIR:
            raise Http404("No mail catcher here.")
        return view(request, *args, **kwargs)

    return wrapped


@catcher_in_use
@login_required
@require("campaigns.view")
def caught_mail_list(request):
    """The tenant's caught messages, newest first."""
    messages = caught_list(folder=settings.CRM_MAILCATCHER_DIR, schema=request.tenant.schema_name)
    page = Paginator(messages, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "mailcatcher/caught_list.html", {"page": page})


@catcher_in_use
@login_required
@require("campaigns.view")
def caught_mail_detail(request, key):
    """One caught message: its HTML in a sandboxed frame, its text, its attachments."""
    message = caught_get(
        folder=settings.CRM_MAILCATCHER_DIR, schema=request.tenant.schema_name, key=key
    )
    if message is None:
        raise Http404("No such message.")
    return render(request, "mailcatcher/caught_detail.html", {"message": message})
