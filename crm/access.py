"""Who may do what: the one place that answers it for views, API, exports and search.

Two questions, both answered here:
- May this role do this action at all? `can(user, action)` / `require(action)`; no gives 403.
- Which records may this user see? `accounts_for(user)`, `contacts_for(user)`,
  `opportunities_for(user)`. Every list, detail page, search and export starts from these, and a
  record outside them gets 404, the same answer as one that does not exist.

Record reach by role: admins and marketers see every account and contact (marketing works on the
whole base); managers and salespeople see the records owned by themselves and by the members of
their team; partners see only the accounts shared with their partner organisation, and those
accounts' contacts and opportunities.
"""

from dataclasses import dataclass
from functools import wraps

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.urls import reverse

from campaigns.models import CampaignMember
from contacts.models import Account, Activity, Appointment, Contact, Task
from crm.users.models import Role, User
from opportunities.models import Opportunity, StageTotal
from tracking.models import Engagement, TimelineEntry

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
    # Marketing e-mail templates and content blocks: write, preview, send a test.
    "templates.manage": frozenset({Role.ADMIN, Role.MANAGER, Role.MARKETING}),
    # Building, freezing and deleting segments (counts stay within the user's contact reach).
    "segments.manage": frozenset({Role.ADMIN, Role.MANAGER, Role.MARKETING}),
    # Lead-capture forms: build them, take their embed snippet, read their submissions.
    "forms.manage": frozenset({Role.ADMIN, Role.MANAGER, Role.MARKETING}),
    # Web personalization: the blocks the tenant's pages show by visitor, and their preview.
    "personalization.manage": frozenset({Role.ADMIN, Role.MANAGER, Role.MARKETING}),
    # Website tracking: the snippet, the sites allowed to send events, the identify secret.
    "tracking.manage": frozenset({Role.ADMIN}),
    # Letter templates for mail merge (writing a letter needs only to see the contact).
    "letters.manage": frozenset({Role.ADMIN, Role.MANAGER, Role.SALES, Role.MARKETING}),
    # Merging duplicate contacts or accounts (and undoing a merge), within the user's reach.
    "records.merge": frozenset({Role.ADMIN, Role.MANAGER, Role.SALES}),
    # CSV import of accounts and contacts (partners work through the API instead).
    "imports.run": frozenset({Role.ADMIN, Role.MANAGER, Role.SALES, Role.MARKETING}),
    # Sales set-up: the tenant's pipelines and stages, and its product catalogue.
    "pipelines.manage": frozenset({Role.ADMIN, Role.MANAGER}),
    "products.manage": frozenset({Role.ADMIN, Role.MANAGER}),
    # API keys of the tenant: make, list and revoke them (a key acts as the user it names).
    "api.manage": frozenset({Role.ADMIN}),
    # Outbound webhooks: endpoints, their delivery log and the dead-letter replays.
    "webhooks.manage": frozenset({Role.ADMIN}),
    # Engagement scoring: weights, decay, the sales-ready threshold, the ideal customer.
    "scoring.manage": frozenset({Role.ADMIN}),
    # The ready-to-talk list (see engagements_for for whose contacts each role sees on it).
    "ready.view": frozenset({Role.ADMIN, Role.MANAGER, Role.SALES}),
    # Reports: sales (forecast, pipeline movement, activity, life cycle) and marketing results.
    "reports.sales": frozenset({Role.ADMIN, Role.MANAGER}),
    "reports.marketing": frozenset({Role.ADMIN, Role.MANAGER, Role.MARKETING}),
    # Quotas per salesperson and period (the forecast's attainment).
    "quotas.manage": frozenset({Role.ADMIN, Role.MANAGER}),
}


def can(user, action: str) -> bool:
    return bool(user.is_authenticated and user.is_active and user.role in RULES[action])


class Allowed:
    """`can()` for templates: `{% if may.records.merge %}` asks about "records.merge"."""

    def __init__(self, user, prefix: str = ""):
        self.user, self.prefix = user, prefix

    def __getitem__(self, part: str):
        action = f"{self.prefix}.{part}" if self.prefix else part
        if action in RULES:
            return can(self.user, action)
        if any(rule.startswith(action + ".") for rule in RULES):
            return Allowed(self.user, action)
        raise KeyError(action)


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
    # Shown only while this setting is set (a development tool such as the mail catcher).
    setting: str | None = None

    @property
    def url(self) -> str:
        return reverse(self.url_name)


NAVIGATION = (
    NavItem("Home", "home", None),
    NavItem("Accounts", "contacts:account_list", "accounts.view"),
    NavItem("Contacts", "contacts:contact_list", "contacts.view"),
    NavItem("Opportunities", "opportunities:list", "opportunities.view"),
    NavItem("Pipeline", "opportunities:board", "opportunities.view"),
    NavItem("Calendar", "contacts:calendar", None),
    NavItem("Ready to talk", "scoring:ready_list", "ready.view"),
    NavItem("Campaigns", "campaigns:list", "campaigns.view"),
    NavItem("Reports", "reports:index", "reports.marketing"),
    NavItem("Users", "users:list", "users.manage"),
    NavItem("API", "integrations:api_key_list", "api.manage"),
    NavItem("Webhooks", "integrations:webhook_list", "webhooks.manage"),
    NavItem("Scoring", "scoring:settings", "scoring.manage"),
    NavItem("Tracking", "tracking:setup", "tracking.manage"),
    NavItem("Caught mail", "caught_mail_list", "campaigns.view", setting="CRM_MAILCATCHER_DIR"),
)


def navigation_for(user) -> list[NavItem]:
    return [
        item
        for item in NAVIGATION
        if (item.action is None or can(user, item.action))
        and (item.setting is None or getattr(settings, item.setting))
    ]


def _owners_q(user, owner_field: str) -> Q:
    """Records owned by the user or by a member of the user's team."""
    if user.team_id is None:
        return Q(**{owner_field: user.pk})
    return Q(**{owner_field: user.pk}) | Q(**{f"{owner_field}__team_id": user.team_id})


def _reach(user, *, owner_field: str, shared_field: str) -> Q | None:
    """The filter for a user's records; None means no filter (everything)."""
    if user.role in (Role.ADMIN, Role.MARKETING):
        return None
    if user.role in (Role.MANAGER, Role.SALES):
        return _owners_q(user, owner_field)
    if user.role == Role.PARTNER and user.partner_organization_id:
        return Q(**{shared_field: user.partner_organization_id})
    return Q(pk__in=[])


def _scoped(queryset: QuerySet, q: Q | None) -> QuerySet:
    # Each filter matches a record through at most one row (one owner, one partner organisation),
    # so no DISTINCT is needed, and lists keep their index-ordered plans.
    return queryset if q is None else queryset.filter(q)


def people_for(user) -> QuerySet[User]:
    """The people whose records `user` reaches by ownership, as `opportunities_for` does:
    everyone for admins, the user and their team for managers and salespeople, nobody for the
    other roles. Reports list these people, and managers set their quotas."""
    if user.role == Role.ADMIN:
        return User.objects.all()
    if user.role in (Role.MANAGER, Role.SALES):
        if user.team_id is None:
            return User.objects.filter(pk=user.pk)
        return User.objects.filter(Q(pk=user.pk) | Q(team_id=user.team_id))
    return User.objects.none()


def colleagues_for(user) -> QuerySet[User]:
    """Who `user` may invite to an appointment (and so name in its calendar entry): the active
    staff, for staff; for a partner, the active people of the partner's own organisation."""
    people = User.objects.filter(is_active=True)
    if user.role == Role.PARTNER:
        return people.filter(
            role=Role.PARTNER, partner_organization_id=user.partner_organization_id or -1
        )
    return people.exclude(role=Role.PARTNER)


def owned_for(user, queryset: QuerySet, *, owner_field: str = "owner") -> QuerySet:
    """Rows of `queryset` (anything with an owner: quotas, forecast snapshots) whose owner the
    user reaches as `opportunities_for` does: all for admins, their own and their team's for
    managers and salespeople, none for the other roles."""
    if user.role == Role.ADMIN:
        return queryset
    if user.role in (Role.MANAGER, Role.SALES):
        return queryset.filter(_owners_q(user, owner_field))
    return queryset.none()


def accounts_for(user) -> QuerySet[Account]:
    q = _reach(user, owner_field="owner", shared_field="shared_with")
    return _scoped(Account.objects.all(), q)


def contacts_for(user) -> QuerySet[Contact]:
    q = _reach(user, owner_field="owner", shared_field="account__shared_with")
    return _scoped(Contact.objects.all(), q)


def opportunities_for(user) -> QuerySet[Opportunity]:
    if user.role == Role.MARKETING:
        return Opportunity.objects.none()
    q = _reach(user, owner_field="owner", shared_field="account__shared_with")
    return _scoped(Opportunity.objects.all(), q)


def stage_totals_for(user) -> QuerySet[StageTotal] | None:
    """The per-owner stage totals that add up to exactly the opportunities `opportunities_for`
    gives the user; None for partners, who see deals by sharing, which the totals do not keep."""
    if user.role == Role.PARTNER:
        return None
    return owned_for(user, StageTotal.objects.all())


def _linked(user) -> Q | None:
    """Activities or tasks: those filed against a contact, account or opportunity the user may
    see (None: all of them)."""
    if user.role == Role.ADMIN:
        return None
    if user.role == Role.MARKETING:
        # Every customer but no deals (opportunities_for): not what is filed on a deal alone.
        return Q(contact__isnull=False) | Q(account__isnull=False)
    return (
        Q(contact__in=contacts_for(user).values("pk"))
        | Q(account__in=accounts_for(user).values("pk"))
        | Q(opportunity__in=opportunities_for(user).values("pk"))
    )


def activities_for(user) -> QuerySet[Activity]:
    return _scoped(Activity.objects.all(), _linked(user))


def tasks_for(user) -> QuerySet[Task]:
    """Tasks on records the user may see, and those given to the user to do."""
    linked = _linked(user)
    return _scoped(Task.objects.all(), None if linked is None else linked | Q(assignee=user))


def appointments_for(user) -> QuerySet[Appointment]:
    """Appointments the user organizes or attends, or with a contact the user may see."""
    if _reach(user, owner_field="owner", shared_field="shared_with") is None:
        return Appointment.objects.all()
    mine = Appointment.objects.filter(Q(organizer=user) | Q(users=user)).values("pk")
    with_contacts = Appointment.objects.filter(contacts__in=contacts_for(user).values("pk")).values(
        "pk"
    )
    return Appointment.objects.filter(Q(pk__in=mine) | Q(pk__in=with_contacts))


def timeline_for(user) -> QuerySet[TimelineEntry]:
    """Timeline entries of the contacts and accounts the user may see: what their 360-degree
    and account pages show."""
    entries = TimelineEntry.objects.all()
    if _reach(user, owner_field="owner", shared_field="shared_with") is None:
        return entries
    return entries.filter(
        Q(contact__in=contacts_for(user).values("pk"))
        | Q(account__in=accounts_for(user).values("pk"))
    )


def campaign_members_for(user) -> QuerySet[CampaignMember]:
    """Campaign members whose contact the user may see (the campaigns themselves are open to
    every role that may view campaigns)."""
    members = CampaignMember.objects.all()
    if _reach(user, owner_field="owner", shared_field="shared_with") is None:
        return members
    return members.filter(contact__in=contacts_for(user).values("pk"))


def engagements_for(user) -> QuerySet[Engagement]:
    """Whose engagement the ready-to-talk list shows: every contact's for admins, the team's
    for managers, and a salesperson's own contacts only (it is the list of whom to call next,
    not of what the team may look at)."""
    if user.role == Role.ADMIN:
        return Engagement.objects.all()
    if user.role == Role.MANAGER:
        return Engagement.objects.filter(_owners_q(user, "contact__owner"))
    if user.role == Role.SALES:
        return Engagement.objects.filter(contact__owner=user)
    return Engagement.objects.none()
