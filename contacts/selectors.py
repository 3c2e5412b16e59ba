import operator
from dataclasses import dataclass
from datetime import date, timedelta
from functools import reduce

from django.contrib.postgres.search import TrigramSimilarity
from django.db import connection
from django.db.models import Case, F, Prefetch, Q, QuerySet, Value, When
from django.db.models.expressions import RawSQL
from django.db.models.functions import Concat, Greatest, Upper
from django.shortcuts import get_object_or_404

from contacts.models import Account, Appointment, Contact, Task
from crm import access, pagination
from opportunities.models import Opportunity
from tracking.models import AuditEntry, TimelineEntry


def account_list(user) -> QuerySet[Account]:
    return access.accounts_for(user).select_related("owner").order_by("name", "id")


# What a list of contacts shows (and sorts by): a million-row list reads no more.
CONTACT_LIST_FIELDS = (
    "first_name",
    "last_name",
    "title",
    "email",
    "lifecycle_stage",
    "created_at",
    "updated_at",
    "account__name",
    "owner__full_name",
    "owner__email",
)


def contact_list(user) -> QuerySet[Contact]:
    return (
        access.contacts_for(user)
        .select_related("account", "owner")
        .only(*CONTACT_LIST_FIELDS)
        .order_by("last_name", "first_name", "id")
    )


def account_suggestions(user, text: str, *, limit: int = 15) -> list[Account]:
    """Accounts whose name contains `text`, for a picker (the name's trigram index serves it)."""
    text = " ".join(text.split())[:100]
    if not text:
        return []
    return list(
        access.accounts_for(user).filter(name__icontains=text).order_by("name", "id")[:limit]
    )


def contact_suggestions(user, text: str, *, limit: int = 15) -> list[Contact]:
    """Contacts whose name, e-mail, phone or company contains `text`, for a picker; from two
    characters on, as the shell's search (one letter matches most of a million contacts)."""
    text = " ".join(text.split())[:100]
    if len(text) < 2:
        return []
    contacts = access.contacts_for(user).select_related("account")
    return list(contacts_matching(contacts, text).order_by("last_name", "first_name", "id")[:limit])


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


def contact_get(user, pk: int) -> Contact:
    """A contact the user may see, or 404 (the same answer for "not yours" and "not there")."""
    return get_object_or_404(access.contacts_for(user).select_related("account", "owner"), pk=pk)


def account_get(user, pk: int) -> Account:
    return get_object_or_404(access.accounts_for(user).select_related("owner", "parent"), pk=pk)


TIMELINE_ORDER = pagination.Ordering("newest", ("occurred_at", "id"), descending=True)
TIMELINE_PAGE_SIZE = 50


def timeline(
    *,
    contact: Contact | None = None,
    account: Account | None = None,
    kind: str | None = None,
    older: str | None = None,
) -> pagination.Page:
    """A page of a contact's or an account's timeline, newest first, optionally of one kind:
    the newest entries, or those after `older` (the cursor a page gives its older neighbour)."""
    entries = TimelineEntry.objects.select_related("actor")
    if contact:
        entries = entries.filter(contact=contact)
    else:
        # An account's timeline names the person of each entry.
        entries = entries.filter(account=account).select_related("contact")
    if kind:
        entries = entries.filter(kind=kind)
    return pagination.keyset_page(
        entries, TIMELINE_ORDER, cursor=older, size=TIMELINE_PAGE_SIZE, counted=False
    )


def timeline_kinds(*, contact: Contact | None = None, account: Account | None = None) -> list:
    """The kinds that occur on a timeline, for its filter: one probe of the (record, kind)
    index per kind there is, rather than a pass over every entry (a contact may have
    thousands)."""
    column = "contact_id" if contact else "account_id"
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT k.kind FROM unnest(%s::varchar[]) AS k (kind) WHERE EXISTS (SELECT 1 FROM "
            f"tracking_timelineentry t WHERE t.{column} = %s AND t.kind = k.kind)",
            [TimelineEntry.Kind.values, (contact or account).pk],
        )
        present = {kind for (kind,) in cursor.fetchall()}
    return [(value, label) for value, label in TimelineEntry.Kind.choices if value in present]


def open_tasks(*, contact: Contact | None = None, account: Account | None = None) -> list[Task]:
    tasks = Task.objects.filter(done_at__isnull=True).select_related("assignee")
    tasks = tasks.filter(contact=contact) if contact else tasks.filter(account=account)
    return list(tasks.order_by("due_on", "id"))


def audit_trail(user, instance, limit: int = 50) -> list[AuditEntry]:
    """The record's latest changes, newest first, each changed link (owner, account, stage ...)
    named by the record it points to where `user` may see that record, else left as its id."""
    entries = list(
        AuditEntry.objects.filter(model=instance._meta.label_lower, object_id=instance.pk)
        .select_related("actor")
        .order_by("-at", "-id")[:limit]
    )
    for field in instance._meta.concrete_fields:
        if not field.many_to_one:
            continue
        changes = [entry.changes[field.name] for entry in entries if field.name in entry.changes]
        ids = {value for change in changes for value in change if value is not None}
        if not ids:
            continue
        rows = _visible(user, field.related_model).in_bulk(ids)
        names = {pk: str(row) for pk, row in rows.items()}
        for change in changes:
            change[:] = [names.get(value, value) for value in change]
    return entries


def _visible(user, model) -> QuerySet:
    """What `user` may see of a model a record links to: customers' records through crm.access,
    the tenant's own lists (users, teams, stages) whole."""
    scoped = {
        Account: access.accounts_for,
        Contact: access.contacts_for,
        Opportunity: access.opportunities_for,
    }.get(model)
    return scoped(user) if scoped else model._default_manager.all()


def account_opportunities(user, account: Account):
    return list(
        access.opportunities_for(user)
        .filter(account=account)
        .select_related("stage", "owner")
        .order_by("expected_close", "id")[:100]
    )


def _at_company(text: str) -> Q:
    """Contacts or opportunities whose company's name contains `text`.

    The matching accounts' ids go in as one array, so that PostgreSQL looks the records up by
    account (with a subquery it would rather read them all), and they are looked up in a hash
    of it (`= ANY(array)` would compare each row with every id). Django's `__in` would prepare
    each of up to COUNT_CAP values in Python, which takes longer than the query."""
    cap = pagination.COUNT_CAP
    accounts = Account.objects.filter(name__icontains=text).values_list("pk", flat=True)
    ids = list(accounts[: cap + 1])
    if len(ids) > cap:
        return Q(account__in=accounts)
    return Q(account__in=RawSQL("SELECT unnest(%s::bigint[])", [ids]))


def _text_conditions(text: str) -> list[Q]:
    """Each way a contact matches `text`: one of its columns contains it (each column has a
    trigram index), its company's name does, or "first last" spans its two name columns."""
    columns = ("first_name", "last_name", "email", "phone")
    conditions = [Q(**{f"{column}__icontains": text}) for column in columns]
    conditions.append(_at_company(text))
    first, _, last = text.partition(" ")
    if last:
        conditions.append(Q(first_name__icontains=first, last_name__icontains=last.strip()))
    return conditions


def contact_search(contacts: QuerySet[Contact], text: str) -> tuple[QuerySet[Contact], int]:
    """Contacts of `contacts` whose name, e-mail, phone or company contains `text` (any case),
    and how many there are, capped as list totals are (COUNT_CAP + 1 stands for "more").

    The matches are gathered first, as a union of one id set per condition, each found through
    its trigram index and cut at the cap; one OR across the account join could only be answered
    by reading every contact. Up to the cap, the page sorts those ids. Beyond it, the matches
    are dense enough that walking the list's name index with the OR finds a page after a few
    thousand rows, and the gathering has already counted them."""
    return _gathered(contacts, _text_conditions(text.strip()[:100]))


def _gathered(rows: QuerySet, conditions: list[Q]) -> tuple[QuerySet, int]:
    """`rows` that meet any of `conditions`, and how many (COUNT_CAP + 1 for "more"): see
    contact_search."""
    cap = pagination.COUNT_CAP
    keys = rows.order_by().values_list("pk", flat=True)
    arms = [keys.filter(condition)[: cap + 1] for condition in conditions]
    ids = list(arms[0].union(*arms[1:])[: cap + 1])
    if len(ids) <= cap:
        return rows.filter(pk__in=ids), len(ids)
    return rows.filter(reduce(operator.or_, conditions)), cap + 1


def contacts_matching(contacts: QuerySet[Contact], text: str) -> QuerySet[Contact]:
    """Contacts whose name, e-mail, phone or company contains `text` (any case)."""
    return contact_search(contacts, text)[0]


@dataclass
class SearchResults:
    query: str
    contacts: list[Contact]
    accounts: list[Account]
    opportunities: list

    def __bool__(self):
        return bool(self.contacts or self.accounts or self.opportunities)


def search(user, query: str, *, per_kind: int = 6) -> SearchResults:
    """The shell's search: accounts, contacts and opportunities the user may see, by name,
    e-mail, phone or company. Substring matches first; when there are none, names that look
    alike (trigram similarity) so that a typo still finds the person."""
    query = " ".join(query.split())[:100]
    if len(query) < 2:
        return SearchResults(query, [], [], [])
    contacts = access.contacts_for(user).select_related("account")
    found = list(
        contacts_matching(contacts, query).order_by("last_name", "first_name", "id")[:per_kind]
    )
    if not found:
        # The % operator on the upper-cased names (trigrams ignore case) lets their trigram
        # indexes find the candidates; computing the likeness of every contact reads them all.
        upper = query.upper()
        found = list(
            contacts.annotate(
                upper_first=Upper("first_name"),
                upper_last=Upper("last_name"),
                likeness=Greatest(
                    TrigramSimilarity("last_name", query), TrigramSimilarity("first_name", query)
                ),
            )
            .filter(Q(upper_last__trigram_similar=upper) | Q(upper_first__trigram_similar=upper))
            .filter(likeness__gt=0.3)
            .order_by("-likeness", "id")[:per_kind]
        )
    accounts = list(
        access.accounts_for(user)
        .filter(Q(name__icontains=query) | Q(domain__icontains=query) | Q(phone__icontains=query))
        .order_by("name", "id")[:per_kind]
    )
    # Gathered like contacts: few matches are sorted, many are met early walking the newest.
    opportunities, _ = _gathered(
        access.opportunities_for(user).select_related("account", "stage"),
        [Q(name__icontains=query), _at_company(query)],
    )
    opportunities = list(opportunities.order_by("-updated_at", "id")[:per_kind])
    return SearchResults(query, found, accounts, opportunities)


@dataclass
class MyDay:
    overdue: list[Task]
    today: list[Task]
    upcoming: list[Task]
    recent: list[TimelineEntry]
    appointments: list[Appointment]


def my_day(user, *, today: date) -> MyDay:
    """A salesperson's home: today's appointments, their open tasks by due date, and what
    happened lately on the accounts they own."""
    tasks = list(
        Task.objects.filter(assignee=user, done_at__isnull=True)
        .filter(Q(due_on__isnull=True) | Q(due_on__lte=today + timedelta(days=7)))
        .select_related("contact", "account")
        .order_by(F("due_on").asc(nulls_last=True), "-priority", "id")[:100]
    )
    recent = list(
        TimelineEntry.objects.filter(account__owner=user)
        .select_related("contact", "account", "actor")
        .order_by("-occurred_at", "-id")[:20]
    )
    return MyDay(
        overdue=[t for t in tasks if t.due_on and t.due_on < today],
        today=[t for t in tasks if t.due_on == today],
        upcoming=[t for t in tasks if t.due_on is None or t.due_on > today],
        recent=recent,
        appointments=list(
            Appointment.objects.filter(Q(organizer=user) | Q(users=user), starts_at__date=today)
            .prefetch_related("contacts")
            .distinct()
            .order_by("starts_at", "id")
        ),
    )


def upcoming_appointments(user, *, now, limit: int = 50) -> list:
    return list(
        Appointment.objects.filter(Q(organizer=user) | Q(users=user), ends_at__gte=now)
        .prefetch_related("contacts", "users")
        .distinct()
        .order_by("starts_at", "id")[:limit]
    )


def contact_appointments(user, contact: Contact, *, now, limit: int = 10) -> list[Appointment]:
    """The contact's appointments, those not over yet first, soonest first, then the latest of
    those past; with who attends: the users, and the contacts among those `user` may see."""
    ahead = Q(ends_at__gte=now)
    return list(
        contact.appointments.prefetch_related(
            "users", Prefetch("contacts", queryset=access.contacts_for(user).order_by("id"))
        ).order_by(
            Case(When(ahead, then=Value(0)), default=Value(1)),
            Case(When(ahead, then=F("starts_at"))).asc(nulls_last=True),
            F("starts_at").desc(),
            "-id",
        )[:limit]
    )


@dataclass
class Duplicates:
    visible: list
    hidden_count: int

    def __bool__(self):
        return bool(self.visible or self.hidden_count)


NAME_LIKENESS = 0.6


def contact_duplicates(
    user, *, email: str, first_name: str, last_name: str, account: Account | None
) -> Duplicates:
    """Contacts that look like the one about to be created: the same e-mail, or a similar name
    at the same company. Those the user may not open are only counted, never shown."""
    full_name = f"{first_name} {last_name}".strip()
    same = Q(pk__in=[])
    if email:
        same |= Q(email__iexact=email) | Q(other_emails__contains=[email.lower()])
    candidates = Contact.objects.annotate(
        likeness=TrigramSimilarity(Concat("first_name", Value(" "), "last_name"), full_name)
    )
    similar_name = Q(likeness__gte=NAME_LIKENESS)
    if account is not None:
        similar_name &= Q(account=account)
    matches = candidates.filter(same | similar_name)
    visible_ids = set(
        access.contacts_for(user)
        .filter(pk__in=matches.values("pk"))
        .values_list("pk", flat=True)[:20]
    )
    total = matches.count()
    visible = list(
        matches.filter(pk__in=visible_ids)
        .select_related("account")
        .order_by("-likeness", "id")[:10]
    )
    return Duplicates(visible=visible, hidden_count=total - len(visible_ids))


def account_duplicates(user, *, name: str, domain: str) -> Duplicates:
    """Accounts with the same domain or a similar name."""
    same = Q(domain__iexact=domain) if domain else Q(pk__in=[])
    matches = Account.objects.annotate(likeness=TrigramSimilarity("name", name)).filter(
        same | Q(likeness__gte=NAME_LIKENESS)
    )
    visible_ids = set(
        access.accounts_for(user)
        .filter(pk__in=matches.values("pk"))
        .values_list("pk", flat=True)[:20]
    )
    total = matches.count()
    visible = list(matches.filter(pk__in=visible_ids).order_by("-likeness", "id")[:10])
    return Duplicates(visible=visible, hidden_count=total - len(visible_ids))
