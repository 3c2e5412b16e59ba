"""Who may do what: the one place that answers it for views, API, exports and search.

Each role's reach is listed here; views ask `can(user, action)` or use `require(action)`. A user
who may not do something gets 403 for an action, and 404 for a record that is not theirs (later
record-level rules live here too), the same answer as for one that does not exist.
"""

from dataclasses import dataclass
from functools import wraps

from django.core.exceptions import PermissionDenied
from django.urls import reverse

from crm.users.models import Role

# action -> roles allowed
RULES: dict[str, frozenset[str]] = {
    "users.manage": frozenset({Role.ADMIN}),
    "accounts.view": frozenset(
        {Role.ADMIN, Role.MANAGER, Role.SALES, Role.MARKETING, Role.PARTNER}
    ),
    "contacts.view": frozenset(
        {Role.ADMIN, Role.MANAGER, Role.SALES, Role.MARKETING, Role.PARTNER}
    ),
    "opportunities.view": frozenset({Role.ADMIN, Role.MANAGER, Role.SALES, Role.PARTNER}),
    "campaigns.view": frozenset({Role.ADMIN, Role.MANAGER, Role.MARKETING}),
}


def can(user, action: str) -> bool:
    return bool(user.is_authenticated and user.is_active and user.role in RULES[action])


def require(action: str):
    """View decorator: 403 unless the logged-in user's role may do `action`."""

    def decorate(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if not can(request.user, action):
                raise PermissionDenied
            return view(request, *args, **kwargs)

        return wrapped

    return decorate


@dataclass(frozen=True)
class NavItem:
    label: str
    url_name: str
    action: str | None

    @property
    def url(self) -> str:
        return reverse(self.url_name)


NAVIGATION = (
    NavItem("Home", "home", None),
    NavItem("Accounts", "contacts:account_list", "accounts.view"),
    NavItem("Contacts", "contacts:contact_list", "contacts.view"),
    NavItem("Opportunities", "opportunities:list", "opportunities.view"),
    NavItem("Campaigns", "campaigns:list", "campaigns.view"),
    NavItem("Users", "users:list", "users.manage"),
)


def navigation_for(user) -> list[NavItem]:
    return [item for item in NAVIGATION if item.action is None or can(user, item.action)]
