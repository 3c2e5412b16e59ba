from django.db.models import QuerySet

from contacts.models import Account, Contact
from opportunities.models import Opportunity


def account_list() -> QuerySet[Account]:
    return Account.objects.select_related("owner").order_by("name", "id")


def contact_list() -> QuerySet[Contact]:
    return Contact.objects.select_related("account", "owner").order_by(
        "last_name", "first_name", "id"
    )


def shell_counts(user) -> dict[str, int]:
    """Headline figures for the home page."""
    return {
        "accounts": Account.objects.count(),
        "contacts": Contact.objects.count(),
        "open_opportunities": Opportunity.objects.filter(
            stage__is_won=False, stage__is_lost=False
        ).count(),
        "my_opportunities": Opportunity.objects.filter(owner=user).count(),
    }
