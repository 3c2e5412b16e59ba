"""The marketer's pages: building a form (and the errors a bad one gets), its page with the
hosted address and the embed snippet, the list, and who may open them in which tenant."""

import pytest
from django_tenants.utils import schema_context

from crm.users.models import Role, User
from crm.users.services import user_create
from leads.models import LeadForm, TerritoryOwner
from leads.services import submission_receive
from tests.conftest import PASSWORD
from tests.leads.conftest import ALPHA, BETA

pytestmark = pytest.mark.django_db


def _territories(*rows, extra=3):
    """The territory formset's fields: the given (territory, owner id) rows, then blank ones."""
    rows = [*rows, *([("", "")] * extra)]
    data = {
        "territory-TOTAL_FORMS": str(len(rows)),
        "territory-INITIAL_FORMS": "0",
        "territory-MIN_NUM_FORMS": "0",
        "territory-MAX_NUM_FORMS": "50",
    }
    for n, (territory, owner) in enumerate(rows):
        data[f"territory-{n}-territory"] = territory
        data[f"territory-{n}-owner"] = owner
    return data


def _builder(reps, fallback, **overrides):
    return {
        "name": "Spring webinar",
        "is_active": "on",
        "intro": "Save your seat.",
        "contact_fields": ["first_name", "company"],
        "required_fields": ["first_name"],
        "interests": "Analytics\nAI\n",
        "submit_label": "Register",
        "thank_you_message": "See you there!",
        "redirect_url": "",
        "assignment": "round_robin",
        "round_robin_users": [str(u.pk) for u in reps],
        "fallback_owner": str(fallback.pk),
        "follow_up_days": "2",
        **_territories(),
        **overrides,
    }


def test_a_marketer_builds_a_form_and_gets_its_hosted_page_and_embed_snippet(
    marketer_client, reps, fallback
):
    response = marketer_client.post("/forms/new/", _builder(reps, fallback), **ALPHA)

    form = LeadForm.objects.get()
    assert response.status_code == 302 and response.url == f"/forms/{form.pk}/"
    assert (form.contact_fields, form.interests) == (["first_name", "company"], ["Analytics", "AI"])
    assert set(form.round_robin_users.all()) == set(reps)
    page = marketer_client.get(f"/forms/{form.pk}/", **ALPHA).content.decode()
    hosted = f"http://alpha.localhost:8000/f/{form.key}/"
    assert f'href="{hosted}"' in page
    snippet = page.split('data-testid="embed-snippet">')[1].split("</textarea>")[0]
    assert f'data-crm-form="{hosted}api/"' in snippet.replace("&quot;", '"')
    assert f'action="{hosted}"' in snippet.replace("&quot;", '"')
    assert "http://alpha.localhost:8000/static/leads/embed.js" in snippet
    assert "&lt;input type=&quot;email&quot; name=&quot;email&quot;" in snippet
    assert "name=&quot;website&quot;" in snippet  # the honeypot


def test_a_bad_form_gets_field_errors_and_nothing_is_saved(marketer_client, reps, fallback):
    response = marketer_client.post(
        "/forms/new/",
        _builder(
            reps,
            fallback,
            redirect_url="javascript:alert(1)",
            required_fields=["phone"],
            interests="AI\n" + "x" * 51,
            round_robin_users=[],
            follow_up_days="365",
            fallback_owner="",
        ),
        **ALPHA,
    )

    assert response.status_code == 200
    assert set(response.context["form"].errors) == {
        "redirect_url",
        "required_fields",
        "interests",
        "round_robin_users",
        "follow_up_days",
        "fallback_owner",
    }
    assert not LeadForm.objects.exists()


def test_the_territory_rule_needs_the_territory_field_and_a_mapping(
    marketer_client, reps, fallback
):
    no_field = marketer_client.post(
        "/forms/new/", _builder(reps, fallback, assignment="territory"), **ALPHA
    )
    assert "contact_fields" in no_field.context["form"].errors

    fields = {"assignment": "territory", "contact_fields": ["first_name", "territory"]}
    no_map = marketer_client.post("/forms/new/", _builder(reps, fallback, **fields), **ALPHA)
    assert "assignment" in no_map.context["form"].errors
    twice = marketer_client.post(
        "/forms/new/",
        _builder(
            reps,
            fallback,
            **fields,
            **_territories(("Nordics", reps[0].pk), ("NORDICS", reps[1].pk), ("Iberia", "")),
        ),
        **ALPHA,
    )
    assert twice.context["territories"].non_form_errors()
    assert twice.context["territories"].forms[2].errors == {
        "owner": ["Choose who gets this territory's contacts."]
    }
    assert not LeadForm.objects.exists()

    made = marketer_client.post(
        "/forms/new/",
        _builder(
            reps,
            fallback,
            **fields,
            **_territories(("Nordics", reps[0].pk), ("Iberia", reps[1].pk)),
        ),
        **ALPHA,
    )
    assert made.status_code == 302
    assert dict(TerritoryOwner.objects.values_list("territory", "owner")) == {
        "Nordics": reps[0].pk,
        "Iberia": reps[1].pk,
    }


def test_editing_a_form_replaces_its_users_and_territories(marketer_client, make_form, reps):
    form = make_form(
        contact_fields=["territory"],
        required_fields=[],
        assignment="territory",
        territory_owners=[("Nordics", reps[0])],
    )
    page = marketer_client.get(f"/forms/{form.pk}/edit/", **ALPHA)
    assert page.context["territories"].initial == [{"territory": "Nordics", "owner": reps[0]}]

    response = marketer_client.post(
        f"/forms/{form.pk}/edit/",
        _builder(
            reps,
            form.fallback_owner,
            name="Renamed",
            contact_fields=["territory"],
            required_fields=[],
            assignment="territory",
            round_robin_users=[str(reps[1].pk)],
            **_territories(("Iberia", reps[1].pk)),
        ),
        **ALPHA,
    )

    assert response.status_code == 302
    form.refresh_from_db()
    assert form.name == "Renamed"
    assert list(form.round_robin_users.all()) == [reps[1]]
    assert list(form.territory_owners.values_list("territory", flat=True)) == ["Iberia"]


def test_the_list_counts_submissions_in_few_queries(
    marketer_client, make_form, django_assert_max_num_queries
):
    for n in range(3):
        form = make_form(name=f"Form {n}")
        submission_receive(form=form, data={"email": f"p{n}@x.test", "first_name": "P"})

    with django_assert_max_num_queries(8):
        page = marketer_client.get("/forms/", **ALPHA)

    assert page.status_code == 200
    assert [f.processed for f in page.context["page"]] == [1, 1, 1]


def test_the_campaign_list_leads_to_the_lead_forms(marketer_client):
    page = marketer_client.get("/campaigns/", **ALPHA).content.decode()

    assert 'href="/forms/"' in page


def test_form_pages_are_for_marketing_roles_and_never_cross_tenants(client, make_form, beta):
    form = make_form(name="<b>Launch</b>")
    user_create(email="s@alpha.test", password=PASSWORD, full_name="S", role=Role.SALES)
    client.post("/login/", {"username": "s@alpha.test", "password": PASSWORD}, **ALPHA)
    for path in ("/forms/", "/forms/new/", f"/forms/{form.pk}/", f"/forms/{form.pk}/edit/"):
        assert client.get(path, **ALPHA).status_code == 403
    client.post("/logout/", **ALPHA)
    client.post("/login/", {"username": "mk@alpha.test", "password": PASSWORD}, **ALPHA)
    assert b"&lt;b&gt;Launch&lt;/b&gt;" in client.get(f"/forms/{form.pk}/", **ALPHA).content

    with schema_context(beta.schema_name):
        beta_admin = User.objects.get(email="admin@beta.test")
    client.post("/logout/", **ALPHA)
    client.post("/login/", {"username": beta_admin.email, "password": PASSWORD}, **BETA)
    assert client.get(f"/forms/{form.pk}/", **BETA).status_code == 404
    assert client.get(f"/forms/{form.pk}/edit/", **BETA).status_code == 404
    assert b"Launch" not in client.get("/forms/", **BETA).content
