from django.db.models import QuerySet

from crm import access
from opportunities.models import Opportunity


def opportunity_list(user) -> QuerySet[Opportunity]:
    return (
        access.opportunities_for(user)
        .select_related("account", "owner", "stage")
        .order_by("expected_close", "id")
    )
