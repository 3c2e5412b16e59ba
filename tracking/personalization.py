"""Web personalization: which content block a visitor of the tenant's site gets in each slot.

The tenant's pages mark places with `data-crm-slot="<slot>"`; static/tracking/personalize.js asks
GET /t/personalize which HTML goes into each, and this module decides.

A block's rules (tracking.models.PersonalizationBlock.rules), each optional, all must hold:
- `segment`: the contact is in that segment (campaigns.segments, one query per segment asked);
- `interests`: the contact has at least one of these interests;
- `stages`: the contact's life-cycle stage is one of these;
- `score_min` / `score_max`: the engagement score now, decay included, lies within the band
  (both ends included).
A block without rules is the default of its slot. For a visitor whose browser belongs to a contact,
the blocks with rules are tried by priority (lowest number first, then the oldest) and the first
that matches wins; when none does, and for every anonymous visitor, the slot's default is served
(the first default by priority). A slot without a default gets nothing, and the page keeps its own
content there.

The endpoint runs on every page view of the tenant's site, so the tenant's blocks are cached (the
cache keys carry the tenant's schema, see crm.tenants.cache) and each write forgets them. Rules are
checked cheapest first: a segment's membership query runs only when the block's other rules hold.
"""

import math
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.core.cache import cache
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from campaigns.models import Segment
from campaigns.segments import segment_contacts
from contacts.models import Contact, LifecycleStage
from tracking.models import Engagement, PersonalizationBlock, TrackingSettings, Visitor
from tracking.scoring import score_now
from tracking.services import audit_record, field_values

RULE_KEYS = ("segment", "interests", "stages", "score_min", "score_max")
MAX_INTERESTS = 20
MAX_INTEREST_LENGTH = 50  # as Contact.interests
MAX_CONTENT = 50_000
# What one request to the public endpoint may ask for.
MAX_SLOTS = 20
SLOT = re.compile(r"^[-a-zA-Z0-9_]{1,50}\Z")

CACHE_KEY = "personalization:blocks"
CACHE_SECONDS = 600


# --- rules ------------------------------------------------------------------------------------


def _number(value) -> float | None:
    if isinstance(value, Decimal):
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError
    if value < 0:
        raise ValueError
    return float(value)


def block_rules_clean(rules) -> dict:
    """The rules checked and normalized (empty values dropped, lists sorted and deduplicated);
    raises ValidationError keyed by rule name (a form's fields carry the same names)."""
    if not isinstance(rules, dict):
        raise ValidationError("The rules are an object of segment, interests, stages and score.")
    errors: dict[str, str] = {}
    clean: dict = {}
    unknown = sorted(str(key)[:40] for key in set(rules) - set(RULE_KEYS))
    if unknown:
        errors[NON_FIELD_ERRORS] = "Unknown rules: " + ", ".join(unknown) + "."

    segment = rules.get("segment")
    if segment not in (None, ""):
        if isinstance(segment, str) and segment.isdigit():
            segment = int(segment)
        if (
            isinstance(segment, bool)
            or not isinstance(segment, int)
            or not Segment.objects.filter(pk=segment).exists()
        ):
            errors["segment"] = "Choose one of your segments."
        else:
            clean["segment"] = segment

    interests = rules.get("interests") or []
    if isinstance(interests, str):
        interests = interests.split(",")
    if not isinstance(interests, list) or not all(isinstance(i, str) for i in interests):
        errors["interests"] = "Enter interests separated by commas."
    else:
        interests = sorted({i.strip() for i in interests if i.strip()})
        if len(interests) > MAX_INTERESTS or any(len(i) > MAX_INTEREST_LENGTH for i in interests):
            errors["interests"] = (
                f"Enter at most {MAX_INTERESTS} interests, "
                f"each at most {MAX_INTEREST_LENGTH} characters."
            )
        elif interests:
            clean["interests"] = interests

    stages = rules.get("stages") or []
    if not isinstance(stages, list) or any(s not in LifecycleStage.values for s in stages):
        errors["stages"] = "Choose life-cycle stages from the list."
    elif stages:
        clean["stages"] = [s for s in LifecycleStage.values if s in stages]

    for key in ("score_min", "score_max"):
        if rules.get(key) in (None, ""):
            continue
        try:
            clean[key] = _number(rules[key])
        except ValueError:
            errors[key] = "Enter a score of 0 or more."
    if clean.get("score_min", 0) > clean.get("score_max", math.inf):
        errors["score_max"] = "The highest score must not be below the lowest."
    if errors:
        raise ValidationError(errors)
    return clean


def _score(value: float) -> str:
    return f"{value:g}"


def _stage_labels(stages) -> str:
    labels = dict(LifecycleStage.choices)
    return ", ".join(labels.get(s, s) for s in stages)


def block_rules_describe(rules: dict, segment_names: dict[int, str]) -> list[str]:
    """The rules in words, one line each; empty for a default block."""
    lines = []
    if "segment" in rules:
        lines.append(f"In segment {segment_names.get(rules['segment'], '(deleted segment)')}")
    if "interests" in rules:
        lines.append("Interested in " + " or ".join(rules["interests"]))
    if "stages" in rules:
        lines.append("Life-cycle stage " + _stage_labels(rules["stages"]))
    low, high = rules.get("score_min"), rules.get("score_max")
    if low is not None and high is not None:
        lines.append(f"Score from {_score(low)} to {_score(high)}")
    elif low is not None:
        lines.append(f"Score at least {_score(low)}")
    elif high is not None:
        lines.append(f"Score at most {_score(high)}")
    return lines


# --- what the rules look at -------------------------------------------------------------------


@dataclass
class Profile:
    """What the rules read of one contact: stage, interests, the score now, and (asked only
    when needed, then remembered) membership of segments."""

    contact_id: int
    stage: str
    interests: frozenset[str]
    score: float
    segments: dict[int, Segment] = field(default_factory=dict)
    memberships: dict[int, bool] = field(default_factory=dict)

    def in_segment(self, segment_id: int) -> bool:
        """One query per segment: the segment's compiled rules (or its frozen list) narrowed to
        this contact's primary key."""
        if segment_id not in self.memberships:
            segment = self.segments.get(segment_id)
            self.memberships[segment_id] = (
                segment is not None
                and segment_contacts(segment).filter(pk=self.contact_id).exists()
            )
        return self.memberships[segment_id]


def _profile(contact: Contact, engagement: Engagement | None, *, settings, now) -> Profile:
    return Profile(
        contact_id=contact.pk,
        stage=contact.lifecycle_stage,
        interests=frozenset(contact.interests),
        score=score_now(engagement, at=now, settings=settings),
    )


def contact_profile(
    contact: Contact, *, settings: TrackingSettings, now: datetime | None = None
) -> Profile:
    """The profile of a contact (one query, for the engagement row)."""
    engagement = Engagement.objects.filter(contact=contact).first()
    return _profile(contact, engagement, settings=settings, now=now or timezone.now())


def visitor_profile(
    visitor_id: uuid.UUID, *, settings: TrackingSettings, now: datetime | None = None
) -> Profile | None:
    """The profile of the contact a browser belongs to, or None for an anonymous or unknown
    visitor (one query: visitor, contact and engagement joined). Visitors live in the tenant's
    schema, so another tenant's visitor id finds nothing here."""
    visitor = (
        Visitor.objects.select_related("contact__engagement")
        .filter(pk=visitor_id, contact__isnull=False)
        .first()
    )
    if visitor is None:
        return None
    contact = visitor.contact
    try:
        engagement = contact.engagement
    except Engagement.DoesNotExist:
        engagement = None
    return _profile(contact, engagement, settings=settings, now=now or timezone.now())


# --- choosing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    """A block as the chooser (and the cache) holds it."""

    id: int
    slot: str
    name: str
    rules: dict
    content: str
    priority: int

    @property
    def is_default(self) -> bool:
        return not self.rules


@dataclass(frozen=True)
class Check:
    """Whether a contact meets a block's rules, and why: every rule that held, or the one that
    failed."""

    matched: bool
    reasons: tuple[str, ...]


def rules_check(rules: dict, profile: Profile) -> Check:
    """Cheap rules first, the segment (a query) last, stopping at the first that fails."""
    held = []
    stages = rules.get("stages")
    if stages:
        label = _stage_labels([profile.stage])
        if profile.stage not in stages:
            return Check(False, (f"Life-cycle stage is {label}, not {_stage_labels(stages)}",))
        held.append(f"Life-cycle stage is {label}")
    interests = rules.get("interests")
    if interests:
        shared = sorted(profile.interests.intersection(interests))
        if not shared:
            return Check(False, ("Not interested in " + " or ".join(interests),))
        held.append("Interested in " + ", ".join(shared))
    low, high = rules.get("score_min"), rules.get("score_max")
    if low is not None or high is not None:
        score = f"{profile.score:.1f}"
        if low is not None and profile.score < low:
            return Check(False, (f"Score {score} is below {_score(low)}",))
        if high is not None and profile.score > high:
            return Check(False, (f"Score {score} is above {_score(high)}",))
        held.append(f"Score {score} is within the band")
    segment_id = rules.get("segment")
    if segment_id is not None:
        segment = profile.segments.get(segment_id)
        name = segment.name if segment is not None else "(deleted segment)"
        if not profile.in_segment(segment_id):
            return Check(False, (f"Not in segment {name}",))
        held.append(f"In segment {name}")
    return Check(True, tuple(held))


@dataclass(frozen=True)
class Choice:
    """What a slot shows a visitor: the block (None: the page keeps its own content), whether it
    is the default, why it matched, and the blocks tried before it with why they did not."""

    slot: str
    block: Block | None
    default: bool
    reasons: tuple[str, ...] = ()
    passed_over: tuple[tuple[Block, str], ...] = ()


def tenant_blocks() -> list[Block]:
    """Every block of the tenant, by slot and priority (cached until a block changes)."""
    blocks = cache.get(CACHE_KEY)
    if blocks is None:
        blocks = [
            Block(**row)
            for row in PersonalizationBlock.objects.order_by("slot", "priority", "id").values(
                "id", "slot", "name", "rules", "content", "priority"
            )
        ]
        cache.set(CACHE_KEY, blocks, CACHE_SECONDS)
    return blocks


def blocks_forget() -> None:
    cache.delete(CACHE_KEY)


def _choose(slot: str, blocks: list[Block], profile: Profile | None) -> Choice:
    passed_over = []
    if profile is not None:
        for block in blocks:
            if block.is_default:
                continue
            check = rules_check(block.rules, profile)
            if check.matched:
                return Choice(slot, block, False, check.reasons, tuple(passed_over))
            passed_over.append((block, check.reasons[0]))
    default = next((block for block in blocks if block.is_default), None)
    return Choice(slot, default, default is not None, (), tuple(passed_over))


def blocks_choose(*, slots: list[str], profile: Profile | None) -> dict[str, Choice]:
    """Per slot, what the visitor described by `profile` (None: anonymous) gets. Loads the
    segments the slots' rules name in one query; each membership is asked at most once."""
    by_slot: dict[str, list[Block]] = {slot: [] for slot in slots}
    for block in tenant_blocks():
        if block.slot in by_slot:
            by_slot[block.slot].append(block)
    if profile is not None:
        wanted = {
            block.rules["segment"]
            for blocks in by_slot.values()
            for block in blocks
            if "segment" in block.rules
        } - set(profile.segments)
        if wanted:
            profile.segments.update(Segment.objects.in_bulk(wanted))
    return {slot: _choose(slot, blocks, profile) for slot, blocks in by_slot.items()}


def visitor_content(
    *,
    visitor_id: uuid.UUID | None,
    slots: list[str],
    settings: TrackingSettings,
    now: datetime | None = None,
) -> dict[str, str]:
    """What the public endpoint answers: {slot: HTML} for the slots that have a block for this
    visitor. Only block content leaves here, never anything of the contact."""
    profile = (
        visitor_profile(visitor_id, settings=settings, now=now) if visitor_id is not None else None
    )
    chosen = blocks_choose(slots=slots, profile=profile)
    return {slot: choice.block.content for slot, choice in chosen.items() if choice.block}


def slots_parse(text: str) -> list[str]:
    """The slots a request names ("hero,sidebar"), distinct and in order; raises ValueError
    with the reason when there are none, too many, or one is not a slot name."""
    if len(text) > MAX_SLOTS * 52:
        raise ValueError(f"Ask for at most {MAX_SLOTS} slots at once.")
    slots = list(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    if not slots:
        raise ValueError("Name at least one slot: slots=hero,sidebar.")
    if len(slots) > MAX_SLOTS:
        raise ValueError(f"Ask for at most {MAX_SLOTS} slots at once.")
    if not all(SLOT.match(slot) for slot in slots):
        raise ValueError("A slot name has only letters, digits, - and _, at most 50 of them.")
    return slots


# --- reads for the marketer's pages -----------------------------------------------------------


def block_list() -> QuerySet[PersonalizationBlock]:
    return PersonalizationBlock.objects.order_by("slot", "priority", "id")


def segment_names(blocks) -> dict[int, str]:
    """Names of the segments the blocks' rules name (one query)."""
    ids = {block.rules["segment"] for block in blocks if "segment" in block.rules}
    return dict(Segment.objects.filter(pk__in=ids).values_list("pk", "name")) if ids else {}


def slot_list() -> list[str]:
    return sorted({block.slot for block in tenant_blocks()})


# --- writes -----------------------------------------------------------------------------------


def _forget_now_and_on_commit() -> None:
    # Forgotten now, so this transaction's own reads see the change, and again on commit, so
    # a request that cached the old blocks meanwhile does not keep them.
    blocks_forget()
    transaction.on_commit(blocks_forget)


def _validated(block: PersonalizationBlock) -> None:
    errors = {}
    try:
        block.rules = block_rules_clean(block.rules)
    except ValidationError as error:
        errors.update(error.update_error_dict({}))
    if len(block.content) > MAX_CONTENT:
        errors["content"] = [f"Keep the content under {MAX_CONTENT:,} characters."]
    try:
        block.full_clean()
    except ValidationError as error:
        for key, messages in error.message_dict.items():
            errors.setdefault(key, []).extend(messages)
    if errors:
        raise ValidationError(errors)


@transaction.atomic
def block_create(
    *, actor, slot: str, name: str, rules: dict, content: str, priority: int = 100
) -> PersonalizationBlock:
    block = PersonalizationBlock(
        slot=slot, name=name, rules=rules, content=content, priority=priority
    )
    _validated(block)
    block.save()
    audit_record(instance=block, action="created", actor=actor)
    _forget_now_and_on_commit()
    return block


@transaction.atomic
def block_update(
    *,
    actor,
    block: PersonalizationBlock,
    slot: str,
    name: str,
    rules: dict,
    content: str,
    priority: int,
) -> PersonalizationBlock:
    stored = PersonalizationBlock.objects.select_for_update().get(pk=block.pk)
    before = field_values(stored)
    block.slot, block.name, block.rules = slot, name, rules
    block.content, block.priority = content, priority
    _validated(block)
    block.save()
    audit_record(instance=block, action="updated", actor=actor, before=before)
    _forget_now_and_on_commit()
    return block


@transaction.atomic
def block_delete(*, actor, block: PersonalizationBlock) -> None:
    audit_record(instance=block, action="deleted", actor=actor)
    block.delete()
    _forget_now_and_on_commit()
