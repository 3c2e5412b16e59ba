"""Segment conditions on tracking data: the engagement score now (through the rank), pages
viewed in a window, and filled lead forms, each one EXISTS in the segment's single query, and
each tenant's own."""

import uuid
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tenants.utils import schema_context

from campaigns.segments import rules_clean, rules_contacts, rules_describe, segment_count
from contacts.models import Contact
from crm.users.models import User
from leads.models import FormSubmission
from leads.services import lead_form_create
from tracking.models import Engagement, Event
from tracking.scoring import Scale, tracking_settings

pytestmark = pytest.mark.django_db


def rules(*conditions, op="and"):
    return rules_clean({"op": op, "rules": list(conditions)})


def names(clean_rules):
    return sorted(c.first_name for c in rules_contacts(clean_rules))


def engage(contact, value, *, ago: timedelta):
    scale = Scale.of(tracking_settings())
    at = timezone.now() - ago
    Engagement.objects.create(contact=contact, value=value, at=at, rank=scale.rank(value, at))


def view(contact, url, *, ago: timedelta):
    at = timezone.now() - ago
    Event.objects.create(
        id=uuid.uuid4(), contact=contact, kind="page_view", url=url, occurred_at=at, received_at=at
    )


def book():
    """ann: score 40 a half-life ago (20 now), viewed /pricing 10 days ago, filled Trial;
    bob: score 90 now, viewed /blog yesterday; cat: nothing."""
    settings = tracking_settings()
    settings.half_life_days = 10
    settings.save()
    ann, bob, _ = (Contact.objects.create(first_name=n) for n in ("ann", "bob", "cat"))
    engage(ann, 40, ago=timedelta(days=10))
    engage(bob, 90, ago=timedelta(0))
    view(ann, "https://site.test/Pricing/pro", ago=timedelta(days=10))
    view(bob, "https://site.test/blog/pricing-news", ago=timedelta(days=40))
    view(bob, "https://site.test/blog", ago=timedelta(days=1))
    admin = User.objects.get(email__startswith="admin@")
    form = lead_form_create(actor=admin, name="Trial", contact_fields=[], fallback_owner=admin)
    FormSubmission.objects.create(form=form, contact=ann, data={}, status="processed")
    FormSubmission.objects.create(form=form, contact=None, data={})
    return form


def test_score_above_and_below_now_take_the_decay_into_account(in_alpha):
    book()

    assert (
        names(rules({"field": "engagement_score", "operator": "above", "value": "19"}))
        == [
            "bob",
            "ann",
        ][::-1]
    )
    assert names(rules({"field": "engagement_score", "operator": "above", "value": 21})) == ["bob"]
    # No score at all is a score of 0: below anything.
    assert names(rules({"field": "engagement_score", "operator": "below", "value": 21})) == [
        "ann",
        "cat",
    ]


def test_pages_viewed_in_a_window_match_any_part_of_the_address_in_any_case(in_alpha):
    book()

    assert names(rules({"field": "page_viewed", "operator": "viewed_30", "value": "/pricing"})) == [
        "ann"
    ]
    assert names(rules({"field": "page_viewed", "operator": "viewed_7", "value": "/pricing"})) == []
    assert names(rules({"field": "page_viewed", "operator": "viewed_90", "value": "pricing"})) == [
        "ann",
        "bob",
    ]


def test_filled_form_matches_processed_submissions(in_alpha):
    form = book()

    assert names(rules({"field": "form_filled", "operator": "filled", "value": str(form.pk)})) == [
        "ann"
    ]
    assert rules_describe(
        rules({"field": "form_filled", "operator": "filled", "value": form.pk})
    ) == ["Filled form is Trial"]


def test_behaviour_conditions_together_are_counted_in_one_query(in_alpha):
    form = book()
    clean = rules(
        {"field": "engagement_score", "operator": "above", "value": 5},
        {
            "op": "or",
            "rules": [
                {"field": "page_viewed", "operator": "viewed_30", "value": "pricing"},
                {"field": "form_filled", "operator": "filled", "value": form.pk},
            ],
        },
    )

    with CaptureQueriesContext(connection) as queries:
        count = segment_count(clean)

    assert count.total == 1
    assert len(queries) == 1


@pytest.mark.parametrize(
    "condition, message",
    [
        ({"field": "engagement_score", "operator": "above", "value": "lots"}, "number above 0"),
        ({"field": "engagement_score", "operator": "below", "value": -3}, "number above 0"),
        ({"field": "engagement_score", "operator": "above", "value": True}, "number above 0"),
        ({"field": "page_viewed", "operator": "viewed_30", "value": ""}, "at most 100"),
        ({"field": "page_viewed", "operator": "viewed_8", "value": "/x"}, "has no operator"),
        ({"field": "form_filled", "operator": "filled", "value": "Trial"}, "choose a form"),
    ],
)
def test_bad_behaviour_conditions_are_refused_with_a_message(in_alpha, condition, message):
    with pytest.raises(ValidationError) as error:
        rules(condition)

    assert message in " ".join(error.value.messages)


def test_each_tenant_counts_only_its_own_tracking_data(alpha, beta):
    with schema_context(alpha.schema_name):
        book()
    with schema_context(beta.schema_name):
        zed = Contact.objects.create(first_name="zed")
        view(zed, "https://beta.test/pricing", ago=timedelta(days=1))
        engage(zed, 500, ago=timedelta(0))

    pricing = rules({"field": "page_viewed", "operator": "viewed_30", "value": "pricing"})
    hot = rules({"field": "engagement_score", "operator": "above", "value": 50})
    with schema_context(alpha.schema_name):
        assert names(pricing) == ["ann"] and names(hot) == ["bob"]
    with schema_context(beta.schema_name):
        assert names(pricing) == ["zed"] and names(hot) == ["zed"]
