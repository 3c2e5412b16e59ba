"""Choosing web personalization blocks: the rules, priority, defaults, and the visitor's
contact (tracking.personalization)."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError
from django_tenants.utils import schema_context

from campaigns.models import SegmentMember
from campaigns.segments import segment_create
from contacts import services as contact_services
from crm.users.models import User
from tracking import personalization
from tracking.models import Engagement, Visitor
from tracking.scoring import tracking_settings

pytestmark = pytest.mark.django_db

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def no_cached_blocks(alpha, beta):
    """Blocks cached by an earlier test (whose rows were rolled back) must not be served."""
    for tenant in (alpha, beta):
        with schema_context(tenant.schema_name):
            personalization.blocks_forget()


@pytest.fixture
def admin(in_alpha):
    return User.objects.get(email="admin@alpha.test")


def person(admin, first_name, **fields):
    return contact_services.contact_create(
        actor=admin, first_name=first_name, email=f"{first_name.lower()}@x.test", **fields
    )


def block(admin, name, slot="hero", priority=100, **rules):
    return personalization.block_create(
        actor=admin, slot=slot, name=name, rules=rules, content=f"<p>{name}</p>", priority=priority
    )


def chosen(contact, slots=("hero",), now=T0):
    profile = personalization.contact_profile(contact, settings=tracking_settings(), now=now)
    choices = personalization.blocks_choose(slots=list(slots), profile=profile)
    return {slot: choice.block.name if choice.block else None for slot, choice in choices.items()}


def visit(contact=None) -> uuid.UUID:
    visitor = Visitor.objects.create(
        id=uuid.uuid4(), contact=contact, first_seen_at=T0, last_seen_at=T0
    )
    return visitor.id


# --- the rules, as written --------------------------------------------------------------------


def test_rules_are_normalized_and_empty_ones_dropped(admin):
    segment = segment_create(actor=admin, name="VIP", rules={"op": "and", "rules": []})

    clean = personalization.block_rules_clean(
        {
            "segment": str(segment.pk),
            "interests": " ai, analytics,,ai ",
            "stages": ["purchase", "evaluation"],
            "score_min": 10,
            "score_max": None,
        }
    )

    assert clean == {
        "segment": segment.pk,
        "interests": ["ai", "analytics"],
        "stages": ["evaluation", "purchase"],
        "score_min": 10.0,
    }
    assert personalization.block_rules_clean({"interests": [], "segment": ""}) == {}


@pytest.mark.parametrize(
    ("rules", "field"),
    [
        ({"segment": 999_999}, "segment"),
        ({"segment": True}, "segment"),
        ({"stages": ["dreaming"]}, "stages"),
        ({"stages": "evaluation"}, "stages"),
        ({"interests": ["x" * 51]}, "interests"),
        ({"interests": [f"i{n}" for n in range(21)]}, "interests"),
        ({"interests": [1, 2]}, "interests"),
        ({"score_min": -1}, "score_min"),
        ({"score_max": "lots"}, "score_max"),
        ({"score_min": float("nan")}, "score_min"),
        ({"score_min": 60, "score_max": 30}, "score_max"),
        ({"colour": "blue"}, "__all__"),
    ],
)
def test_bad_rules_are_refused_on_the_rule_they_concern(admin, rules, field):
    with pytest.raises(ValidationError) as refused:
        personalization.block_rules_clean(rules)

    assert list(refused.value.message_dict) == [field]


def test_a_block_is_saved_only_with_a_slot_name_and_clean_rules(admin):
    with pytest.raises(ValidationError) as refused:
        personalization.block_create(
            actor=admin,
            slot="hero banner",
            name="Hero",
            rules={"score_min": 9, "score_max": 1},
            content="<p>Hi</p>",
        )

    assert set(refused.value.message_dict) == {"slot", "score_max"}
    assert not personalization.block_list().exists()


# --- matching ---------------------------------------------------------------------------------


def test_stage_and_interest_rules_match_the_contacts_record(admin):
    block(admin, "Everyone")
    block(admin, "Evaluating AI fans", stages=["evaluation"], interests=["ai", "robots"])
    fan = person(admin, "Fan", lifecycle_stage="evaluation", interests=["ai", "golf"])
    early_fan = person(admin, "Early", lifecycle_stage="awareness", interests=["ai"])
    evaluator = person(admin, "Eva", lifecycle_stage="evaluation", interests=["golf"])

    assert chosen(fan) == {"hero": "Evaluating AI fans"}
    assert chosen(early_fan) == {"hero": "Everyone"}
    assert chosen(evaluator) == {"hero": "Everyone"}


def test_segment_rules_match_members_of_dynamic_and_frozen_segments(
    admin, django_assert_num_queries
):
    evaluating = segment_create(
        actor=admin,
        name="Evaluating",
        rules={
            "op": "and",
            "rules": [{"field": "lifecycle_stage", "operator": "eq", "value": "evaluation"}],
        },
    )
    frozen = segment_create(actor=admin, name="Hand-picked", rules={"op": "and", "rules": []})
    frozen.kind = frozen.Kind.STATIC
    frozen.save()
    block(admin, "For the hand-picked", priority=1, segment=frozen.pk)
    block(admin, "For evaluators", priority=2, segment=evaluating.pk)
    block(admin, "Everyone", priority=0)
    picked = person(admin, "Picked", lifecycle_stage="evaluation")
    SegmentMember.objects.create(segment=frozen, contact=picked)
    evaluator = person(admin, "Eva", lifecycle_stage="evaluation")
    stranger = person(admin, "Stranger")

    assert chosen(picked) == {"hero": "For the hand-picked"}
    assert chosen(evaluator) == {"hero": "For evaluators"}
    assert chosen(stranger) == {"hero": "Everyone"}

    # Whether one contact is in a segment is one query, asked once per segment.
    profile = personalization.contact_profile(evaluator, settings=tracking_settings(), now=T0)
    profile.segments[evaluating.pk] = evaluating
    with django_assert_num_queries(1):
        assert profile.in_segment(evaluating.pk)
        assert profile.in_segment(evaluating.pk)


def test_a_deleted_segment_matches_nobody(admin):
    gone = segment_create(actor=admin, name="Gone", rules={"op": "and", "rules": []})
    block(admin, "For the gone segment", segment=gone.pk)
    block(admin, "Everyone")
    gone.delete()

    assert chosen(person(admin, "Ann")) == {"hero": "Everyone"}


def test_the_score_band_reads_the_score_decayed_to_the_moment_asked(admin):
    settings = tracking_settings()
    settings.half_life_days = 10
    settings.save()
    block(admin, "Warm", score_min=30, score_max=60)
    block(admin, "Everyone")
    warm = person(admin, "Warm")
    Engagement.objects.create(contact=warm, value=80, at=T0)
    at_the_top = person(admin, "Top")
    Engagement.objects.create(contact=at_the_top, value=60, at=T0)
    never_scored = person(admin, "Cold")

    assert chosen(warm, now=T0) == {"hero": "Everyone"}  # 80: above the band
    assert chosen(warm, now=T0 + timedelta(days=10)) == {"hero": "Warm"}  # 40
    assert chosen(warm, now=T0 + timedelta(days=20)) == {"hero": "Everyone"}  # 20
    assert chosen(at_the_top, now=T0) == {"hero": "Warm"}  # both ends belong to the band
    assert chosen(never_scored) == {"hero": "Everyone"}


def test_the_first_matching_block_by_priority_wins_and_defaults_come_last(admin):
    block(admin, "Default, listed first", priority=1)
    block(admin, "Later default", priority=2)
    block(admin, "Evaluators", priority=50, stages=["evaluation"])
    block(admin, "Evaluating AI fans", priority=10, stages=["evaluation"], interests=["ai"])
    block(admin, "Sidebar for evaluators", slot="sidebar", stages=["evaluation"])
    fan = person(admin, "Fan", lifecycle_stage="evaluation", interests=["ai"])
    evaluator = person(admin, "Eva", lifecycle_stage="evaluation")
    reader = person(admin, "Reader")

    assert chosen(fan, ("hero", "sidebar", "footer")) == {
        "hero": "Evaluating AI fans",
        "sidebar": "Sidebar for evaluators",
        "footer": None,
    }
    assert chosen(evaluator) == {"hero": "Evaluators"}
    # Nothing matches and the sidebar has no default: the page keeps its own content there.
    assert chosen(reader, ("hero", "sidebar")) == {"hero": "Default, listed first", "sidebar": None}


def test_the_choice_says_why_and_what_was_tried_first(admin):
    block(admin, "Buyers", priority=1, stages=["purchase"])
    block(admin, "AI fans", priority=2, interests=["ai", "ml"])
    fan = person(admin, "Fan", interests=["ml"])

    profile = personalization.contact_profile(fan, settings=tracking_settings(), now=T0)
    choice = personalization.blocks_choose(slots=["hero"], profile=profile)["hero"]

    assert choice.block.name == "AI fans" and not choice.default
    assert choice.reasons == ("Interested in ml",)
    assert [(b.name, why) for b, why in choice.passed_over] == [
        ("Buyers", "Life-cycle stage is Awareness, not Purchase")
    ]


# --- the visitor ------------------------------------------------------------------------------


def test_a_known_visitor_gets_their_contacts_blocks_and_everyone_else_the_default(
    admin, django_assert_max_num_queries
):
    vip = segment_create(actor=admin, name="VIP", rules={"op": "and", "rules": []})
    block(admin, "Everyone")
    block(admin, "VIP", segment=vip.pk)
    block(admin, "Side", slot="sidebar")
    known = visit(person(admin, "Known"))
    anonymous = visit()
    settings = tracking_settings()

    def content(visitor_id):
        return personalization.visitor_content(
            visitor_id=visitor_id, slots=["hero", "sidebar", "nowhere"], settings=settings
        )

    # Visitor with contact and score, the blocks (cached afterwards), the segment, membership.
    with django_assert_max_num_queries(4):
        assert content(known) == {"hero": "<p>VIP</p>", "sidebar": "<p>Side</p>"}
    with django_assert_max_num_queries(1):
        assert content(anonymous) == {"hero": "<p>Everyone</p>", "sidebar": "<p>Side</p>"}
    assert content(uuid.uuid4()) == {"hero": "<p>Everyone</p>", "sidebar": "<p>Side</p>"}
    assert content(None) == {"hero": "<p>Everyone</p>", "sidebar": "<p>Side</p>"}


def test_changed_and_deleted_blocks_are_served_at_once_despite_the_cache(admin):
    hero = block(admin, "Everyone")
    settings = tracking_settings()

    def served():
        return personalization.visitor_content(visitor_id=None, slots=["hero"], settings=settings)

    assert served() == {"hero": "<p>Everyone</p>"}
    personalization.block_update(
        actor=admin, block=hero, slot="hero", name="New", rules={}, content="<p>New</p>", priority=1
    )
    assert served() == {"hero": "<p>New</p>"}
    personalization.block_delete(actor=admin, block=hero)
    assert served() == {}


def test_another_tenants_visitor_and_blocks_are_not_there(admin, beta):
    block(admin, "Alpha VIP", interests=["vip"])
    block(admin, "Alpha default")
    alpha_visitor = visit(person(admin, "Vip", interests=["vip"]))

    with schema_context(beta.schema_name):
        beta_admin = User.objects.get(email="admin@beta.test")
        block(beta_admin, "Beta default")
        served = personalization.visitor_content(
            visitor_id=alpha_visitor, slots=["hero"], settings=tracking_settings()
        )

    assert served == {"hero": "<p>Beta default</p>"}


@pytest.mark.parametrize(
    ("text", "slots"),
    [("hero", ["hero"]), (" hero , side_bar,hero,", ["hero", "side_bar"]), ("a-1", ["a-1"])],
)
def test_slot_lists_are_read_in_order_without_repeats(text, slots):
    assert personalization.slots_parse(text) == slots


@pytest.mark.parametrize(
    "text", ["", " , ", "hero banner", "<b>", ",".join(f"s{n}" for n in range(21)), "x" * 51]
)
def test_bad_slot_lists_are_refused(text):
    with pytest.raises(ValueError):
        personalization.slots_parse(text)
