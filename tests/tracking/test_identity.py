"""Identity stitching: a visitor's earlier anonymous events join the contact's history; a contact
may have several browsers; two identified contacts are never merged automatically; the e-mail
click token is signed, carries the tenant and is refused when forged."""

import re
import time
import uuid
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core import signing
from django.test import Client
from django.urls import reverse
from django_tenants.utils import schema_context

from campaigns import sending
from campaigns.segments import segment_create
from campaigns.services import campaign_create
from campaigns.templating import email_template_create
from contacts.services import contact_create
from crm.users.models import Role, User
from crm.users.services import user_create
from tests.conftest import PASSWORD
from tests.tracking.conftest import SITE, batch, host, page_view, post, site_origins_set
from tracking import drain
from tracking.identity import (
    TOKEN_SALT,
    How,
    url_with_visitor_token,
    visitor_identify,
    visitor_token,
    visitor_token_read,
)
from tracking.models import Event, MergeOffer, ScoreChange, TimelineEntry, Visitor
from tracking.selectors import merge_suggestions

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin(alpha_site, in_alpha):
    return User.objects.get(email="admin@alpha.test")


@pytest.fixture
def ada(admin):
    return contact_create(actor=admin, first_name="Ada", email="ada@example.test")


@pytest.fixture
def bob(admin):
    return contact_create(actor=admin, first_name="Bob", email="bob@example.test")


def browse(tenant, visitor, titles, session="visit-1"):
    events = [page_view(f"{SITE}/{n}", title) for n, title in enumerate(titles)]
    for n, event in enumerate(events):
        event["ts"] += n
    assert post(host(tenant), batch(visitor, events, session=session)).status == 202
    drain.drain()


def page_views(contact):
    return list(
        TimelineEntry.objects.filter(contact=contact, kind="page_view").order_by("occurred_at")
    )


def test_identifying_a_visitor_rolls_its_earlier_anonymous_events_into_the_contacts_history(
    alpha_site, ada
):
    visitor = uuid.uuid4()
    browse(alpha_site, visitor, ["Home", "Pricing"])
    assert page_views(ada) == []

    done = visitor_identify(visitor_id=visitor, contact=ada, how=How.FORM)

    assert done.rolled_up == 2 and done.offer is None
    (entry,) = page_views(ada)
    assert entry.count == 2 and "Pricing" in entry.detail
    assert Visitor.objects.get(pk=visitor).contact == ada
    assert not Event.objects.filter(visitor_id=visitor, rolled_up_at__isnull=True).exists()
    assert ScoreChange.objects.filter(contact=ada).count() == 2


def test_identifying_again_rolls_nothing_up_twice(alpha_site, ada):
    visitor = uuid.uuid4()
    browse(alpha_site, visitor, ["Home"])
    visitor_identify(visitor_id=visitor, contact=ada, how=How.FORM)

    again = visitor_identify(visitor_id=visitor, contact=ada, how=How.IDENTIFY)

    assert again.rolled_up == 0
    assert page_views(ada)[0].count == 1
    assert ScoreChange.objects.filter(contact=ada).count() == 1


def test_a_contact_may_have_two_browsers(alpha_site, ada):
    phone, laptop = uuid.uuid4(), uuid.uuid4()
    browse(alpha_site, phone, ["On the phone"], session="p1")
    browse(alpha_site, laptop, ["On the laptop"], session="l1")

    visitor_identify(visitor_id=phone, contact=ada, how=How.IDENTIFY)
    visitor_identify(visitor_id=laptop, contact=ada, how=How.FORM)
    browse(alpha_site, laptop, ["Later on the laptop"], session="l2")

    assert set(ada.visitors.values_list("pk", flat=True)) == {phone, laptop}
    assert [e.summary for e in page_views(ada)] == [
        "Viewed On the phone",
        "Viewed On the laptop",
        "Viewed Later on the laptop",
    ]


def test_a_browser_known_as_one_contact_that_identifies_as_another_is_not_merged(
    alpha_site, admin, ada, bob
):
    visitor = uuid.uuid4()
    visitor_identify(visitor_id=visitor, contact=ada, how=How.FORM)

    done = visitor_identify(visitor_id=visitor, contact=bob, how=How.IDENTIFY)
    visitor_identify(visitor_id=visitor, contact=bob, how=How.IDENTIFY)
    browse(alpha_site, visitor, ["After"])

    assert done.contact_id == ada.pk and done.offer is not None
    assert Visitor.objects.get(pk=visitor).contact == ada
    (offer,) = MergeOffer.objects.all()
    assert (offer.contact, offer.other, offer.how) == (ada, bob, How.IDENTIFY)
    assert len(page_views(ada)) == 1 and page_views(bob) == []
    # Both records are still there, each with its own history.
    assert {c.first_name for c in type(ada).objects.filter(pk__in=[ada.pk, bob.pk])} == {
        "Ada",
        "Bob",
    }
    # Both pages offer the merge, kept = the contact the browser was linked to first.
    for contact in (ada, bob):
        (suggestion,) = merge_suggestions(admin, contact)
        assert (suggestion.kept, suggestion.merged) == (ada, bob)


def test_the_merge_offer_shows_on_the_contact_page_with_a_link_to_the_merge_review(
    alpha_site, admin, ada, bob
):
    visitor_identify(visitor_id=uuid.uuid4(), contact=ada, how=How.FORM)
    visitor = ada.visitors.get().pk
    visitor_identify(visitor_id=visitor, contact=bob, how=How.EMAIL_CLICK)
    client = Client(HTTP_HOST=host(alpha_site))
    client.post("/login/", {"username": admin.email, "password": PASSWORD})

    page = client.get(reverse("contacts:contact_detail", args=[bob.pk])).content.decode()

    review = reverse("contacts:merge_review", args=["contacts", ada.pk, bob.pk])
    assert "also identified as" in page and review in page


def test_merge_offers_are_only_for_users_who_may_merge_and_see_both(alpha_site, admin, ada, bob):
    visitor = uuid.uuid4()
    visitor_identify(visitor_id=visitor, contact=ada, how=How.FORM)
    visitor_identify(visitor_id=visitor, contact=bob, how=How.FORM)
    marketer = user_create(
        email="m@alpha.test", password=PASSWORD, full_name="M", role=Role.MARKETING
    )
    seller = user_create(email="s@alpha.test", password=PASSWORD, full_name="S", role=Role.SALES)

    assert merge_suggestions(marketer, ada) == []  # may not merge
    assert merge_suggestions(seller, ada) == []  # sees neither contact
    ada.owner = seller
    ada.save(update_fields=["owner"])
    assert merge_suggestions(seller, ada) == []  # sees Ada, not Bob
    bob.owner = seller
    bob.save(update_fields=["owner"])
    assert [s.other for s in merge_suggestions(seller, ada)] == [bob]


def test_after_the_merge_the_offer_is_gone(alpha_site, admin, ada, bob):
    from contacts.merging import contact_merge

    visitor = uuid.uuid4()
    visitor_identify(visitor_id=visitor, contact=ada, how=How.FORM)
    visitor_identify(visitor_id=visitor, contact=bob, how=How.FORM)

    contact_merge(actor=admin, kept=ada, merged=bob, fields={})

    assert merge_suggestions(admin, ada) == []


# --- the e-mail click's visitor token -----------------------------------------------------------


def test_a_visitor_token_names_a_contact_of_its_own_tenant_only(alpha, beta):
    with schema_context(alpha.schema_name):
        token = visitor_token(contact_id=42)

    assert visitor_token_read(token, schema=alpha.schema_name) == 42
    assert visitor_token_read(token, schema=beta.schema_name) is None
    assert visitor_token_read(token[:-2] + "xx", schema=alpha.schema_name) is None
    forged = signing.dumps({"t": alpha.schema_name, "c": 42}, salt="another.salt")
    assert visitor_token_read(forged, schema=alpha.schema_name) is None


def test_an_old_visitor_token_is_refused(alpha):
    class ThreeDaysAgo(signing.TimestampSigner):
        def timestamp(self):
            return signing.b62_encode(int(time.time()) - 3 * 86400)

    token = ThreeDaysAgo(salt=TOKEN_SALT).sign_object({"t": alpha.schema_name, "c": 42})

    assert visitor_token_read(token, schema=alpha.schema_name) is None


def test_the_token_goes_only_to_the_tenants_own_sites(in_alpha):
    origins = [SITE]

    own = url_with_visitor_token(f"{SITE}/offer?a=1&crm_vt=old", contact_id=7, site_origins=origins)
    other = url_with_visitor_token("https://elsewhere.test/x", contact_id=7, site_origins=origins)

    query = parse_qs(urlsplit(own).query)
    assert query["a"] == ["1"] and len(query["crm_vt"]) == 1
    assert visitor_token_read(query["crm_vt"][0], schema=in_alpha.schema_name) == 7
    assert other == "https://elsewhere.test/x"


def test_identify_with_an_email_click_token_links_the_visitor(alpha_site, ada):
    visitor = uuid.uuid4()
    browse(alpha_site, visitor, ["Before the click"])

    answer = post(
        host(alpha_site),
        batch(visitor, identify={"token": visitor_token(contact_id=ada.pk)}),
    )
    drain.drain()

    assert answer.status == 202
    assert Visitor.objects.get(pk=visitor).contact == ada
    assert len(page_views(ada)) == 1


def test_a_token_made_for_another_tenant_is_refused_by_the_endpoint(alpha_site, beta):
    site_origins_set(beta, [SITE])
    with schema_context(alpha_site.schema_name):
        token = visitor_token(contact_id=1)

    answer = post(host(beta), batch(uuid.uuid4(), identify={"token": token}))

    assert answer.status == 403 and answer.json["error"] == "bad_signature"


def test_an_email_click_to_the_tenants_site_carries_the_token(alpha_site, admin, mailbox):
    site_origins_set(alpha_site, ["https://shop.example"])
    template = email_template_create(
        actor=admin,
        name="Offer",
        subject="Hi",
        html_body='<html><body><a href="https://shop.example/offer?a=1">Offer</a> '
        '<a href="https://docs.example/x">Docs</a></body></html>',
    )
    rules = {
        "op": "and",
        "rules": [{"field": "lifecycle_stage", "operator": "eq", "value": "reorder"}],
    }
    segment = segment_create(actor=admin, name="C", rules=rules)
    contact = contact_create(
        actor=admin, first_name="C", email="c@x.test", lifecycle_stage="reorder"
    )
    campaign = campaign_create(actor=admin, name="Offer", kind="email", email_template=template)
    campaign.segments.add(segment)
    sending.campaign_send(actor=admin, campaign=campaign)
    for first, last in sending.dispatch_ranges(campaign_id=campaign.pk):
        sending.chunk_send(campaign_id=campaign.pk, first_id=first, last_id=last)
    message = mailbox.wait_for("c@x.test")
    html = message.get_payload(1).get_payload(decode=True).decode()
    shop_click, docs_click = [
        "/" + u.split("/", 3)[3] for u in re.findall(r'href="([^"]+/c/[^"]+)"', html)
    ]
    client = Client(HTTP_HOST=host(alpha_site))

    to_shop = client.get(shop_click)
    to_docs = client.get(docs_click)

    target = urlsplit(to_shop["Location"])
    assert (target.netloc, target.path) == ("shop.example", "/offer")
    token = parse_qs(target.query)["crm_vt"][0]
    assert visitor_token_read(token, schema=alpha_site.schema_name) == contact.pk
    assert to_docs["Location"] == "https://docs.example/x"
