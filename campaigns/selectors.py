from django.db.models import Count, Q, QuerySet

from campaigns.models import Campaign, CampaignLink, CampaignMember, OutboxMessage
from campaigns.services import STATUS_ORDER


def campaign_list() -> QuerySet[Campaign]:
    return Campaign.objects.select_related("owner").order_by("-starts_on", "name")


def member_counts(campaign: Campaign) -> list[tuple[str, int]]:
    """How many members are at each status, in the order a member moves through them."""
    counts = dict(
        CampaignMember.objects.filter(campaign=campaign)
        .values_list("status")
        .annotate(n=Count("id"))
    )
    return [(label, counts.get(value, 0)) for value, label in CampaignMember.Status.choices]


def campaign_members(campaign: Campaign, *, limit: int = 100) -> list[CampaignMember]:
    return list(
        CampaignMember.objects.filter(campaign=campaign)
        .select_related("contact")
        .order_by("-updated_at", "-id")[:limit]
    )


def engagement_counts(campaign: Campaign) -> list[tuple[str, int]]:
    """What became of a campaign's e-mail, in two queries: from its outbox, how many were sent,
    failed, delivered, bounced, complained about, opened, clicked and unsubscribed from (each
    stamped on the message: campaigns.esp, campaigns.engagement, campaigns.unsubscribe); and
    how many members responded (responded or beyond)."""
    Row = OutboxMessage.Status
    outbox = OutboxMessage.objects.filter(campaign=campaign).aggregate(
        sent=Count("id", filter=Q(status=Row.SENT)),
        failed=Count("id", filter=Q(status=Row.FAILED)),
        delivered=Count("id", filter=Q(delivered_at__isnull=False)),
        bounced=Count("id", filter=Q(bounced_at__isnull=False)),
        complained=Count("id", filter=Q(complained_at__isnull=False)),
        opened=Count("id", filter=Q(opened_at__isnull=False)),
        clicked=Count("id", filter=Q(clicked_at__isnull=False)),
        unsubscribed=Count("id", filter=Q(unsubscribed_at__isnull=False)),
    )
    responded = STATUS_ORDER[STATUS_ORDER.index(CampaignMember.Status.RESPONDED) :]
    return [
        ("Sent", outbox["sent"]),
        ("Failed", outbox["failed"]),
        ("Delivered", outbox["delivered"]),
        ("Bounced", outbox["bounced"]),
        ("Complained", outbox["complained"]),
        ("Opened", outbox["opened"]),
        ("Clicked", outbox["clicked"]),
        ("Unsubscribed", outbox["unsubscribed"]),
        (
            "Responded",
            CampaignMember.objects.filter(campaign=campaign, status__in=responded).count(),
        ),
    ]


def link_clicks(campaign: Campaign) -> list[CampaignLink]:
    """The campaign's links, most clicked first."""
    return list(CampaignLink.objects.filter(campaign=campaign).order_by("-clicks", "url"))
