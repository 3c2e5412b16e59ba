"""The marketer's web personalization pages and the public endpoint the tenant's pages call."""

import json
import uuid
from datetime import UTC, datetime

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django_tenants.utils import schema_context

from campaigns.segments import segment_create
from contacts import services as contact_services
from crm.users.models import Role, User
from crm.users.services import user_create
from tests.conftest import PASSWORD
from tracking import personalization
from tracking.models import PersonalizationBlock, Visitor
from tracking.personalization_views import BlockForm
from tracking.scoring import tracking_settings

pytestmark = pytest.mark.django_db

ALPHA = {"HTTP_HOST": "alpha.localhost"}
BETA = {"HTTP_HOST": "beta.localhost"}
SITE = "https://www.alpha.example"
T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
PAGES = "/marketing/personalization/"


@pytest.fixture(autouse=True)
def no_cached_blocks(alpha, beta):
    for tenant in (alpha, beta):
        with schema_context(tenant.schema_name):
            personalization.blocks_forget()


@pytest.fixture
def marketer(in_alpha):
    return user_create(
        email="mia@alpha.test", password=PASSWORD, full_name="Mia", role=Role.MARKETING
    )


def logged_in(user, host=ALPHA) -> Client:
    client = Client()
    assert client.post("/login/", {"username": user.email, "password": PASSWORD}, **host)
    return client


def form_data(**changes) -> dict:
    data = {
        "slot": "hero",
        "name": "Evaluators",
        "priority": "10",
        "segment": "",
        "interests": "",
        "stages": ["evaluation"],
        "score_min": "",
        "score_max": "",
        "content": "<h2>Book a demo</h2>",
    }
    data.update(changes)
    return data


def block(actor, name, slot="hero", **rules):
    return personalization.block_create(
        actor=actor, slot=slot, name=name, rules=rules, content=f"<p>{name}</p>"
    )


# --- the marketer's pages ---------------------------------------------------------------------


def test_a_marketer_creates_edits_lists_and_deletes_blocks(marketer, django_assert_max_num_queries):
    vip = segment_create(actor=marketer, name="VIP", rules={"op": "and", "rules": []})
    client = logged_in(marketer)
    new = client.get(f"{PAGES}new/?slot=sidebar", **ALPHA)
    assert new.context["form"]["slot"].value() == "sidebar"

    created = client.post(
        f"{PAGES}new/",
        form_data(segment=str(vip.pk), interests="ai, ml", score_min="10", score_max="80"),
        **ALPHA,
    )

    assert created.status_code == 302
    saved = PersonalizationBlock.objects.get()
    assert saved.rules == {
        "segment": vip.pk,
        "interests": ["ai", "ml"],
        "stages": ["evaluation"],
        "score_min": 10.0,
        "score_max": 80.0,
    }
    assert saved.content == "<h2>Book a demo</h2>" and saved.priority == 10
    edit = client.get(f"{PAGES}{saved.pk}/edit/", **ALPHA)
    assert edit.context["form"]["interests"].value() == "ai, ml"
    edited = client.post(f"{PAGES}{saved.pk}/edit/", form_data(name="Everyone", stages=[]), **ALPHA)
    assert edited.status_code == 302
    saved.refresh_from_db()
    assert saved.name == "Everyone" and saved.rules == {}
    block(marketer, "Buyers", slot="sidebar", stages=["purchase"], segment=vip.pk)
    block(marketer, "Fans", slot="sidebar", interests=["ai"])

    with django_assert_max_num_queries(9):
        listing = client.get(PAGES, **ALPHA).content.decode()

    assert "<strong>Default</strong>: everyone else" in listing
    assert "In segment VIP; Life-cycle stage Purchase" in listing
    assert "Interested in ai" in listing
    assert client.post(f"{PAGES}{saved.pk}/delete/", **ALPHA).status_code == 302
    assert not PersonalizationBlock.objects.filter(pk=saved.pk).exists()
    assert client.get(f"{PAGES}{saved.pk}/delete/", **ALPHA).status_code == 405


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"score_min": "60", "score_max": "30"}, "score_max"),
        ({"score_min": "-5"}, "score_min"),
        ({"score_max": "inf"}, "score_max"),
        ({"segment": "999999"}, "segment"),
        ({"slot": "hero banner"}, "slot"),
        ({"slot": ""}, "slot"),
        ({"stages": ["dreaming"]}, "stages"),
        ({"interests": ",".join(f"i{n}" for n in range(21))}, "interests"),
        ({"content": ""}, "content"),
        ({"priority": "-1"}, "priority"),
    ],
)
def test_bad_input_gets_field_errors_and_saves_nothing(marketer, changes, field):
    client = logged_in(marketer)

    page = client.post(f"{PAGES}new/", form_data(**changes), **ALPHA)

    assert page.status_code == 200
    assert list(page.context["form"].errors) == [field]
    assert 'class="field-error"' in page.content.decode()
    assert not PersonalizationBlock.objects.exists()


def test_a_segment_deleted_while_the_form_was_open_is_a_field_error(marketer):
    """The form lists the segments when it is shown; the service checks again on save."""
    vip = segment_create(actor=marketer, name="VIP", rules={"op": "and", "rules": []})
    form = BlockForm(form_data(segment=str(vip.pk)))
    assert form.is_valid()
    vip.delete()

    with pytest.raises(ValidationError) as refused:
        personalization.block_create(actor=marketer, **form.service_args())
    assert list(refused.value.message_dict) == ["segment"]


def test_salespeople_may_not_manage_blocks(marketer):
    saved = block(marketer, "Everyone")
    sales = user_create(email="sal@alpha.test", password=PASSWORD, full_name="Sal", role=Role.SALES)
    client = logged_in(sales)

    for url in [PAGES, f"{PAGES}new/", f"{PAGES}{saved.pk}/edit/", f"{PAGES}preview/"]:
        assert client.get(url, **ALPHA).status_code == 403
    assert client.post(f"{PAGES}{saved.pk}/delete/", **ALPHA).status_code == 403
    assert PersonalizationBlock.objects.filter(pk=saved.pk).exists()


def test_another_tenants_blocks_and_contacts_are_not_there(marketer, alpha, beta):
    saved = block(marketer, "Alpha secret")
    contact = contact_services.contact_create(actor=marketer, first_name="Alma")
    with schema_context(beta.schema_name):
        beta_marketer = user_create(
            email="mia@beta.test", password=PASSWORD, full_name="Mia", role=Role.MARKETING
        )
    client = logged_in(beta_marketer, host=BETA)

    assert client.get(f"{PAGES}{saved.pk}/edit/", **BETA).status_code == 404
    assert client.post(f"{PAGES}{saved.pk}/delete/", **BETA).status_code == 404
    assert client.get(f"{PAGES}preview/?contact={contact.pk}", **BETA).status_code == 404
    assert "Alpha secret" not in client.get(PAGES, **BETA).content.decode()
    assert "Alpha secret" not in client.get(f"{PAGES}preview/", **BETA).content.decode()
    with schema_context(alpha.schema_name):
        assert PersonalizationBlock.objects.filter(pk=saved.pk).exists()


def test_the_preview_shows_per_slot_the_contacts_block_and_why(marketer):
    block(marketer, "Everyone")
    block(marketer, "Buyers", stages=["purchase"])
    personalization.block_create(
        actor=marketer,
        slot="hero",
        name="AI fans",
        rules={"interests": ["ai"]},
        content='<p class="x">AI & "you"</p><script>parent.stolen = 1</script>',
        priority=150,
    )
    block(marketer, "Sidebar for buyers", slot="sidebar", stages=["purchase"])
    fan = contact_services.contact_create(
        actor=marketer, first_name="Ada", last_name="Fan", email="ada@x.test", interests=["ai"]
    )
    client = logged_in(marketer)

    found = client.get(f"{PAGES}preview/?q=fan", **ALPHA).content.decode()
    assert f"?contact={fan.pk}" in found
    anonymous = client.get(f"{PAGES}preview/", **ALPHA)
    assert [(c.slot, c.block and c.block.name) for c in anonymous.context["choices"]] == [
        ("hero", "Everyone"),
        ("sidebar", None),
    ]

    page = client.get(f"{PAGES}preview/?contact={fan.pk}", **ALPHA)

    hero, sidebar = page.context["choices"]
    assert hero.block.name == "AI fans" and hero.reasons == ("Interested in ai",)
    assert [(b.name, why) for b, why in hero.passed_over] == [
        ("Buyers", "Life-cycle stage is Awareness, not Purchase")
    ]
    assert sidebar.block is None
    body = page.content.decode()
    assert "Interested in ai" in body and "the page keeps its own content" in body
    # The marketer's HTML is shown only inside a sandboxed frame, as an escaped attribute.
    assert (
        'sandbox srcdoc="&lt;p class=&quot;x&quot;&gt;AI &amp; &quot;you&quot;&lt;/p&gt;'
        "&lt;script&gt;" in body
    )
    assert "<script>parent.stolen" not in body
    assert client.get(f"{PAGES}preview/?contact=99999999", **ALPHA).status_code == 404


# --- the public endpoint ----------------------------------------------------------------------


@pytest.fixture
def site(marketer):
    """alpha's site with a default and a block for AI fans, and a visitor known as a fan."""
    settings = tracking_settings()
    settings.site_origins = [SITE]
    settings.save()
    block(marketer, "Everyone")
    block(marketer, "AI fans", interests=["ai"])
    block(marketer, "Side", slot="sidebar")
    fan = contact_services.contact_create(
        actor=marketer, first_name="Ada", email="ada@x.test", interests=["ai"]
    )
    visitor = Visitor.objects.create(
        id=uuid.uuid4(), contact=fan, first_seen_at=T0, last_seen_at=T0
    )
    return visitor.id


def ask(client, query, host=ALPHA, **headers):
    return client.get(f"/t/personalize?{query}", **host, **headers)


def test_a_known_visitor_gets_their_blocks_and_an_unknown_one_the_defaults(client, site):
    known = ask(client, f"vid={site}&slots=hero,sidebar,footer", HTTP_ORIGIN=SITE)
    unknown = ask(client, f"vid={uuid.uuid4()}&slots=hero", HTTP_ORIGIN=SITE)
    without_id = ask(client, "slots=hero")

    assert known.status_code == 200
    assert known.json() == {"hero": "<p>AI fans</p>", "sidebar": "<p>Side</p>"}
    assert known["Access-Control-Allow-Origin"] == SITE
    assert known["Cache-Control"] == "no-store" and known["Vary"] == "Origin"
    assert unknown.json() == {"hero": "<p>Everyone</p>"}
    assert without_id.json() == {"hero": "<p>Everyone</p>"}
    assert "Access-Control-Allow-Origin" not in without_id


def test_only_the_sites_registered_origins_may_ask(client, site):
    refused = ask(client, f"vid={site}&slots=hero", HTTP_ORIGIN="https://evil.example")
    preflight = client.options("/t/personalize?slots=hero", HTTP_ORIGIN=SITE, **ALPHA)

    assert refused.status_code == 403 and "error" in refused.json()
    assert "Access-Control-Allow-Origin" not in refused
    assert "AI fans" not in refused.content.decode()
    assert preflight.status_code == 204
    assert preflight["Access-Control-Allow-Origin"] == SITE
    assert preflight["Access-Control-Allow-Methods"] == "GET"


@pytest.mark.parametrize(
    "query",
    [
        "vid=not-a-uuid&slots=hero",
        "vid={12345678-1234-5678-1234-567812345678}&slots=hero",
        "vid=" + "a" * 5000 + "&slots=hero",
        "slots=",
        "",
        "slots=hero%20banner",
        "slots=" + ",".join(f"s{n}" for n in range(21)),
        "slots=" + "x" * 5000,
    ],
)
def test_bad_input_gets_a_400_with_a_json_reason(client, site, query):
    answer = ask(client, query, HTTP_ORIGIN=SITE)

    assert answer.status_code == 400
    assert set(answer.json()) == {"error"}
    # The site's own script may read why.
    assert answer["Access-Control-Allow-Origin"] == SITE


def test_other_methods_get_a_405_with_a_json_reason(client, site):
    answer = client.post(f"/t/personalize?vid={site}&slots=hero", **ALPHA)

    assert answer.status_code == 405 and "error" in json.loads(answer.content)


def test_beta_never_serves_alphas_blocks_or_knows_alphas_visitors(client, site, beta):
    with schema_context(beta.schema_name):
        block(User.objects.get(email="admin@beta.test"), "Beta default")

    from_beta = ask(client, f"vid={site}&slots=hero,sidebar", host=BETA)
    from_alpha_site = ask(client, f"vid={site}&slots=hero", host=BETA, HTTP_ORIGIN=SITE)

    assert from_beta.json() == {"hero": "<p>Beta default</p>"}
    # alpha's site origin is alpha's: beta's host refuses it.
    assert from_alpha_site.status_code == 403


def test_the_endpoint_answers_in_a_few_queries(client, site, django_assert_max_num_queries):
    ask(client, "slots=hero")  # the blocks are now cached

    # Tenant lookup and two search_path settings, then the site's settings, and the visitor with
    # contact and score in one.
    with django_assert_max_num_queries(5):
        assert ask(client, f"vid={site}&slots=hero").json() == {"hero": "<p>AI fans</p>"}


def test_the_campaign_list_links_to_web_personalization_for_marketers(marketer):
    page = logged_in(marketer).get("/campaigns/", **ALPHA).content.decode()

    assert f'href="{PAGES}">Web personalization</a>' in page
