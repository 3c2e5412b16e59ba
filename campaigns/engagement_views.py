"""Public endpoints of campaign e-mail: the open pixel and the click redirect. No login and no
session: the signed token is the only authority (see campaigns.engagement)."""

import base64

from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from campaigns.engagement import (
    click_redirect_url,
    click_target,
    click_token_read,
    email_click_record,
    email_open_record,
    open_token_read,
)

GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


@never_cache
@require_GET
def email_open(request, token):
    """Always the 1x1 GIF, so a bad token shows nothing odd in the mail client; only a valid
    one counts an open."""
    data = open_token_read(token)
    if data is not None:
        email_open_record(outbox_id=data["m"])
    return HttpResponse(GIF, content_type="image/gif")


@never_cache
@require_GET
def email_click(request, token):
    """Count the click and redirect to the link's stored URL; anything else is an error page
    that redirects nowhere."""
    data = click_token_read(token)
    target = data and click_target(outbox_id=data["m"], link_id=data["l"])
    if not target:
        return render(request, "campaigns/link_invalid.html", status=400)
    outbox, link = target
    email_click_record(outbox=outbox, link=link)
    return HttpResponseRedirect(click_redirect_url(outbox=outbox, link=link))
