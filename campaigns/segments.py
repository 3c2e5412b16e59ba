"""Segments: rules on contacts, compiled into one SQL query.

A segment's rules are JSON: `{"op": "and" | "or", "rules": [condition | group, ...]}`, where a
condition is `{"field": ..., "operator": ..., "value": ...}` and a group is again
`{"op": ..., "rules": [conditions]}` (one level of groups inside the top one, which is what the
browser builder offers: "stage is Evaluation AND (tag vip OR opened campaign X)").

`rules_clean()` checks rules strictly against the FIELDS registry and returns them normalized
(numbers as numbers, lists as lists); anything unknown raises a ValidationError whose messages
name the condition. `rules_q()` turns clean rules into one Django Q on Contact: fields of the
contact or of its account become WHERE clauses on one join, array fields use `@>` (the GIN
indexes answer it), memberships become EXISTS subqueries. User values only ever reach SQL as
query parameters.

Adding a condition type is adding one entry to FIELDS: a `Field` with its operators, the kind of
value each operator takes, and `build(operator, value) -> Q`. The behaviour conditions of
tracking plug in that way, each as an EXISTS over its own table, without touching the compiler:
the engagement score above or below N now (a range on Engagement.rank, see tracking.scoring),
"viewed a page matching /pricing in the last 30 days" (the contact's page-view events) and
"filled form Y" (the lead form's processed submissions).
"""

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Exists, FloatField, OuterRef, Q, QuerySet
from django.db.models.expressions import RawSQL
from django.utils import timezone

from campaigns.models import Campaign, CampaignMember, Segment, SegmentMember
from contacts.models import Contact, CustomerType, LifecycleStage
from crm import access
from crm.pagination import COUNT_CAP
from leads.models import FormSubmission, LeadForm
from tracking.models import Engagement, Event, TrackingSettings
from tracking.services import audit_record, field_values

MAX_CONDITIONS = 50
MAX_TEXT = 100
MAX_DAYS = 36_500
MAX_SCORE = 1_000_000_000
# "Viewed a page matching ... in the last N days": the windows the builder offers.
VIEW_WINDOWS = (7, 30, 90, 365)

# What an operator's value is: one choice, several choices, a piece of text, several pieces of
# text, a number of days, a campaign id, a number, or nothing.
ONE, MANY, TEXT, TEXTS, DAYS, CAMPAIGN, NUMBER, NOTHING = (
    "one",
    "many",
    "text",
    "texts",
    "days",
    "campaign",
    "number",
    "nothing",
)

OPERATOR_LABELS = {
    "eq": "is",
    "neq": "is not",
    "in": "is one of",
    "contains": "contains",
    "not_contains": "does not contain",
    "empty": "is empty",
    "not_empty": "is not empty",
    "last_days": "in the last N days",
    "member": "is in campaign",
    "opened": "opened (or more) campaign",
    "clicked": "clicked (or more) campaign",
    "responded": "responded (or more) to campaign",
    "converted": "converted from campaign",
    "above": "is above",
    "below": "is below",
    **{f"viewed_{days}": f"{days} days, matching" for days in VIEW_WINDOWS},
    "filled": "is",
}

# A member who clicked also opened: "opened" matches every status from opened on.
STATUS_ORDER = [value for value, _ in CampaignMember.Status.choices]


@dataclass(frozen=True)
class Field:
    """A condition type: what the builder shows, which operators it takes with which value, and
    how it becomes a Q on Contact."""

    label: str
    operators: dict[str, str]
    build: Callable[[str, object], Q]
    choices: tuple[tuple[str, str], ...] = ()
    # Choices that come from the tenant's data (users, campaigns), filled in by the view.
    dynamic_choices: str = ""
    extra: dict = field(default_factory=dict)


def _scalar(path: str, *, nullable: bool) -> Callable[[str, object], Q]:
    """Equals / not equals / one of / empty on a text column (of the contact or its account)."""

    def build(operator: str, value) -> Q:
        empty = Q(**{path: ""})
        if nullable:
            empty |= Q(**{f"{path}__isnull": True})
        return {
            "eq": lambda: Q(**{path: value}),
            "neq": lambda: ~Q(**{path: value}),
            "in": lambda: Q(**{f"{path}__in": value}),
            "empty": lambda: empty,
            "not_empty": lambda: ~empty,
        }[operator]()

    return build


def _array(path: str, *, nullable: bool) -> Callable[[str, object], Q]:
    def build(operator: str, value) -> Q:
        empty = Q(**{path: []})
        if nullable:
            empty |= Q(**{f"{path}__isnull": True})
        return {
            "contains": lambda: Q(**{f"{path}__contains": [value]}),
            "not_contains": lambda: ~Q(**{f"{path}__contains": [value]}),
            "empty": lambda: empty,
            "not_empty": lambda: ~empty,
        }[operator]()

    return build


def _owner(operator: str, value) -> Q:
    return {
        "eq": lambda: Q(owner_id=value),
        "neq": lambda: ~Q(owner_id=value) | Q(owner__isnull=True),
        "in": lambda: Q(owner_id__in=value),
        "empty": lambda: Q(owner__isnull=True),
        "not_empty": lambda: Q(owner__isnull=False),
    }[operator]()


def _since(path: str) -> Callable[[str, object], Q]:
    def build(operator: str, value) -> Q:
        return Q(**{f"{path}__gte": timezone.now() - timedelta(days=value)})

    return build


def _campaign(operator: str, value) -> Q:
    first = 0 if operator == "member" else STATUS_ORDER.index(operator)
    statuses = STATUS_ORDER[first:]
    return Q(
        Exists(
            CampaignMember.objects.filter(
                contact=OuterRef("pk"), campaign_id=value, status__in=statuses
            )
        )
    )


def _engagement_score(operator: str, value) -> Q:
    """Score above / below N now: rank > ln N + now * ln 2 / half-life (tracking.scoring), the
    half-life read from the tenant's settings inside the same statement, so the condition stays
    one query and a range on the rank index. No Engagement row is a score of 0."""
    floor = RawSQL(
        "%s + EXTRACT(EPOCH FROM now()) * %s / (86400 * COALESCE("
        f"(SELECT half_life_days FROM {TrackingSettings._meta.db_table} ORDER BY id LIMIT 1), "
        "%s))",
        [math.log(value), math.log(2), TrackingSettings._meta.get_field("half_life_days").default],
        output_field=FloatField(),
    )
    if operator == "above":
        return Q(Exists(Engagement.objects.filter(contact=OuterRef("pk"), rank__gt=floor)))
    return ~Q(Exists(Engagement.objects.filter(contact=OuterRef("pk"), rank__gte=floor)))


def _page_viewed(operator: str, value) -> Q:
    days = int(operator.removeprefix("viewed_"))
    return Q(
        Exists(
            Event.objects.filter(
                contact=OuterRef("pk"),
                kind=Event.Kind.PAGE_VIEW,
                occurred_at__gte=timezone.now() - timedelta(days=days),
                url__icontains=value,
            )
        )
    )


def _form_filled(operator: str, value) -> Q:
    # A submission has its contact once processed (after the opt-in, under double opt-in).
    return Q(Exists(FormSubmission.objects.filter(contact=OuterRef("pk"), form_id=value)))


CHOICE_OPS = {"eq": ONE, "neq": ONE, "in": MANY, "empty": NOTHING, "not_empty": NOTHING}
TEXT_OPS = {"eq": TEXT, "neq": TEXT, "in": TEXTS, "empty": NOTHING, "not_empty": NOTHING}
ARRAY_OPS = {"contains": TEXT, "not_contains": TEXT, "empty": NOTHING, "not_empty": NOTHING}

FIELDS: dict[str, Field] = {
    "lifecycle_stage": Field(
        "Life-cycle stage",
        CHOICE_OPS,
        _scalar("lifecycle_stage", nullable=False),
        LifecycleStage.choices,
    ),
    "customer_type": Field(
        "Customer type",
        CHOICE_OPS,
        _scalar("customer_type", nullable=False),
        CustomerType.choices,
    ),
    "territory": Field("Territory", TEXT_OPS, _scalar("territory", nullable=False)),
    "source": Field("Source", TEXT_OPS, _scalar("source", nullable=False)),
    "owner": Field("Owner", CHOICE_OPS, _owner, dynamic_choices="owners"),
    "interests": Field("Interests", ARRAY_OPS, _array("interests", nullable=False)),
    "created_at": Field("Created", {"last_days": DAYS}, _since("created_at")),
    "updated_at": Field("Updated", {"last_days": DAYS}, _since("updated_at")),
    "account_industry": Field(
        "Account industry", TEXT_OPS, _scalar("account__industry", nullable=True)
    ),
    "account_territory": Field(
        "Account territory", TEXT_OPS, _scalar("account__territory", nullable=True)
    ),
    "account_customer_type": Field(
        "Account customer type",
        CHOICE_OPS,
        _scalar("account__customer_type", nullable=True),
        CustomerType.choices,
    ),
    "account_tags": Field("Account tags", ARRAY_OPS, _array("account__tags", nullable=True)),
    "campaign": Field(
        "Campaign",
        {op: CAMPAIGN for op in ("member", "opened", "clicked", "responded", "converted")},
        _campaign,
        dynamic_choices="campaigns",
    ),
    "engagement_score": Field(
        "Engagement score now", {"above": NUMBER, "below": NUMBER}, _engagement_score
    ),
    "page_viewed": Field(
        "Page viewed in the last",
        {f"viewed_{days}": TEXT for days in VIEW_WINDOWS},
        _page_viewed,
    ),
    "form_filled": Field("Filled form", {"filled": ONE}, _form_filled, dynamic_choices="forms"),
}


# --- validation -------------------------------------------------------------------------------


def _positive_int(value, *, limit: int | None = None) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, int) and value > 0 and (limit is None or value <= limit):
        return value
    return None


def _text(value) -> str | None:
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value if 0 < len(value) <= MAX_TEXT else None


def _clean_value(spec: Field, kind: str, value, where: str):
    """The normalized value, or raises ValidationError naming the condition."""
    allowed = {str(v) for v, _ in spec.choices}
    if kind == NOTHING:
        return None
    if kind == ONE and spec.dynamic_choices == "forms":
        form = _positive_int(value)
        if form is None:
            raise ValidationError(f"{where}: choose a form.")
        return form
    if kind == NUMBER:
        try:
            number = float(str(value).strip()) if not isinstance(value, bool) else None
        except ValueError:
            number = None
        if number is None or not 0 < number <= MAX_SCORE:
            raise ValidationError(f"{where}: enter a number above 0.")
        return number
    if kind in (ONE, MANY) and spec.dynamic_choices == "owners":
        values = value if isinstance(value, list) else [value]
        ids = [_positive_int(v) for v in values]
        if not ids or None in ids or (kind == ONE and len(ids) != 1):
            raise ValidationError(f"{where}: choose {'a user' if kind == ONE else 'users'}.")
        return ids[0] if kind == ONE else sorted(set(ids))
    if kind == ONE:
        if not isinstance(value, str) or value not in allowed:
            raise ValidationError(f"{where}: choose one of the listed values.")
        return value
    if kind == MANY:
        if (
            not isinstance(value, list)
            or not value
            or any(not isinstance(v, str) or v not in allowed for v in value)
        ):
            raise ValidationError(f"{where}: choose one or more of the listed values.")
        return sorted(set(value))
    if kind == TEXT:
        text = _text(value)
        if text is None:
            raise ValidationError(f"{where}: enter a value of at most {MAX_TEXT} characters.")
        return text
    if kind == TEXTS:
        # "a, b" typed in one box, or already a list (whose items may hold commas too).
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise ValidationError(f"{where}: enter values separated by commas.")
        texts = [_text(p) for item in items for p in item.split(",") if p.strip()]
        if not texts or None in texts:
            raise ValidationError(
                f"{where}: enter values separated by commas, each at most {MAX_TEXT} characters."
            )
        return sorted(set(texts))
    if kind == DAYS:
        days = _positive_int(value, limit=MAX_DAYS)
        if days is None:
            raise ValidationError(f"{where}: enter a whole number of days from 1 to {MAX_DAYS}.")
        return days
    campaign = _positive_int(value)
    if campaign is None:
        raise ValidationError(f"{where}: choose a campaign.")
    return campaign


def _clean_condition(rule, where: str) -> dict:
    if not isinstance(rule, dict) or set(rule) - {"field", "operator", "value"}:
        raise ValidationError(f"{where}: a condition has a field, an operator and a value.")
    spec = FIELDS.get(rule.get("field"))
    if spec is None:
        raise ValidationError(f"{where}: unknown field {str(rule.get('field'))[:40]!r}.")
    operator = rule.get("operator")
    if operator not in spec.operators:
        raise ValidationError(
            f"{where}: {spec.label} has no operator {str(operator)[:40]!r}; use one of "
            + ", ".join(OPERATOR_LABELS[op] for op in spec.operators)
            + "."
        )
    value = _clean_value(spec, spec.operators[operator], rule.get("value"), where)
    return {"field": rule["field"], "operator": operator, "value": value}


def _clean_group(group, where: str, *, depth: int, errors: list, count: list) -> dict:
    if not isinstance(group, dict) or set(group) - {"op", "rules"}:
        errors.append(f"{where}: a group has an operator (and / or) and rules.")
        return {}
    if group.get("op") not in ("and", "or"):
        errors.append(f"{where}: a group joins its rules with 'and' or 'or'.")
    rules = group.get("rules")
    if not isinstance(rules, list):
        errors.append(f"{where}: a group's rules are a list.")
        return {}
    cleaned = []
    for index, rule in enumerate(rules, start=1):
        place = f"{where}, rule {index}" if depth else f"Rule {index}"
        if isinstance(rule, dict) and "op" in rule:
            if depth >= 1:
                errors.append(f"{place}: groups cannot hold further groups.")
                continue
            inner = _clean_group(rule, place, depth=depth + 1, errors=errors, count=count)
            if inner and not inner["rules"]:
                errors.append(f"{place}: the group is empty.")
            elif inner:
                cleaned.append(inner)
            continue
        count[0] += 1
        try:
            cleaned.append(_clean_condition(rule, place))
        except ValidationError as error:
            errors.extend(error.messages)
    return {"op": group.get("op"), "rules": cleaned}


def rules_clean(rules) -> dict:
    """Rules checked against FIELDS and normalized; raises ValidationError with one message per
    problem. Empty rules (no conditions) are allowed and match every contact."""
    errors: list[str] = []
    count = [0]
    cleaned = _clean_group(rules, "The rules", depth=0, errors=errors, count=count)
    if count[0] > MAX_CONDITIONS:
        errors.append(f"A segment has at most {MAX_CONDITIONS} conditions.")
    if errors:
        raise ValidationError(errors)
    return cleaned


# --- compiling and reading --------------------------------------------------------------------


def rules_q(rules: dict) -> Q:
    """One Q on Contact for clean rules (see rules_clean); an empty group matches everyone."""
    parts = []
    for rule in rules.get("rules", []):
        if "op" in rule:
            parts.append(rules_q(rule))
        else:
            parts.append(FIELDS[rule["field"]].build(rule["operator"], rule["value"]))
    combined = Q()
    for part in parts:
        combined = (combined & part) if rules["op"] == "and" else (combined | part)
    return combined


def rules_contacts(rules: dict, *, user=None) -> QuerySet[Contact]:
    """The contacts that match clean rules, within the user's reach (everyone without a user)."""
    base = access.contacts_for(user) if user is not None else Contact.objects.all()
    return base.filter(rules_q(rules))


def segment_contacts(segment: Segment, *, user=None) -> QuerySet[Contact]:
    """A segment's contacts: its rules worked out now, or the frozen list of a static one."""
    if segment.kind == Segment.Kind.STATIC:
        base = access.contacts_for(user) if user is not None else Contact.objects.all()
        return base.filter(
            pk__in=SegmentMember.objects.filter(segment=segment).values("contact_id")
        )
    return rules_contacts(segment.rules, user=user)


@dataclass(frozen=True)
class Count:
    total: int
    capped: bool

    @property
    def label(self) -> str:
        return f"{COUNT_CAP:,}+" if self.capped else f"{self.total:,}"


def _count(contacts: QuerySet[Contact], cap: int) -> Count:
    total = contacts.order_by().values("pk")[: cap + 1].count()
    return Count(total=min(total, cap), capped=total > cap)


def _sample(contacts: QuerySet[Contact], n: int) -> list[Contact]:
    return list(contacts.select_related("account").order_by("last_name", "first_name", "id")[:n])


def segment_count(rules: dict, *, user=None, cap: int = COUNT_CAP) -> Count:
    """How many contacts clean rules match, counted up to `cap` (one query)."""
    return _count(rules_contacts(rules, user=user), cap)


def segment_sample(rules: dict, *, user=None, n: int = 10) -> list[Contact]:
    """A few matching contacts to show while editing (one query)."""
    return _sample(rules_contacts(rules, user=user), n)


def segment_summary(segment: Segment, *, user, n: int = 20) -> tuple[Count, list[Contact]]:
    """A saved segment's capped count and first contacts, as the user may see them."""
    contacts = segment_contacts(segment, user=user)
    return _count(contacts, COUNT_CAP), _sample(contacts, n)


def rules_describe(rules: dict) -> list[str]:
    """The rules in words, one line per top-level rule, for a segment's page."""
    campaign_ids = [
        r["value"]
        for rule in rules.get("rules", [])
        for r in (rule.get("rules", []) if "op" in rule else [rule])
        if r.get("field") == "campaign"
    ]
    campaigns = dict(Campaign.objects.filter(pk__in=campaign_ids).values_list("pk", "name"))
    form_ids = [
        r["value"]
        for rule in rules.get("rules", [])
        for r in (rule.get("rules", []) if "op" in rule else [rule])
        if r.get("field") == "form_filled"
    ]
    forms = dict(LeadForm.objects.filter(pk__in=form_ids).values_list("pk", "name"))

    def words(rule) -> str:
        if "op" in rule:
            return "(" + f" {rule['op']} ".join(words(r) for r in rule["rules"]) + ")"
        spec = FIELDS.get(rule["field"])
        if spec is None:
            return "?"
        value = rule["value"]
        labels = dict(spec.choices)
        if rule["field"] == "campaign":
            value = campaigns.get(value, "a deleted campaign")
        elif rule["field"] == "form_filled":
            value = forms.get(value, "a deleted form")
        elif isinstance(value, float):
            value = f"{value:g}"
        elif isinstance(value, list):
            value = ", ".join(str(labels.get(v, v)) for v in value)
        elif rule["operator"] == "last_days":
            value = f"{value} days"
        elif value is not None:
            value = labels.get(value, value)
        text = f"{spec.label} {OPERATOR_LABELS[rule['operator']]}"
        return text if value is None else f"{text} {value}"

    return [words(rule) for rule in rules.get("rules", [])]


def segment_list() -> QuerySet[Segment]:
    return Segment.objects.select_related("created_by").order_by("name")


# --- writes -----------------------------------------------------------------------------------


def _validated(segment: Segment) -> None:
    segment.rules = rules_clean(segment.rules)
    segment.full_clean()


@transaction.atomic
def segment_create(*, actor, name: str, description: str = "", rules: dict) -> Segment:
    segment = Segment(name=name, description=description, rules=rules, created_by=actor)
    _validated(segment)
    segment.save()
    audit_record(instance=segment, action="created", actor=actor)
    return segment


@transaction.atomic
def segment_update(
    *, actor, segment: Segment, name: str, description: str = "", rules: dict
) -> Segment:
    """Rename or re-describe a segment; change the rules of a dynamic one (a frozen list keeps
    the rules it was frozen from)."""
    stored = Segment.objects.select_for_update().get(pk=segment.pk)
    if stored.kind == Segment.Kind.STATIC and rules_clean(rules) != stored.rules:
        raise ValidationError({"rules": "A frozen list's rules cannot change."})
    before = field_values(stored)
    segment.name, segment.description, segment.rules = name, description, rules
    _validated(segment)
    segment.save()
    audit_record(instance=segment, action="updated", actor=actor, before=before)
    return segment


@transaction.atomic
def segment_delete(*, actor, segment: Segment) -> None:
    audit_record(instance=segment, action="deleted", actor=actor)
    segment.delete()


@transaction.atomic
def segment_freeze(*, actor, segment: Segment) -> int:
    """Turn a dynamic segment into a static list of the contacts it matches now, within the
    actor's reach: one INSERT ... SELECT of the compiled query, however many there are. Locks
    the segment so two freezes cannot both write. Returns how many contacts the list holds."""
    stored = Segment.objects.select_for_update().get(pk=segment.pk)
    if stored.kind == Segment.Kind.STATIC:
        raise ValidationError("This segment is already a frozen list.")
    matched = rules_contacts(rules_clean(stored.rules), user=actor)
    chosen, params = matched.order_by().values("id").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {SegmentMember._meta.db_table} (segment_id, contact_id) "
            f"SELECT %s, chosen.id FROM ({chosen}) AS chosen "
            "ON CONFLICT (segment_id, contact_id) DO NOTHING",
            [stored.pk, *params],
        )
        added = cursor.rowcount
    before = field_values(stored)
    segment.kind, segment.frozen_at = Segment.Kind.STATIC, timezone.now()
    Segment.objects.filter(pk=segment.pk).update(
        kind=segment.kind, frozen_at=segment.frozen_at, updated_at=segment.frozen_at
    )
    audit_record(instance=segment, action="updated", actor=actor, before=before)
    return added
