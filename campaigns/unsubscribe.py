"""Unsubscribing from marketing e-mail, and who may still receive it.

Every marketing message carries a link to /u/<token>/ on the tenant's own host, and the
`List-Unsubscribe` / `List-Unsubscribe-Post` headers (RFC 8058 one-click) pointing at the same
URL. The token is signed (django.core.signing, with its own salt; a send makes its many with
campaigns.tokens, which makes the same tokens faster) and carries the tenant's schema, the
contact, the address the message went to and, for a campaign's message, the campaign: it is the
only authority the page needs, so it works without a login or a session, and a token altered,
forged or made for another tenant changes nothing. Unsubscribing writes a Suppression: that address
never gets marketing e-mail again; through a campaign's message it also stamps that message's
outbox row (`unsubscribed_at`), which the campaign's page counts. Tokens made before they carried a
campaign still unsubscribe.
"""

from django.core import signing
from django.db import IntegrityError, connection, transaction
from django.db.models.functions import Lower
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from campaigns.models import Campaign, OutboxMessage, Suppression
from campaigns.tokens import TokenSigner
from contacts.models import Contact
from crm.tenants.models import Tenant
from crm.tenants.selectors import tenant_url
from tracking.models import TimelineEntry
from tracking.services import audit_record, timeline_add

SALT = "campaigns.unsubscribe"
ONE_CLICK = "List-Unsubscribe=One-Click"


def unsubscribe_token(*, contact_id: int, email: str, campaign_id: int | None = None) -> str:
    """A signed token for this contact and address (and the campaign whose message carries it),
    in the current tenant's schema."""
    data = {"t": connection.schema_name, "c": contact_id, "e": email}
    if campaign_id is not None:
        data["p"] = campaign_id
    return signing.dumps(data, salt=SALT)


def unsubscribe_token_read(token: str) -> dict | None:
    """What a token says, if it is intact and was made in the current tenant; else None."""
    try:
        data = signing.loads(token, salt=SALT)
    except signing.BadSignature:
        return None
    if not isinstance(data, dict) or data.get("t") != connection.schema_name:
        return None
    return data


class UnsubscribeLinks:
    """Unsubscribe URLs for the current tenant, and for the messages of `campaign` when given;
    make one per send (it looks the tenant up once) and ask it for each recipient's URL."""

    def __init__(self, campaign: Campaign | None = None):
        tenant = Tenant.objects.get(schema_name=connection.schema_name)
        self.base = tenant_url(tenant, reverse("unsubscribe", args=["-"]).removesuffix("-/"))
        self.campaign_id = campaign.pk if campaign is not None else None
        self.schema = connection.schema_name
        self.signer = TokenSigner(SALT)

    def url(self, *, contact_id: int, email: str) -> str:
        # What unsubscribe_token signs, signed as it signs it.
        data = {"t": self.schema, "c": contact_id, "e": email}
        if self.campaign_id is not None:
            data["p"] = self.campaign_id
        return f"{self.base}{self.signer.json(data)}/"


def message_headers(*, url: str, mailto: str | None = None) -> dict[str, str]:
    """The headers that let mail clients offer one-click unsubscribing (RFC 2369 and 8058)."""
    targets = f"<{url}>" + (f", <mailto:{mailto}?subject=unsubscribe>" if mailto else "")
    return {"List-Unsubscribe": targets, "List-Unsubscribe-Post": ONE_CLICK}


def suppressed(emails) -> set[str]:
    """The addresses among `emails` that must not get marketing e-mail, lower-cased."""
    lowered = {email.lower() for email in emails if email}
    if not lowered:
        return set()
    return set(
        Suppression.objects.annotate(address=Lower("email"))
        .filter(address__in=lowered)
        .values_list("address", flat=True)
    )


def can_receive_marketing(contact: Contact) -> bool:
    """Whether marketing e-mail may go to this contact: an address, no do-not-e-mail flag, and
    an address not unsubscribed, bounced or complained about."""
    return bool(contact.email) and not contact.do_not_email and not suppressed([contact.email])


@transaction.atomic
def suppression_add(
    *,
    email: str,
    reason: str,
    contact: Contact | None = None,
    campaign: Campaign | None = None,
    actor=None,
) -> Suppression | None:
    """Suppress an address, with the reason, on the contact's timeline; returns None when it
    was suppressed already (the first reason stays)."""
    try:
        with transaction.atomic():
            suppression = Suppression.objects.create(email=email, reason=reason, campaign=campaign)
    except IntegrityError:
        return None
    audit_record(instance=suppression, action="created", actor=actor)
    if contact is not None:
        timeline_add(
            kind=TimelineEntry.Kind.EMAIL,
            summary=f"Marketing e-mail stopped: {suppression.get_reason_display().lower()}",
            detail=email,
            contact=contact,
            actor=actor,
        )
    return suppression


@transaction.atomic
def contact_unsubscribe(*, token_data: dict) -> None:
    """Unsubscribe the address of a token `unsubscribe_token_read` accepted; a campaign's token
    also stamps the contact's message of that campaign (once, however often it is used)."""
    contact = Contact.objects.select_related("account").filter(pk=token_data["c"]).first()
    campaign = (
        Campaign.objects.filter(pk=token_data.get("p")).first() if "p" in token_data else None
    )
    suppression_add(
        email=token_data["e"],
        reason=Suppression.Reason.UNSUBSCRIBED,
        contact=contact,
        campaign=campaign,
    )
    if campaign is not None:
        OutboxMessage.objects.filter(
            campaign=campaign, contact_id=token_data["c"], unsubscribed_at__isnull=True
        ).update(unsubscribed_at=timezone.now())


# The token is the authority: no login, no session and no CSRF cookie, as mail clients send the
# one-click POST (RFC 8058) on their own.
@csrf_exempt
@require_http_methods(["GET", "POST"])
def unsubscribe_page(request, token):
    """GET asks to confirm (link scanners follow links and must not unsubscribe anyone); POST,
    from the confirm button or a mail client's one-click, unsubscribes."""
    data = unsubscribe_token_read(token)
    if data is None:
        return render(request, "campaigns/unsubscribe_invalid.html", status=400)
    context = {"email": data["e"], "tenant": request.tenant}
    if request.method == "POST":
        contact_unsubscribe(token_data=data)
        return render(request, "campaigns/unsubscribe_done.html", context)
    return render(request, "campaigns/unsubscribe.html", context)
