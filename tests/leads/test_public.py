"""The public side: the hosted page, the embed script's JSON endpoint with its CORS answers, and
what spam and bad input get (honeypot, rate limit, size limits, malformed posts: a clear 4xx
and nothing stored, never a 500); and that one tenant's form is not reachable on another's host."""

import json

import pytest
from django.test import Client
from django_tenants.utils import schema_context

from contacts.models import Contact, Task
from leads.intake import MAX_BODY_BYTES, SUBMISSIONS_PER_MINUTE
from leads.models import FormSubmission
from tests.leads.conftest import ALPHA, BETA

pytestmark = pytest.mark.django_db

ORIGIN = "https://www.customer-site.test"
GOOD = {"email": "ann@example.test", "first_name": "Ann", "interests": ["AI"]}


@pytest.fixture
def form(make_form):
    return make_form()


@pytest.fixture
def visitor(visitor_ip):
    """A browser on another site: CSRF enforced, as a real one would be."""
    client = Client(enforce_csrf_checks=True, REMOTE_ADDR=visitor_ip, **ALPHA)
    return client


def _api(form):
    return f"/f/{form.key}/api/"


def _post_json(client, form, payload, **extra):
    body = payload if isinstance(payload, (str, bytes)) else json.dumps(payload)
    return client.post(
        _api(form), body, content_type="application/json", HTTP_ORIGIN=ORIGIN, **extra
    )


def _nothing_stored():
    return not FormSubmission.objects.exists() and not Contact.objects.exists()


# --- the hosted page --------------------------------------------------------------------------


def test_the_hosted_page_shows_the_form_s_fields_and_can_be_framed(visitor, form):
    page = visitor.get(f"/f/{form.key}/")

    html = page.content.decode()
    assert page.status_code == 200
    assert "X-Frame-Options" not in page
    assert 'type="email" name="email"' in html
    assert 'name="first_name"' in html and 'name="company"' in html
    assert 'value="Analytics"' in html and 'value="AI"' in html
    assert 'name="website"' in html
    assert 'name="title"' not in html


def test_a_visitor_fills_the_hosted_page_from_another_site_and_sees_the_thanks(visitor, form):
    response = visitor.post(
        f"/f/{form.key}/",
        {**GOOD, "company": "Initech"},
        HTTP_ORIGIN=ORIGIN,
        HTTP_REFERER=f"{ORIGIN}/webinar",
    )

    assert response.status_code == 302
    assert response.url == f"/f/{form.key}/thanks/"
    thanks = visitor.get(response.url)
    assert b"Thank you! We will be in touch soon." in thanks.content
    submission = FormSubmission.objects.get()
    assert submission.data == {**GOOD, "company": "Initech"}
    assert submission.page_url == f"{ORIGIN}/webinar"
    contact = Contact.objects.get()
    assert (contact.first_name, contact.account.name) == ("Ann", "Initech")
    assert Task.objects.filter(contact=contact).exists()


def test_a_form_with_a_redirect_sends_the_visitor_there(visitor, make_form):
    form = make_form(redirect_url="https://www.customer-site.test/welcome")

    response = visitor.post(f"/f/{form.key}/", GOOD)

    assert response.status_code == 302
    assert response.url == "https://www.customer-site.test/welcome"


def test_the_hosted_page_shows_field_errors_with_a_400_and_stores_nothing(visitor, form):
    response = visitor.post(
        f"/f/{form.key}/",
        {"email": "not an address", "first_name": "x" * 101, "interests": ["Crypto"]},
    )

    assert response.status_code == 400
    errors = response.context["form"].errors
    assert set(errors) == {"email", "first_name", "interests"}
    assert b'class="field-error"' in response.content
    assert _nothing_stored()


def test_a_null_character_is_a_field_error_not_a_500(visitor, form):
    response = visitor.post(f"/f/{form.key}/", {**GOOD, "first_name": "A\x00nn"})

    assert response.status_code == 400
    assert "first_name" in response.context["form"].errors
    assert _nothing_stored()


def test_the_honeypot_gets_the_thanks_and_stores_nothing(visitor, form):
    hosted = visitor.post(f"/f/{form.key}/", {**GOOD, "website": "http://spam.test"})
    api = _post_json(visitor, form, {**GOOD, "website": "http://spam.test"})

    assert hosted.status_code == 302 and hosted.url == f"/f/{form.key}/thanks/"
    assert api.status_code == 200 and api.json()["ok"] is True
    assert _nothing_stored()


def test_oversized_posts_get_a_400_and_store_nothing(visitor, form):
    padding = "x" * MAX_BODY_BYTES
    hosted = visitor.post(f"/f/{form.key}/", {**GOOD, "last_name": padding})
    api = _post_json(visitor, form, {**GOOD, "last_name": padding})

    assert hosted.status_code == 400
    assert b"too large" in hosted.content
    assert api.status_code == 400
    assert "too large" in api.json()["error"]
    assert api["Access-Control-Allow-Origin"] == "*"
    assert _nothing_stored()


def test_under_double_opt_in_the_visitor_is_asked_to_confirm_and_nothing_reaches_the_crm(
    visitor, make_form, django_capture_on_commit_callbacks
):
    form = make_form(double_opt_in=True, redirect_url="https://www.customer-site.test/welcome")

    with django_capture_on_commit_callbacks() as queued:
        response = visitor.post(f"/f/{form.key}/", GOOD)

    assert response.status_code == 302
    assert response.url == f"/f/{form.key}/thanks/?confirm=1"
    assert b"Please confirm your e-mail address" in visitor.get(response.url).content
    assert len(queued) == 1
    assert FormSubmission.objects.get().status == FormSubmission.Status.AWAITING_CONFIRMATION
    assert not Contact.objects.exists()


def test_a_hosted_post_that_is_not_a_form_gets_a_400(visitor, form):
    response = visitor.post(f"/f/{form.key}/", json.dumps(GOOD), content_type="application/json")

    assert response.status_code == 400
    assert b"HTML form post" in response.content
    assert _nothing_stored()


def test_unknown_and_inactive_forms_are_not_found(visitor, make_form):
    inactive = make_form(is_active=False)

    assert visitor.get(f"/f/{inactive.key}/").status_code == 404
    assert visitor.post(f"/f/{inactive.key}/", GOOD).status_code == 404
    missing = visitor.get("/f/00000000-0000-0000-0000-000000000000/api/")
    assert missing.status_code == 404
    assert missing.json()["error"].startswith("There is no such form")
    assert missing["Access-Control-Allow-Origin"] == "*"
    assert _nothing_stored()


# --- the embed script's endpoint ----------------------------------------------------------------


def test_the_preflight_allows_any_origin_to_post_json(visitor, form):
    response = visitor.options(
        _api(form),
        HTTP_ORIGIN=ORIGIN,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="content-type",
    )

    assert response.status_code == 204
    assert response["Access-Control-Allow-Origin"] == "*"
    assert "POST" in response["Access-Control-Allow-Methods"]
    assert response["Access-Control-Allow-Headers"].lower() == "content-type"


def test_the_endpoint_describes_the_form_for_the_script(visitor, make_form, reps):
    form = make_form(
        contact_fields=["first_name", "phone", "territory"],
        assignment="territory",
        territory_owners=[("Nordics", reps[0]), ("Iberia", reps[1])],
    )

    response = visitor.get(_api(form), HTTP_ORIGIN=ORIGIN)

    assert response["Access-Control-Allow-Origin"] == "*"
    body = response.json()
    assert (body["name"], body["submit_label"], body["honeypot"]) == (
        "Spring webinar",
        "Send",
        "website",
    )
    fields = {f["name"]: f for f in body["fields"]}
    assert list(fields) == ["email", "first_name", "phone", "territory", "interests"]
    assert fields["email"] == {
        "name": "email",
        "label": "E-mail",
        "required": True,
        "type": "email",
        "max_length": 254,
        "autocomplete": "email",
    }
    assert fields["phone"]["type"] == "tel"
    assert fields["territory"]["choices"] == ["Iberia", "Nordics"]
    assert fields["interests"]["choices"] == ["Analytics", "AI"]


def test_a_json_submission_is_stored_and_answered_with_cors(visitor, form):
    response = _post_json(visitor, form, {**GOOD, "website": ""}, HTTP_USER_AGENT="Firefox")

    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == "*"
    assert response.json() == {
        "ok": True,
        "confirm": False,
        "message": "Thank you! We will be in touch soon.",
        "redirect": None,
    }
    submission = FormSubmission.objects.get()
    assert (submission.user_agent, submission.page_url) == ("Firefox", ORIGIN)
    assert Contact.objects.get().interests == ["AI"]


@pytest.mark.parametrize(
    ("body", "content_type", "status", "problem"),
    [
        ("{not json", "application/json", 400, "not valid JSON"),
        (b"\xff\xfe", "application/json", 400, "not valid JSON"),
        ("[" * 5000 + "]" * 5000, "application/json", 400, "not valid JSON"),
        ('["ann@example.test"]', "application/json", 400, "malformed"),
        ('{"email": 5}', "application/json", 400, "malformed"),
        ('{"email": "a@b.test", "interests": "AI"}', "application/json", 400, "malformed"),
        ('{"email": "a@b.test", "e-mail": "x"}', "application/json", 400, "malformed"),
        ("email=a%40b.test", "application/x-www-form-urlencoded", 415, "Content-Type"),
        ('{"email": "nope", "first_name": ""}', "application/json", 400, "need attention"),
    ],
)
def test_malformed_json_gets_a_4xx_naming_the_problem_and_stores_nothing(
    visitor, form, body, content_type, status, problem
):
    response = visitor.post(_api(form), body, content_type=content_type, HTTP_ORIGIN=ORIGIN)

    assert response.status_code == status
    assert problem in response.json()["error"]
    assert response["Access-Control-Allow-Origin"] == "*"
    assert _nothing_stored()


def test_json_field_errors_name_each_field(visitor, form):
    response = _post_json(visitor, form, {"email": "nope", "e-mail": "x"})
    assert response.json()["errors"] == {"e-mail": ["This form has no such field."]}

    response = _post_json(visitor, form, {"email": "nope", "interests": ["Crypto"]})
    errors = response.json()["errors"]
    assert set(errors) == {"email", "first_name", "interests"}
    assert errors["email"] == ["Enter a valid email address."]


def test_other_methods_get_a_405_in_json(visitor, form):
    response = visitor.put(_api(form), "{}", content_type="application/json")

    assert response.status_code == 405
    assert "POST" in response["Allow"]
    assert "error" in response.json()


def test_posts_from_one_address_are_rate_limited_per_tenant(form, visitor_ip, beta):
    from leads.services import lead_form_create

    alpha_visitor = Client(REMOTE_ADDR=visitor_ip, **ALPHA)
    answers = [
        _post_json(alpha_visitor, form, {**GOOD, "email": f"p{n}@example.test"}).status_code
        for n in range(SUBMISSIONS_PER_MINUTE + 1)
    ]
    hosted = alpha_visitor.post(f"/f/{form.key}/", GOOD)
    limited = _post_json(alpha_visitor, form, GOOD)

    assert answers == [200] * SUBMISSIONS_PER_MINUTE + [429]
    assert hosted.status_code == 429 and b"Too many submissions" in hosted.content
    assert limited.status_code == 429
    assert 0 < int(limited["Retry-After"]) <= 60
    assert "Too many submissions" in limited.json()["error"]
    assert FormSubmission.objects.count() == SUBMISSIONS_PER_MINUTE

    other_address = Client(REMOTE_ADDR="192.0.2.77", **ALPHA)
    assert _post_json(other_address, form, GOOD).status_code == 200
    with schema_context(beta.schema_name):
        from crm.users.models import User

        beta_admin = User.objects.get()
        beta_form = lead_form_create(actor=beta_admin, name="Beta form", fallback_owner=beta_admin)
    beta_visitor = Client(REMOTE_ADDR=visitor_ip, **BETA)
    assert _post_json(beta_visitor, beta_form, {"email": GOOD["email"]}).status_code == 200


# --- tenants ----------------------------------------------------------------------------------


def test_a_form_of_alpha_is_not_reachable_on_beta_s_host_and_data_stays_in_alpha(
    form, visitor_ip, alpha, beta
):
    on_beta = Client(REMOTE_ADDR=visitor_ip, **BETA)

    assert on_beta.get(f"/f/{form.key}/").status_code == 404
    assert on_beta.post(f"/f/{form.key}/", GOOD).status_code == 404
    answer = _post_json(on_beta, form, GOOD)
    assert answer.status_code == 404 and "error" in answer.json()
    with schema_context(alpha.schema_name):
        assert _nothing_stored()

    on_alpha = Client(REMOTE_ADDR=visitor_ip, **ALPHA)
    assert _post_json(on_alpha, form, GOOD).status_code == 200
    # Each request leaves the connection in its host's schema: name the schema to read.
    with schema_context(alpha.schema_name):
        assert Contact.objects.filter(email=GOOD["email"]).count() == 1
        assert FormSubmission.objects.count() == 1
    with schema_context(beta.schema_name):
        assert not Contact.objects.filter(email=GOOD["email"]).exists()
        assert not FormSubmission.objects.exists()
