from django.db.models import QuerySet

from opportunities.models import Opportunity


def opportunity_list() -> QuerySet[Opportunity]:
    return Opportunity.objects.select_related("account", "owner", "stage").order_by(
        "expected_close", "id"
    )
