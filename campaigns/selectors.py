from django.db.models import QuerySet

from campaigns.models import Campaign


def campaign_list() -> QuerySet[Campaign]:
    return Campaign.objects.select_related("owner").order_by("-starts_on", "name")
