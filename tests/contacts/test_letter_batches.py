"""Letters to a whole contact list: which contacts get one, the PDF, the timeline, the claim,
the limit, the pages, who may open a batch, other tenants, and the real Celery worker."""

import io
import time

import pytest
from django.db import connection
from django.test import Client
from django_tenants.utils import schema_context
from pypdf import PdfReader

from contacts import letters, services
from contacts.models import Activity, Contact, LetterBatch
from crm.users.models import Role, Team, User
from crm.users.services import user_create
from tests.conftest import PASSWORD
from tracking.models import TimelineEntry

ALPHA = {"HTTP_HOST": "alpha.localhost"}
BETA = {"HTTP_HOST": "beta.localhost"}

BODY = "{{ contact.full_name }}\n{{ account.name }}\n\nDear {{ contact.first_name }},\n"


def person(email, role, **extra):
    return user_create(
        email=email, password=PASSWORD, full_name=email.split("@")[0].title(), role=role, **extra
    )


def logged_in(user, host=ALPHA) -> Client:
    client = Client()
    assert client.post("/login/", {"username": user.email, "password": PASSWORD}, **host)
    return client


def pdf_pages(content: bytes) -> list[str]:
    return [page.extract_text() for page in PdfReader(io.BytesIO(content)).pages]


@pytest.fixture
def sales(in_alpha):
    return person("sally@alpha.test", Role.SALES, team=Team.objects.create(name="North"))


@pytest.fixture
def rival(in_alpha):
    return person("rita@alpha.test", Role.SALES, team=Team.objects.create(name="South"))


@pytest.fixture
def book(sales, rival):
    """Sally's contacts in the North (one who wants no mail) and the South, and Rita's in the
    North, whom Sally may not see."""
    initech = services.account_create(actor=sales, name="Initech")
    for first, last, territory, no_mail in (
        ("Peter", "Gibbons", "North", False),
        ("Milton", "Waddams", "North", True),
        ("Joanna", "Smith", "North", False),
        ("Bill", "Lumbergh", "South", False),
    ):
        services.contact_create(
            actor=sales,
            first_name=first,
            last_name=last,
            territory=territory,
            account=initech,
            do_not_mail=no_mail,
        )
    services.contact_create(actor=rival, first_name="Rival", last_name="Person", territory="North")


@pytest.fixture
def template(sales):
    return letters.letter_template_create(
        actor=sales, name="Spring offer", subject="Offer for {{ contact.first_name }}", body=BODY
    )


def test_each_contact_of_the_filtered_list_the_user_sees_gets_a_letter_in_one_pdf(
    sales, book, template
):
    batch = letters.letter_batch_create(actor=sales, template=template, query="territory=North")

    assert (batch.status, batch.total) == ("queued", 3)
    done = letters.letter_batch_run(batch_id=batch.pk)

    assert (done.status, done.total, done.written, done.skipped) == ("done", 3, 2, 1)
    # In the list's order (by name), one page each: Gibbons, then Smith; not Waddams (no mail),
    # not Lumbergh (South), not Rita's contact (out of Sally's reach).
    pages = pdf_pages(bytes(done.pdf))
    assert [page.splitlines()[0] for page in pages] == ["Peter Gibbons", "Joanna Smith"]
    assert "Dear Joanna," in pages[1]
    letters_logged = Activity.objects.filter(kind=Activity.Kind.LETTER).order_by("subject")
    assert [(a.subject, a.contact.first_name, a.user) for a in letters_logged] == [
        ("Offer for Joanna", "Joanna", sales),
        ("Offer for Peter", "Peter", sales),
    ]
    peter = Contact.objects.get(first_name="Peter")
    assert TimelineEntry.objects.filter(contact=peter, kind="letter").count() == 1
    assert letters.letter_batch_progress(done) == 3


def test_a_search_is_a_filter_too_and_a_second_run_writes_nothing(sales, book, template):
    batch = letters.letter_batch_create(actor=sales, template=template, query="q=smith")

    assert letters.letter_batch_run(batch_id=batch.pk).written == 1
    assert letters.letter_batch_run(batch_id=batch.pk) is None
    assert Activity.objects.filter(kind=Activity.Kind.LETTER).count() == 1


def test_an_empty_list_a_list_over_the_limit_and_unknown_filters_are_refused(
    sales, book, template, monkeypatch
):
    with pytest.raises(letters.LetterError, match="no contacts"):
        letters.letter_batch_create(actor=sales, template=template, query="territory=West")
    with pytest.raises(letters.LetterError, match="not understood"):
        letters.letter_batch_create(actor=sales, template=template, query="lifecycle_stage=nope")
    with pytest.raises(letters.LetterError, match="Everyone in this list asked not"):
        letters.letter_batch_create(actor=sales, template=template, query="q=waddams")
    monkeypatch.setattr(letters, "MAX_BATCH", 3)
    with pytest.raises(letters.LetterError, match="more than 3 contacts"):
        letters.letter_batch_create(actor=sales, template=template, query="")

    assert not LetterBatch.objects.exists()


def test_a_batch_fails_whole_with_its_reason_when_it_cannot_be_written(
    sales, book, template, monkeypatch
):
    grown = letters.letter_batch_create(actor=sales, template=template, query="")
    monkeypatch.setattr(letters, "MAX_BATCH", 3)
    failed = letters.letter_batch_run(batch_id=grown.pk)
    assert (failed.status, failed.written, failed.pdf) == ("failed", 0, None)
    assert "grown past 3 contacts" in failed.error
    monkeypatch.undo()

    orphan = letters.letter_batch_create(actor=sales, template=template, query="")
    template.delete()
    assert "template was deleted" in letters.letter_batch_run(batch_id=orphan.pk).error

    assert not Activity.objects.filter(kind=Activity.Kind.LETTER).exists()


def test_an_unexpected_error_rolls_every_letter_back_and_fails_the_batch(
    sales, book, template, monkeypatch
):
    batch = letters.letter_batch_create(actor=sales, template=template, query="")

    def broken(activities):
        raise OSError("disk full")

    monkeypatch.setattr(letters, "letter_pdf", broken)
    with pytest.raises(OSError):
        letters.letter_batch_run(batch_id=batch.pk)

    batch.refresh_from_db()
    assert (batch.status, batch.written) == ("failed", 0)
    assert "unexpected error" in batch.error
    assert not Activity.objects.filter(kind=Activity.Kind.LETTER).exists()


def test_the_pages_count_the_list_queue_the_batch_and_hand_out_the_pdf(sales, book, template):
    client = logged_in(sales)

    contacts = client.get("/contacts/?territory=North&sort=newest", **ALPHA).content.decode()
    assert 'href="/letters/batches/new/?territory=North&amp;sort=newest"' in contacts
    page = client.get("/letters/batches/new/?territory=North&sort=newest&after=x", **ALPHA)
    assert page.status_code == 200
    html = page.content.decode()
    assert "3 contacts, of whom 1 asked not to receive mail and gets no letter." in html
    assert 'name="query" value="territory=North"' in html
    assert "Write 2 letters" in html

    queued = client.post(
        "/letters/batches/new/", {"template": template.pk, "query": "territory=North"}, **ALPHA
    )
    batch = LetterBatch.objects.get()
    assert queued.status_code == 302
    assert queued["Location"] == f"/letters/batches/{batch.pk}/"
    waiting = client.get(f"/letters/batches/{batch.pk}/", **ALPHA).content.decode()
    assert 'hx-trigger="every 1s"' in waiting
    assert "Queued</strong> · 0 of 3 contacts" in waiting and 'value="0"' in waiting
    assert client.get(f"/letters/batches/{batch.pk}.pdf", **ALPHA).status_code == 404

    letters.letter_batch_run(batch_id=batch.pk)
    done = client.get(f"/letters/batches/{batch.pk}/", HTTP_HX_REQUEST="true", **ALPHA)
    assert 'hx-trigger="every 1s"' not in done.content.decode()
    assert '<span data-testid="written">2</span> letters written' in done.content.decode()
    pdf = client.get(f"/letters/batches/{batch.pk}.pdf", **ALPHA)
    assert pdf["Content-Type"] == "application/pdf"
    assert pdf["Content-Disposition"].startswith('attachment; filename="letters-spring-offer-')
    assert len(pdf_pages(pdf.content)) == 2
    assert "Spring offer" in client.get("/letters/batches/", **ALPHA).content.decode()


def test_the_page_explains_a_list_it_cannot_write_to_and_writes_nothing(
    sales, book, template, monkeypatch
):
    client = logged_in(sales)
    monkeypatch.setattr(letters, "MAX_BATCH", 3)

    over = client.get("/letters/batches/new/", **ALPHA).content.decode()
    assert "More than 3 contacts" in over and "letter-batch-form" not in over
    posted = client.post("/letters/batches/new/", {"template": template.pk, "query": ""}, **ALPHA)
    assert posted.status_code == 200
    assert "more than 3 contacts" in posted.content.decode()
    bad = client.get("/letters/batches/new/?lifecycle_stage=nope", **ALPHA).content.decode()
    assert "not understood" in bad
    missing = client.post(
        "/letters/batches/new/", {"template": 999999, "query": "territory=North"}, **ALPHA
    )
    assert missing.status_code == 200 and "Select a valid choice" in missing.content.decode()

    assert not LetterBatch.objects.exists()


def test_a_batch_is_its_askers_and_admins_others_get_404(sales, rival, book, template):
    batch = letters.letter_batch_create(actor=sales, template=template, query="")
    letters.letter_batch_run(batch_id=batch.pk)
    admin = User.objects.get(email="admin@alpha.test")

    other = logged_in(rival)
    assert other.get(f"/letters/batches/{batch.pk}/", **ALPHA).status_code == 404
    assert other.get(f"/letters/batches/{batch.pk}.pdf", **ALPHA).status_code == 404
    assert "Spring offer" not in other.get("/letters/batches/", **ALPHA).content.decode()
    assert logged_in(admin).get(f"/letters/batches/{batch.pk}.pdf", **ALPHA).status_code == 200


def test_another_tenants_batches_are_not_there(sales, book, template, beta):
    batch = letters.letter_batch_create(actor=sales, template=template, query="")
    letters.letter_batch_run(batch_id=batch.pk)
    connection.set_schema_to_public()
    client = Client()
    client.post("/login/", {"username": "admin@beta.test", "password": PASSWORD}, **BETA)

    assert client.get(f"/letters/batches/{batch.pk}/", **BETA).status_code == 404
    assert client.get(f"/letters/batches/{batch.pk}.pdf", **BETA).status_code == 404
    assert "Spring offer" not in client.get("/letters/batches/", **BETA).content.decode()
    # Beta has none of alpha's templates, and its list is beta's own contacts (none).
    page = client.get("/letters/batches/new/", **BETA).content.decode()
    assert "There are no letter templates yet." in page
    assert '<p data-testid="batch-size">0 contacts.</p>' in page


def test_the_worker_writes_a_committed_batch_once(committed_tenant, celery_worker):
    from contacts.tasks import letter_batch_run_task

    tenant = committed_tenant("letters")
    with schema_context(tenant.schema_name):
        admin = User.objects.get()
        for first in ("Ann", "Bob"):
            services.contact_create(actor=admin, first_name=first, last_name="Reader")
        template = letters.letter_template_create(
            actor=admin, name="Hello", subject="Hello", body=BODY
        )
        # Autocommit: the task is queued at once, on commit.
        batch = letters.letter_batch_create(actor=admin, template=template, query="")
    connection.set_schema_to_public()

    deadline = time.monotonic() + 20
    while True:
        with schema_context(tenant.schema_name):
            batch.refresh_from_db()
        if batch.status in ("done", "failed") or time.monotonic() > deadline:
            break
        time.sleep(0.1)

    assert (batch.status, batch.written) == ("done", 2)
    assert len(pdf_pages(bytes(batch.pdf))) == 2
    with schema_context(tenant.schema_name):
        again = letter_batch_run_task.delay(batch.pk)
    connection.set_schema_to_public()
    assert again.get(timeout=20) is False
    with schema_context(tenant.schema_name):
        assert Activity.objects.filter(kind=Activity.Kind.LETTER).count() == 2
    connection.set_schema_to_public()


def test_a_batch_takes_the_same_queries_for_few_letters_or_many(
    sales, template, django_assert_max_num_queries
):
    for n in range(40):
        services.contact_create(actor=sales, first_name=f"P{n}", territory="East")
    batch = letters.letter_batch_create(actor=sales, template=template, query="territory=East")

    # Lookups, the letters, their timeline entries and the batch: none a letter.
    with django_assert_max_num_queries(12):
        done = letters.letter_batch_run(batch_id=batch.pk)

    assert done.written == 40 and len(pdf_pages(bytes(done.pdf))) == 40
    assert TimelineEntry.objects.filter(kind="letter", summary="Letter: Offer for P7").count() == 1
