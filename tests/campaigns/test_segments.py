"""Segments: the rule compiler on a small book of contacts with answers worked out by hand, strict
validation, one query to count, freezing in one statement, access and tenants."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tenants.utils import schema_context

from campaigns.models import Campaign, CampaignMember, Segment, SegmentMember
from campaigns.segments import (
    rules_clean,
    segment_contacts,
    segment_count,
    segment_create,
    segment_freeze,
    segment_sample,
    segment_update,
)
from contacts.models import Account, Contact
from crm.users.models import Role, Team, User
from crm.users.services import user_create
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

ALPHA = {"HTTP_HOST": "alpha.localhost"}
BETA = {"HTTP_HOST": "beta.localhost"}


@pytest.fixture
def marketer(in_alpha):
    return user_create(
        email="seg-mk@alpha.test", password=PASSWORD, full_name="Mia Marketing", role=Role.MARKETING
    )


@pytest.fixture
def book(in_alpha):
    """Five contacts:

    ann   evaluation  customer  north  web      interests [pricing]     Acme (software, tags vip)
    bob   awareness   prospect  south  fair     interests []            Acme
    cat   evaluation  prospect  ""     web      interests [pricing, ai] Globex (retail, tags [])
    dan   purchase    customer  north  ""       interests [ai]          no account, owned by sam
    eve   awareness   partner   south  web      interests []            no account, 90 days old

    Campaign "Spring": ann clicked, bob sent, cat opened.
    """
    sam = user_create(
        email="seg-sam@alpha.test", password=None, full_name="Sam Sales", role=Role.SALES
    )
    acme = Account.objects.create(name="Acme", industry="software", tags=["vip"])
    globex = Account.objects.create(name="Globex", industry="retail", tags=[])
    rows = {
        "ann": dict(
            lifecycle_stage="evaluation",
            customer_type="customer",
            territory="north",
            source="web",
            interests=["pricing"],
            account=acme,
        ),
        "bob": dict(
            lifecycle_stage="awareness",
            customer_type="prospect",
            territory="south",
            source="fair",
            account=acme,
        ),
        "cat": dict(
            lifecycle_stage="evaluation",
            customer_type="prospect",
            source="web",
            interests=["pricing", "ai"],
            account=globex,
        ),
        "dan": dict(
            lifecycle_stage="purchase",
            customer_type="customer",
            territory="north",
            interests=["ai"],
            owner=sam,
        ),
        "eve": dict(
            lifecycle_stage="awareness", customer_type="partner", territory="south", source="web"
        ),
    }
    people = {name: Contact.objects.create(first_name=name, **row) for name, row in rows.items()}
    Contact.objects.filter(pk=people["eve"].pk).update(
        created_at=timezone.now() - timedelta(days=90)
    )
    spring = Campaign.objects.create(name="Spring", kind="email")
    for name, status in (("ann", "clicked"), ("bob", "sent"), ("cat", "opened")):
        CampaignMember.objects.create(campaign=spring, contact=people[name], status=status)
    return {"people": people, "sam": sam, "spring": spring}


def names(rules, user=None) -> set[str]:
    return set(
        segment_contacts(Segment(rules=rules_clean(rules)), user=user).values_list(
            "first_name", flat=True
        )
    )


def one(field, operator, value=None):
    return {"op": "and", "rules": [{"field": field, "operator": operator, "value": value}]}


@pytest.mark.parametrize(
    ("field", "operator", "value", "expected"),
    [
        ("lifecycle_stage", "eq", "evaluation", {"ann", "cat"}),
        ("lifecycle_stage", "neq", "evaluation", {"bob", "dan", "eve"}),
        ("lifecycle_stage", "in", ["purchase", "awareness"], {"bob", "dan", "eve"}),
        ("customer_type", "eq", "partner", {"eve"}),
        ("territory", "eq", "north", {"ann", "dan"}),
        ("territory", "in", "north, south", {"ann", "bob", "dan", "eve"}),
        ("territory", "empty", None, {"cat"}),
        ("source", "not_empty", None, {"ann", "bob", "cat", "eve"}),
        ("interests", "contains", "pricing", {"ann", "cat"}),
        ("interests", "not_contains", "ai", {"ann", "bob", "eve"}),
        ("interests", "empty", None, {"bob", "eve"}),
        ("account_industry", "eq", "software", {"ann", "bob"}),
        # Contacts without an account are "not software" too.
        ("account_industry", "neq", "software", {"cat", "dan", "eve"}),
        ("account_industry", "empty", None, {"dan", "eve"}),
        ("account_tags", "contains", "vip", {"ann", "bob"}),
        ("account_tags", "not_contains", "vip", {"cat", "dan", "eve"}),
        ("account_tags", "empty", None, {"cat", "dan", "eve"}),
        ("account_customer_type", "eq", "prospect", {"ann", "bob", "cat"}),
        ("owner", "empty", None, {"ann", "bob", "cat", "eve"}),
        ("created_at", "last_days", 30, {"ann", "bob", "cat", "dan"}),
        ("created_at", "last_days", "120", {"ann", "bob", "cat", "dan", "eve"}),
        ("campaign", "member", "SPRING", {"ann", "bob", "cat"}),
        ("campaign", "opened", "SPRING", {"ann", "cat"}),
        ("campaign", "clicked", "SPRING", {"ann"}),
        ("campaign", "responded", "SPRING", set()),
    ],
)
def test_each_operator_matches_the_contacts_worked_out_by_hand(
    book, field, operator, value, expected
):
    if value == "SPRING":
        value = book["spring"].pk
    assert names(one(field, operator, value)) == expected


def test_owner_conditions_match_by_user(book):
    sam = book["sam"].pk
    assert names(one("owner", "eq", str(sam))) == {"dan"}
    assert names(one("owner", "neq", sam)) == {"ann", "bob", "cat", "eve"}
    assert names(one("owner", "in", [str(sam)])) == {"dan"}


def test_and_or_groups_nest(book):
    # evaluation AND (vip account OR interested in ai)
    rules = {
        "op": "and",
        "rules": [
            {"field": "lifecycle_stage", "operator": "eq", "value": "evaluation"},
            {
                "op": "or",
                "rules": [
                    {"field": "account_tags", "operator": "contains", "value": "vip"},
                    {"field": "interests", "operator": "contains", "value": "ai"},
                ],
            },
        ],
    }
    assert names(rules) == {"ann", "cat"}
    # partner OR (north AND customer without an account)
    rules = {
        "op": "or",
        "rules": [
            {"field": "customer_type", "operator": "eq", "value": "partner"},
            {
                "op": "and",
                "rules": [
                    {"field": "territory", "operator": "eq", "value": "north"},
                    {"field": "account_industry", "operator": "empty", "value": None},
                ],
            },
        ],
    }
    assert names(rules) == {"dan", "eve"}
    assert names({"op": "and", "rules": []}) == {"ann", "bob", "cat", "dan", "eve"}


def test_the_count_is_one_query_and_capped(book, django_assert_num_queries):
    rules = rules_clean(
        {
            "op": "or",
            "rules": [
                {"field": "campaign", "operator": "opened", "value": book["spring"].pk},
                {"field": "account_tags", "operator": "contains", "value": "vip"},
            ],
        }
    )
    with django_assert_num_queries(1):
        count = segment_count(rules)
    assert (count.total, count.label) == (3, "3")
    capped = segment_count(rules, cap=2)
    assert (capped.total, capped.capped, capped.label) == (2, True, "10,000+")
    with django_assert_num_queries(1):
        sample = segment_sample(rules, n=2)
    assert [c.first_name for c in sample] == ["ann", "bob"]


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ("drop table", "a group has an operator"),
        ({"op": "xor", "rules": []}, "'and' or 'or'"),
        (one("password", "eq", "x"), "unknown field 'password'"),
        (one("territory", "like", "x"), "Territory has no operator 'like'"),
        (one("lifecycle_stage", "eq", "zombie"), "choose one of the listed values"),
        (one("lifecycle_stage", "in", []), "choose one or more"),
        (one("territory", "eq", ""), "enter a value"),
        (one("territory", "eq", "x" * 101), "at most 100 characters"),
        (one("created_at", "last_days", "-3"), "whole number of days"),
        (one("created_at", "last_days", True), "whole number of days"),
        (one("campaign", "opened", "abc"), "choose a campaign"),
        (one("owner", "eq", ["1", "2"]), "choose a user"),
        (
            {
                "op": "and",
                "rules": [{"field": "territory", "operator": "eq", "value": "x", "y": 1}],
            },
            "a condition has a field",
        ),
        (
            {"op": "and", "rules": [{"op": "or", "rules": [{"op": "and", "rules": []}]}]},
            "cannot hold further groups",
        ),
        ({"op": "and", "rules": [{"op": "or", "rules": []}]}, "the group is empty"),
        (
            {"op": "and", "rules": [one("territory", "eq", "x")["rules"][0]] * 51},
            "at most 50 conditions",
        ),
    ],
)
def test_bad_rules_are_refused_with_a_message(in_alpha, rules, message):
    with pytest.raises(ValidationError) as raised:
        rules_clean(rules)
    assert any(message in m for m in raised.value.messages), raised.value.messages


def test_bad_rules_save_nothing(in_alpha, marketer):
    with pytest.raises(ValidationError):
        segment_create(actor=marketer, name="Bad", rules=one("territory", "like", "x"))
    assert not Segment.objects.filter(name="Bad").exists()


def test_sql_looking_values_are_only_values(book):
    sneaky = "north'; DROP TABLE contacts_contact; --"
    Contact.objects.create(first_name="mal", territory=sneaky, interests=["x' OR '1'='1"])
    assert names(one("territory", "eq", sneaky)) == {"mal"}
    assert names(one("territory", "in", "' OR 1=1 --, north")) == {"ann", "dan"}
    assert names(one("interests", "contains", "x' OR '1'='1")) == {"mal"}
    assert names(one("account_industry", "eq", "') OR ('a'='a")) == set()
    assert Contact.objects.count() == 6


def test_freeze_writes_the_members_in_one_statement_and_the_list_stays_put(book, marketer):
    segment = segment_create(
        actor=marketer, name="Evaluating", rules=one("lifecycle_stage", "eq", "evaluation")
    )
    with CaptureQueriesContext(connection) as queries:
        added = segment_freeze(actor=marketer, segment=segment)
    inserts = [
        q["sql"] for q in queries if "INSERT INTO" in q["sql"] and "segmentmember" in q["sql"]
    ]
    assert added == 2 and len(inserts) == 1 and "SELECT" in inserts[0]
    segment.refresh_from_db()
    assert segment.kind == Segment.Kind.STATIC and segment.frozen_at is not None
    assert SegmentMember.objects.filter(segment=segment).count() == 2

    # Contacts change; the frozen list does not.
    Contact.objects.filter(first_name="bob").update(lifecycle_stage="evaluation")
    Contact.objects.filter(first_name="ann").update(lifecycle_stage="purchase")
    assert set(segment_contacts(segment).values_list("first_name", flat=True)) == {"ann", "cat"}

    with pytest.raises(ValidationError):
        segment_freeze(actor=marketer, segment=segment)
    with pytest.raises(ValidationError):
        segment_update(
            actor=marketer, segment=segment, name="Evaluating", rules=one("territory", "empty")
        )
    segment_update(
        actor=marketer,
        segment=segment,
        name="Evaluating in May",
        rules=one("lifecycle_stage", "eq", "evaluation"),
    )
    assert Segment.objects.get(pk=segment.pk).name == "Evaluating in May"


def test_a_managers_count_stays_within_their_reach(book):
    team = Team.objects.create(name="Seg team")
    manager = user_create(
        email="seg-mgr@alpha.test",
        password=PASSWORD,
        full_name="Max Manager",
        role=Role.MANAGER,
        team=team,
    )
    User.objects.filter(pk=book["sam"].pk).update(team=team)
    rules = rules_clean(one("territory", "eq", "north"))
    assert segment_count(rules, user=manager).total == 1  # dan, owned by sam of the team
    assert segment_count(rules).total == 2


# --- pages ------------------------------------------------------------------------------------


@pytest.fixture
def marketer_client(client, marketer):
    client.post("/login/", {"username": marketer.email, "password": PASSWORD}, **ALPHA)
    return client


def form_data(name="North", **rows):
    data = {"name": name, "description": "", "op": "and"}
    data.update(rows)
    return data


NORTH_OR_VIP = {
    "group-1-op": "or",
    "row-1-group": "",
    "row-1-field": "territory",
    "row-1-operator": "eq",
    "row-1-value": "north",
    "row-2-group": "1",
    "row-2-field": "account_tags",
    "row-2-operator": "contains",
    "row-2-value": "vip",
    "row-3-group": "1",
    "row-3-field": "lifecycle_stage",
    "row-3-operator": "in",
    "row-3-value": ["purchase", "awareness"],
}


def test_one_of_with_a_single_choice_or_typed_values_from_the_form(book, marketer_client):
    rows = {
        "row-1-group": "",
        "row-1-field": "lifecycle_stage",
        "row-1-operator": "in",
        "row-1-value": "purchase",
        "row-2-group": "",
        "row-2-field": "territory",
        "row-2-operator": "in",
        "row-2-value": "north, east",
    }
    preview = marketer_client.post("/campaigns/segments/preview/", form_data(**rows), **ALPHA)
    assert [c.first_name for c in preview.context["sample"]] == ["dan"]


def test_a_marketer_previews_saves_and_freezes_a_segment(book, marketer_client):
    preview = marketer_client.post(
        "/campaigns/segments/preview/", form_data(**NORTH_OR_VIP), **ALPHA
    )
    # north AND (vip OR purchase/awareness): ann (vip), dan (purchase)
    assert preview.status_code == 200
    assert preview.context["count"].total == 2
    assert [c.first_name for c in preview.context["sample"]] == ["ann", "dan"]

    saved = marketer_client.post("/campaigns/segments/new/", form_data(**NORTH_OR_VIP), **ALPHA)
    segment = Segment.objects.get(name="North")
    assert saved.status_code == 302
    assert segment.rules == {
        "op": "and",
        "rules": [
            {"field": "territory", "operator": "eq", "value": "north"},
            {
                "op": "or",
                "rules": [
                    {"field": "account_tags", "operator": "contains", "value": "vip"},
                    {
                        "field": "lifecycle_stage",
                        "operator": "in",
                        "value": ["awareness", "purchase"],
                    },
                ],
            },
        ],
    }
    detail = marketer_client.get(f"/campaigns/segments/{segment.pk}/", **ALPHA)
    assert detail.status_code == 200 and detail.context["count"].total == 2

    marketer_client.post(f"/campaigns/segments/{segment.pk}/freeze/", **ALPHA)
    assert SegmentMember.objects.filter(segment=segment).count() == 2


def test_bad_rules_on_the_form_show_errors_and_save_nothing(book, marketer_client):
    bad = form_data(
        name="<b>Bad</b>",
        **{
            "row-1-group": "",
            "row-1-field": "territory",
            "row-1-operator": "eq",
            "row-1-value": "' OR 1=1 --",
            "row-2-group": "",
            "row-2-field": "salary",
            "row-2-operator": "eq",
            "row-2-value": "1",
            "row-3-group": "",
            "row-3-field": "created_at",
            "row-3-operator": "last_days",
            "row-3-value": "soon",
        },
    )
    response = marketer_client.post("/campaigns/segments/new/", bad, **ALPHA)
    assert response.status_code == 200
    page = response.content.decode()
    assert "unknown field &#x27;salary&#x27;" in page
    assert "whole number of days" in page
    assert not Segment.objects.exists()
    preview = marketer_client.post("/campaigns/segments/preview/", bad, **ALPHA)
    assert preview.status_code == 200 and "unknown field" in preview.content.decode()


def test_html_in_a_segment_name_shows_as_text(book, marketer, marketer_client):
    segment_create(
        actor=marketer, name="<script>alert(1)</script>", rules=one("territory", "empty")
    )
    page = marketer_client.get("/campaigns/segments/", **ALPHA).content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert(1)" not in page


def test_salespeople_may_not_use_segments(book, client):
    book["sam"].set_password(PASSWORD)
    book["sam"].save()
    client.post("/login/", {"username": "seg-sam@alpha.test", "password": PASSWORD}, **ALPHA)
    assert client.get("/campaigns/segments/", **ALPHA).status_code == 403
    assert client.post("/campaigns/segments/preview/", form_data(), **ALPHA).status_code == 403


def test_another_tenants_segment_is_not_there_and_counts_stay_home(book, marketer, beta):
    segment = segment_create(
        actor=marketer, name="Alpha north", rules=one("territory", "eq", "north")
    )
    with schema_context(beta.schema_name):
        Contact.objects.create(first_name="beta-north", territory="north")
        beta_marketer = user_create(
            email="seg-mk@beta.test", password=PASSWORD, full_name="Bo Beta", role=Role.MARKETING
        )
    connection.set_schema_to_public()
    beta_client = Client()
    beta_client.post("/login/", {"username": beta_marketer.email, "password": PASSWORD}, **BETA)
    assert beta_client.get(f"/campaigns/segments/{segment.pk}/", **BETA).status_code == 404
    preview = beta_client.post(
        "/campaigns/segments/preview/",
        form_data(**{k: v for k, v in NORTH_OR_VIP.items() if k.startswith("row-1")}),
        **BETA,
    )
    assert preview.context["count"].total == 1
    assert [c.first_name for c in preview.context["sample"]] == ["beta-north"]
    # Beta's session means nothing on alpha's host.
    assert beta_client.get(f"/campaigns/segments/{segment.pk}/", **ALPHA).status_code == 302
