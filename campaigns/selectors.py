from django.db.models import Count, QuerySet

from campaigns.models import Campaign, CampaignMember


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
