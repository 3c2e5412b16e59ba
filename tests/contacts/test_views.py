from datetime import timedelta
from urllib.parse import quote

import pytest
from django.utils import timezone

from contacts import services
from contacts.models import Activity, Contact, Task
from crm.users.models import Role, User
from crm.users.services import user_create
from tests.conftest import PASSWORD
from tracking.models import TimelineEntry

pytestmark = pytest.mark.django_db

ALPHA = {"HTTP_HOST": "alpha.localhost"}


@pytest.fixture
def sales_client(client, sales):
    client.post("/login/", {"username": sales.email, "password": PASSWORD}, **ALPHA)
    return client


@pytest.fixture
def contact(sales):
    account = services.account_create(actor=sales, name="Initech")
    return services.contact_create(
        actor=sales,
        first_name="Peter",
        last_name="Gibbons",
        email="peter@initech.test",
        account=account,
    )


def test_the_360_page_shows_everything_newest_first_and_filters_by_kind(
    sales_client, sales, contact, django_assert_max_num_queries
):
    services.activity_log(actor=sales, contact=contact, kind="call", subject="First call")
    services.task_create(actor=sales, contact=contact, title="Send the quote")
    services.activity_log(actor=sales, contact=contact, kind="meeting", subject="Demo on site")

    with django_assert_max_num_queries(16):
        page = sales_client.get(f"/contacts/{contact.pk}/", **ALPHA)

    summaries = [e.summary for e in page.context["timeline"]]
    assert summaries[:3] == [
        "Meeting: Demo on site",
        "Task for Sally Sales: Send the quote",
        "Call: First call",
    ]
    assert [t.title for t in page.context["tasks"]] == ["Send the quote"]
    assert '<span class="entry-kind">Meeting</span>' in page.content.decode()
    # The filter offers the kinds this contact's timeline has, and no others.
    kinds = {e.kind for e in TimelineEntry.objects.filter(contact=contact)}
    assert {"call", "meeting", "task"} <= kinds
    assert [value for value, _ in page.context["kinds"]] == [
        value for value in TimelineEntry.Kind.values if value in kinds
    ]
    calls = sales_client.get(f"/contacts/{contact.pk}/?kind=call", **ALPHA)
    assert [e.summary for e in calls.context["timeline"]] == ["Call: First call"]
    unknown = sales_client.get(f"/contacts/{contact.pk}/?kind=<script>", **ALPHA)
    assert unknown.status_code == 200 and len(unknown.context["timeline"]) == len(summaries)


def test_the_timeline_pages_back_to_the_oldest_entry(sales_client, contact):
    """50 entries a page, newest first, with a link to the older ones that keeps the kind."""
    now = timezone.now()
    TimelineEntry.objects.bulk_create(
        TimelineEntry(
            contact=contact,
            kind="call" if n % 2 else "note",
            occurred_at=now - timedelta(hours=n),
            summary=f"Entry {n}",
        )
        for n in range(1, 121)
    )
    url = f"/contacts/{contact.pk}/"

    def entries(page):
        return [e.summary for e in page.context["timeline"] if e.summary.startswith("Entry")]

    first = sales_client.get(url, **ALPHA)
    assert entries(first) == [f"Entry {n}" for n in range(1, 121)][: len(entries(first))]
    seen = entries(first)
    page = first
    while page.context["timeline_older"]:
        link = f"older={quote(page.context['timeline_older'])}"
        assert link in page.content.decode()
        page = sales_client.get(f"{url}?older={page.context['timeline_older']}", **ALPHA)
        assert "« Newest" in page.content.decode()
        seen += entries(page)
    assert seen == [f"Entry {n}" for n in range(1, 121)]
    assert len(first.context["timeline"]) == 50 and len(entries(page)) < 50

    calls = sales_client.get(f"{url}?kind=call", **ALPHA)
    assert f"kind=call&amp;older={quote(calls.context['timeline_older'])}" in calls.content.decode()
    older_calls = sales_client.get(
        f"{url}?kind=call&older={calls.context['timeline_older']}", **ALPHA
    )
    assert entries(older_calls) == [f"Entry {n}" for n in range(101, 121, 2)]

    forged = sales_client.get(f"{url}?older=not-a-cursor", **ALPHA, follow=True)
    assert forged.status_code == 200
    assert entries(forged) == entries(first)
    assert "here are the newest" in forged.content.decode()


def test_quick_actions_log_a_call_and_add_a_task(sales_client, sales, contact):
    logged = sales_client.post(
        f"/contacts/{contact.pk}/activities/",
        {"kind": "call", "subject": "Follow-up", "outcome": "Interested", "notes": ""},
        **ALPHA,
    )
    tasked = sales_client.post(
        f"/contacts/{contact.pk}/tasks/",
        {"title": "Book a demo", "due_on": "2026-12-01", "priority": "3"},
        **ALPHA,
    )

    assert logged.status_code == tasked.status_code == 302
    assert Activity.objects.get().subject == "Follow-up"
    task = Task.objects.get()
    assert (task.title, task.assignee, task.priority) == ("Book a demo", sales, 3)


def test_a_bad_quick_action_reports_the_field_and_saves_nothing(sales_client, contact):
    response = sales_client.post(
        f"/contacts/{contact.pk}/tasks/",
        {"title": "", "due_on": "not a date"},
        **ALPHA,
        follow=True,
    )

    text = response.content.decode()
    assert "Title: This field is required." in text
    assert "Enter a valid date." in text
    assert not Task.objects.exists()


def test_creating_a_contact_with_bad_input_shows_field_errors(sales_client):
    response = sales_client.post(
        "/contacts/new/",
        {
            "first_name": "",
            "email": "nope",
            "customer_type": "prospect",
            "lifecycle_stage": "awareness",
        },
        **ALPHA,
    )

    assert response.status_code == 200
    assert set(response.context["form"].errors) >= {"first_name", "email"}
    assert not Contact.objects.exists()


def test_creating_and_editing_a_contact(sales_client, sales):
    created = sales_client.post(
        "/contacts/new/",
        {
            "first_name": "Joanna",
            "last_name": "Smith",
            "email": "jo@chotchkies.test",
            "customer_type": "prospect",
            "lifecycle_stage": "awareness",
            "interests": "flair, pins",
        },
        **ALPHA,
    )
    contact = Contact.objects.get()
    assert created.url == f"/contacts/{contact.pk}/"
    assert contact.owner == sales and contact.interests == ["flair", "pins"]

    sales_client.post(
        f"/contacts/{contact.pk}/edit/",
        {
            "first_name": "Joanna",
            "last_name": "Smith",
            "email": "jo@chotchkies.test",
            "customer_type": "customer",
            "lifecycle_stage": "purchase",
            "owner": sales.pk,
        },
        **ALPHA,
    )

    contact.refresh_from_db()
    assert contact.lifecycle_stage == "purchase"
    page = sales_client.get(f"/contacts/{contact.pk}/", **ALPHA)
    assert "lifecycle_stage" in page.context["audit"][0].changes


def test_names_and_notes_with_script_show_as_text(sales_client, sales):
    contact = services.contact_create(actor=sales, first_name="<script>alert(1)</script>")
    services.activity_log(
        actor=sales,
        contact=contact,
        kind="note",
        subject="<img src=x onerror=alert(2)>",
        notes="<b>bold</b>",
    )

    html = sales_client.get(f"/contacts/{contact.pk}/", **ALPHA).content.decode()

    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img src=x" not in html and "<b>bold</b>" not in html


def test_someone_elses_contact_is_404_on_every_page(client, contact, in_alpha):
    rival = user_create(
        email="rival@alpha.test", password=PASSWORD, full_name="Rival", role=Role.SALES
    )
    client.post("/login/", {"username": rival.email, "password": PASSWORD}, **ALPHA)
    task = services.task_create(actor=contact.owner, contact=contact, title="Private")

    assert client.get(f"/contacts/{contact.pk}/", **ALPHA).status_code == 404
    assert client.get(f"/contacts/{contact.pk}/edit/", **ALPHA).status_code == 404
    assert client.get(f"/accounts/{contact.account_id}/", **ALPHA).status_code == 404
    assert (
        client.post(
            f"/contacts/{contact.pk}/activities/", {"kind": "call", "subject": "x"}, **ALPHA
        ).status_code
        == 404
    )
    assert client.post(f"/tasks/{task.pk}/done/", **ALPHA).status_code == 404
    assert client.get("/contacts/999999/", **ALPHA).status_code == 404
    task.refresh_from_db()
    assert not task.is_done and not Activity.objects.exists()


def test_the_account_page_shows_the_history_of_all_its_contacts(sales_client, sales, contact):
    colleague = services.contact_create(actor=sales, first_name="Michael", account=contact.account)
    services.activity_log(actor=sales, contact=contact, kind="call", subject="Peter's call")
    services.activity_log(actor=sales, contact=colleague, kind="email", subject="Michael's mail")

    page = sales_client.get(f"/accounts/{contact.account_id}/", **ALPHA)

    summaries = {e.summary for e in page.context["timeline"]}
    assert {"Call: Peter's call", "E-mail: Michael's mail"} <= summaries
    assert {c.first_name for c in page.context["contacts"]} == {"Peter", "Michael"}
    assert TimelineEntry.objects.filter(account=contact.account).count() >= 4
    assert User.objects.count() >= 2
    kinds = {e.kind for e in TimelineEntry.objects.filter(account=contact.account)}
    assert [value for value, _ in page.context["kinds"]] == [
        value for value in TimelineEntry.Kind.values if value in kinds
    ]
    assert "email" in kinds and "meeting" not in kinds


@pytest.mark.parametrize("query", ["gibb", "PETER@init", "initech", "Peter Gib", "Gibons"])
def test_search_finds_a_contact_by_name_email_company_or_a_typo(sales_client, contact, query):
    response = sales_client.get("/search/", {"q": query}, HTTP_HX_REQUEST="true", **ALPHA)

    assert response.templates[0].name == "contacts/_search_results.html"
    assert [c.pk for c in response.context["results"].contacts] == [contact.pk]


def test_search_finds_accounts_and_opportunities_too(sales_client, sales, contact):
    from crm.demo import pipeline_ensure
    from opportunities.services import opportunity_create

    deal = opportunity_create(
        actor=sales,
        name="Initech renewal",
        account=contact.account,
        stage=pipeline_ensure().stages.first(),
    )

    page = sales_client.get("/search/", {"q": "initech"}, **ALPHA)

    results = page.context["results"]
    assert [a.name for a in results.accounts] == ["Initech"]
    assert [o.name for o in results.opportunities] == ["Initech renewal"]
    assert f'<a href="/opportunities/{deal.pk}/">Initech renewal</a>' in page.content.decode()


def test_search_never_shows_what_the_user_may_not_see(client, contact, in_alpha):
    rival = user_create(
        email="rival@alpha.test", password=PASSWORD, full_name="Rival", role=Role.SALES
    )
    client.post("/login/", {"username": rival.email, "password": PASSWORD}, **ALPHA)

    results = client.get("/search/", {"q": "gibbons"}, **ALPHA).context["results"]

    assert not results


def test_a_one_letter_or_hostile_query_is_harmless(sales_client, contact):
    assert not sales_client.get("/search/", {"q": "g"}, **ALPHA).context["results"]
    odd = sales_client.get("/search/", {"q": "%' OR 1=1 --"}, **ALPHA)
    assert odd.status_code == 200 and not odd.context["results"]


def test_my_day_lists_my_open_tasks_by_due_date_and_activity_on_my_accounts(
    sales_client, sales, contact
):
    from datetime import timedelta

    from django.utils import timezone

    today = timezone.localdate()
    for title, due in [
        ("Late", today - timedelta(days=2)),
        ("Now", today),
        ("Soon", today + timedelta(days=3)),
        ("Someday", None),
        ("Far", today + timedelta(days=30)),
    ]:
        services.task_create(actor=sales, contact=contact, title=title, due_on=due)
    done = services.task_create(actor=sales, contact=contact, title="Done already", due_on=today)
    services.task_set_done(actor=sales, task=done, done=True)
    services.activity_log(actor=sales, contact=contact, kind="call", subject="Checked in")
    noon = timezone.make_aware(
        timezone.datetime.combine(today, timezone.datetime.min.time())
    ) + timedelta(hours=12)
    services.appointment_create(
        actor=sales,
        title="Lunch with Peter",
        starts_at=noon,
        ends_at=noon + timedelta(hours=1),
        contacts=[contact],
    )
    services.appointment_create(
        actor=sales,
        title="Next week",
        starts_at=noon + timedelta(days=7),
        ends_at=noon + timedelta(days=7, hours=1),
    )

    day = sales_client.get("/", **ALPHA).context["day"]

    assert [t.title for t in day.overdue] == ["Late"]
    assert [t.title for t in day.today] == ["Now"]
    assert [t.title for t in day.upcoming] == ["Soon", "Someday"]
    assert [a.title for a in day.appointments] == ["Lunch with Peter"]
    assert "Call: Checked in" in [e.summary for e in day.recent]


def test_ticking_a_task_off_never_redirects_off_site(sales_client, sales, contact):
    task = services.task_create(actor=sales, contact=contact, title="Call back")

    response = sales_client.post(
        f"/tasks/{task.pk}/done/", {"next": "https://evil.example/"}, **ALPHA
    )

    assert response.url == "/"
    task.refresh_from_db()
    assert task.is_done


def test_writing_to_a_contact_logs_it_and_queues_the_send(
    sales_client, contact, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as queued:
        sales_client.post(
            f"/contacts/{contact.pk}/email/", {"subject": "Hello", "body": "Hi Peter"}, **ALPHA
        )

    activity = Activity.objects.get()
    assert (activity.kind, activity.outcome, activity.subject) == ("email", "queued", "Hello")
    assert len(queued) == 1
    assert TimelineEntry.objects.filter(contact=contact, kind="email").exists()


def test_a_contact_who_asked_not_to_be_emailed_is_not(sales_client, sales, contact):
    services.contact_update(actor=sales, contact=contact, do_not_email=True)

    response = sales_client.post(
        f"/contacts/{contact.pk}/email/", {"subject": "Hello", "body": "Hi"}, **ALPHA, follow=True
    )

    assert "asked not to be e-mailed" in response.content.decode()
    assert not Activity.objects.exists()


NEW_CONTACT = {"customer_type": "prospect", "lifecycle_stage": "awareness"}


def test_creating_a_contact_with_a_known_email_warns_first(sales_client, contact):
    data = {**NEW_CONTACT, "first_name": "P.", "last_name": "G.", "email": "PETER@initech.test"}

    warned = sales_client.post("/contacts/new/", data, **ALPHA)

    assert [d.pk for d in warned.context["duplicates"].visible] == [contact.pk]
    assert "Create anyway" in warned.content.decode()
    assert Contact.objects.count() == 1
    created = sales_client.post("/contacts/new/", {**data, "confirm": "1"}, **ALPHA)
    assert created.status_code == 302 and Contact.objects.count() == 2


def test_a_similar_name_at_the_same_company_warns_too(sales_client, contact):
    data = {
        **NEW_CONTACT,
        "first_name": "Peter",
        "last_name": "Gibons",
        "account": contact.account_id,
    }

    warned = sales_client.post("/contacts/new/", data, **ALPHA)

    assert [d.pk for d in warned.context["duplicates"].visible] == [contact.pk]


def test_a_duplicate_the_user_may_not_see_is_counted_not_shown(client, contact, in_alpha):
    rival = user_create(
        email="rival@alpha.test", password=PASSWORD, full_name="Rival", role=Role.SALES
    )
    client.post("/login/", {"username": rival.email, "password": PASSWORD}, **ALPHA)

    warned = client.post(
        "/contacts/new/",
        {**NEW_CONTACT, "first_name": "Pete", "email": "peter@initech.test"},
        **ALPHA,
    )

    duplicates = warned.context["duplicates"]
    assert duplicates.visible == [] and duplicates.hidden_count == 1
    assert "Gibbons" not in warned.content.decode()
    assert "1 similar record belongs to someone else" in warned.content.decode()


def test_an_account_with_the_same_domain_warns(sales_client, sales):
    services.account_create(actor=sales, name="Initech", domain="initech.test")

    warned = sales_client.post(
        "/accounts/new/",
        {"name": "Initech Corp", "domain": "INITECH.test", "customer_type": "prospect"},
        **ALPHA,
    )

    assert [a.name for a in warned.context["duplicates"].visible] == ["Initech"]


def test_the_account_picker_suggests_and_resolves_only_reachable_accounts(
    sales_client, sales, contact, client, beta
):
    from django_tenants.utils import schema_context

    twin = services.account_create(actor=sales, name="Twin Peaks")
    services.account_create(actor=sales, name="twin peaks")
    outsider = User.objects.create(email="out@alpha.test", full_name="Out", role=Role.SALES)
    hidden = services.account_create(actor=outsider, name="Initech Hidden", owner=outsider)

    options = sales_client.get("/accounts/options/?field=account&account=init", **ALPHA)
    assert [a.name for a in options.context["accounts"]] == ["Initech"]
    assert f'value="Initech #{contact.account_id}"'.encode() in options.content

    def post(account: str):
        return sales_client.post(
            f"/contacts/{contact.pk}/edit/",
            {
                "first_name": "Peter",
                "account": account,
                "customer_type": "prospect",
                "lifecycle_stage": "awareness",
                "owner": sales.pk,
            },
            **ALPHA,
        )

    assert post(f"Twin Peaks #{twin.pk}").status_code == 302
    contact.refresh_from_db()
    assert contact.account == twin
    ambiguous = post("TWIN PEAKS")
    assert "Several accounts" in ambiguous.context["form"].errors["account"][0]
    for unreachable in (str(hidden.pk), f"Initech Hidden #{hidden.pk}", "Initech Hidden", "Nope"):
        assert "account" in post(unreachable).context["form"].errors
    contact.refresh_from_db()
    assert contact.account == twin

    # The picker's suggestions on beta's host name nothing of alpha's.
    with schema_context(beta.schema_name):
        beta_admin = User.objects.get(email="admin@beta.test")
    client.post(
        "/login/", {"username": beta_admin.email, "password": PASSWORD}, HTTP_HOST="beta.localhost"
    )
    on_beta = client.get("/accounts/options/?field=account&account=in", HTTP_HOST="beta.localhost")
    assert on_beta.status_code == 200 and not on_beta.context["accounts"]
