from django.db.models import QuerySet

from contacts.models import Account, Contact
from crm import access


def account_list(user) -> QuerySet[Account]:
    return access.accounts_for(user).select_related("owner").order_by("name", "id")


def contact_list(user) -> QuerySet[Contact]:
    return (
        access.contacts_for(user)
        .select_related("account", "owner")
        .order_by("last_name", "first_name", "id")
    )


def shell_counts(user) -> dict[str, int]:
    """Headline figures for the home page, over the records the user may see."""
    opportunities = access.opportunities_for(user)
    return {
        "accounts": access.accounts_for(user).count(),
        "contacts": access.contacts_for(user).count(),
        "open_opportunities": opportunities.filter(
            stage__is_won=False, stage__is_lost=False
        ).count(),
        "my_opportunities": opportunities.filter(owner=user).count(),
    }
