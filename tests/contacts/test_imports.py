"""CSV import of accounts and contacts: reading, mapping, checking, dedupe, access, bulk writes,
the pages, and the real Celery worker."""

import codecs
import time

import pytest
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import schema_context

from contacts import imports, services
from contacts.models import Account, Contact, ImportJob
from crm.users.models import Role, Team, User
from crm.users.services import user_create
from tests.conftest import PASSWORD
from tracking.models import AuditEntry, TimelineEntry

ALPHA = {"HTTP_HOST": "alpha.localhost"}
BETA = {"HTTP_HOST": "beta.localhost"}


def csv_file(text: str, name: str = "people.csv", encoding: str = "utf-8") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, text.encode(encoding), content_type="text/csv")


def upload(actor, text: str, *, kind: str = "contact", **mapping_options) -> ImportJob:
    job = imports.import_job_create(actor=actor, kind=kind, file=csv_file(text))
    if mapping_options:
        mapping = {**job.mapping, **mapping_options.pop("mapping", {})}
        imports.import_job_map(
            actor=actor,
            job=job,
            mapping=mapping,
            match_on=mapping_options.get("match_on", ""),
            skip_invalid=mapping_options.get("skip_invalid", False),
        )
    return job


def run(actor, job: ImportJob) -> ImportJob:
    """Start the job and run it here (in a test transaction on_commit never fires, so the
    Celery task is not sent; the worker path has its own test below)."""
    assert imports.import_job_start(actor=actor, job=job)
    done = imports.import_job_run(job_id=job.pk)
    assert imports.import_job_run(job_id=job.pk) is None  # run once only
    return done


def rows_of(job: ImportJob) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    for error in job.errors:
        found.setdefault(error["row"], []).append(f"{error['field']}: {error['message']}")
    return found


@pytest.fixture
def admin(in_alpha):
    return User.objects.get(email="admin@alpha.test")


@pytest.fixture
def stranger(in_alpha):
    """A salesperson of another team: their records are out of Sally's reach."""
    return user_create(
        email="other@alpha.test",
        password=PASSWORD,
        full_name="Otto Other",
        role=Role.SALES,
        team=Team.objects.create(name="South"),
    )


def log_in(client, user, host=ALPHA):
    client.cookies.clear()  # a fresh session, without touching the database
    client.post("/login/", {"username": user.email, "password": PASSWORD}, **host)
    return client


# --- reading and mapping ------------------------------------------------------------------------


def test_the_mapping_is_guessed_from_the_headers():
    headers = ["First Name", "Surname", "E-mail", "Email Address", "Company", "Notes", "Tags"]

    contacts = imports.mapping_guess(kind="contact", headers=headers)
    accounts = imports.mapping_guess(kind="account", headers=["Company", "Website", "ZIP"])

    assert contacts == {
        "First Name": "first_name",
        "Surname": "last_name",
        "E-mail": "email",
        "Email Address": "",  # e-mail is already taken by the first column that names it
        "Company": "account",
        "Notes": "",
        "Tags": "interests",
    }
    assert accounts == {"Company": "name", "Website": "domain", "ZIP": "postal_code"}


@pytest.mark.django_db
def test_a_utf8_file_with_a_bom_and_semicolons_is_read(admin):
    text = "\ufeffFirst name;E-mail;Company\nJürgen;j@x.test;Müller GmbH\n"

    job = imports.import_job_create(actor=admin, kind="contact", file=csv_file(text))

    assert job.mapping == {"First name": "first_name", "E-mail": "email", "Company": "account"}
    assert job.total_rows == 1
    assert imports.import_preview(job=job, user=admin)[0].cells[0] == (
        "First name",
        "Jürgen",
        False,
    )


@pytest.mark.django_db
def test_a_file_in_another_encoding_is_refused_naming_the_line(admin):
    text = "First name,Last name\nAnna,Smith\nJürgen,Müller\n"

    with pytest.raises(imports.ImportFileError, match=r"not UTF-8 .* line 3"):
        imports.import_job_create(
            actor=admin, kind="contact", file=csv_file(text, encoding="cp1252")
        )
    with pytest.raises(imports.ImportFileError, match="NUL characters"):
        imports.import_job_create(
            actor=admin, kind="contact", file=csv_file(text, encoding="utf-16-le")
        )
    with pytest.raises(imports.ImportFileError, match="not an encoding the importer reads"):
        imports.import_job_create(
            actor=admin, kind="contact", file=csv_file(text), encoding="ebcdic"
        )
    assert not ImportJob.objects.exists()


def first_names(job: ImportJob, user) -> list[str]:
    return [row.cells[0][1] for row in imports.import_preview(job=job, user=user)]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "encoding, names",
    [
        ("cp1252", ["Jürgen", "Zoë", "Œdipe"]),
        ("cp1250", ["Jürgen", "Łukasz", "Přemysl"]),
        ("cp1251", ["Юрий", "Ирина", "Ёж"]),
    ],
)
def test_a_file_in_the_windows_code_page_the_user_chose_is_read(admin, encoding, names):
    text = "First name,Company\n" + "".join(f"{name},Müller & Co\n" for name in names)
    if encoding == "cp1251":
        text = text.replace("Müller", "Мюллер")

    job = imports.import_job_create(
        actor=admin, kind="contact", file=csv_file(text, encoding=encoding), encoding=encoding
    )

    assert job.content == text
    assert first_names(job, admin) == names


@pytest.mark.django_db
def test_utf8_and_utf16_files_are_read_as_such_whatever_encoding_was_chosen(admin):
    text = "First name\tCompany\nJürgen\tMüller\nЮлия\t東京\n"
    excel_unicode_text = csv_file(text, encoding="utf-16")
    assert excel_unicode_text.read(2) in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
    excel_unicode_text.seek(0)

    read = [
        imports.import_job_create(actor=admin, kind="contact", file=file, encoding="cp1252")
        for file in (csv_file(text), excel_unicode_text)
    ]

    assert [job.content for job in read] == [text, text]
    assert first_names(read[1], admin) == ["Jürgen", "Юлия"]


@pytest.mark.django_db
def test_nul_characters_a_broken_utf8_file_with_its_mark_and_utf16_errors_are_refused(admin):
    def refused(raw: bytes, encoding: str = "utf-8") -> str:
        with pytest.raises(imports.ImportFileError) as error:
            imports.import_job_create(
                actor=admin,
                kind="contact",
                file=SimpleUploadedFile("people.csv", raw, content_type="text/csv"),
                encoding=encoding,
            )
        return str(error.value)

    assert "NUL characters" in refused("First name\nA\x00b\n".encode("utf-16"))
    # A UTF-8 byte-order mark is not read as Windows-1252, whatever was chosen.
    assert "not UTF-8" in refused(codecs.BOM_UTF8 + b"First name\nJ\xfcrgen\n", "cp1252")
    # "Ċ" (U+010A) holds a 0x0A byte in UTF-16; the bad half character is on line 3.
    broken = "First name\nĊ\nAnn\n".encode("utf-16-le")[:-1] + b"\x00\xd8"
    assert "line 4" in refused(codecs.BOM_UTF16_LE + broken)
    assert not ImportJob.objects.exists()


@pytest.mark.django_db
def test_a_byte_the_chosen_code_page_does_not_use_is_refused_naming_the_line(admin):
    raw = "First name\nAnna\nJürgen\n".encode("cp1252") + b"Bad \x81\n"

    with pytest.raises(imports.ImportFileError, match=r"not Windows-1252 either \(line 4"):
        imports.import_job_create(
            actor=admin,
            kind="contact",
            file=SimpleUploadedFile("people.csv", raw, content_type="text/csv"),
            encoding="cp1252",
        )
    assert not ImportJob.objects.exists()


@pytest.mark.django_db
def test_empty_headerless_duplicate_header_and_oversized_files_are_refused(admin, monkeypatch):
    for text, message in [
        ("", "empty"),
        ("First name,Email\n", "no rows"),
        ("Email,Name,Email\na,b,c\n", "names Email more than once"),
    ]:
        with pytest.raises(imports.ImportFileError, match=message):
            imports.import_job_create(actor=admin, kind="contact", file=csv_file(text))
    monkeypatch.setattr(imports, "MAX_BYTES", 1024 * 1024)
    big = csv_file("First name\n" + "x\n" * (imports.MAX_BYTES // 2))
    with pytest.raises(imports.ImportFileError, match="the limit is 1 MB"):
        imports.import_job_create(actor=admin, kind="contact", file=big)


@pytest.mark.django_db
def test_a_missing_required_column_or_match_column_is_reported(admin):
    job = upload(admin, "Name,Mail\nAnn,ann@x.test\n")
    assert job.mapping == {"Name": "", "Mail": "email"}

    with pytest.raises(imports.ImportMappingError) as missing:
        imports.import_job_map(
            actor=admin, job=job, mapping=job.mapping, match_on="external_id", skip_invalid=False
        )
    with pytest.raises(imports.ImportMappingError) as twice:
        imports.import_job_map(
            actor=admin,
            job=job,
            mapping={"Name": "first_name", "Mail": "first_name"},
            match_on="",
            skip_invalid=False,
        )

    assert missing.value.problems == [
        "Choose the column that holds the first name.",
        "To match on External ID, choose the column that holds it.",
    ]
    assert twice.value.problems == ["Only one column can go to First name: Name, Mail."]
    with pytest.raises(imports.ImportMappingError):
        imports.import_job_start(actor=admin, job=job)
    assert ImportJob.objects.get().status == ImportJob.Status.UPLOADED


# --- checking rows ------------------------------------------------------------------------------

MALFORMED = (
    "First name,Last name,E-mail,Stage\n"
    "Ann,Able,not-an-email,education\n"
    f"{'B' * 101},Baker,b@x.test,Evaluation\n"
    "Cid,Cole\n"
    "Dee,Dunn,dee@x.test,purchase\n"
    "Eve,,eve@x.test,sideways\n"
)


@pytest.mark.django_db
def test_one_bad_row_fails_the_whole_import_with_every_row_reported(admin):
    job = run(admin, upload(admin, MALFORMED, match_on=""))

    assert job.status == ImportJob.Status.FAILED
    assert (job.created_count, job.updated_count, job.processed_rows) == (0, 0, 5)
    errors = rows_of(job)
    assert sorted(errors) == [2, 3, 4, 6]
    assert errors[2] == ["E-mail: Enter a valid email address."]
    assert errors[3] == ["First name: Ensure this value has at most 100 characters (it has 101)."]
    assert "has 2 cells where the header has 4" in errors[4][0]
    assert errors[6] == ["Stage: Value 'sideways' is not a valid choice."]
    assert not Contact.objects.exists()
    assert not AuditEntry.objects.exists() and not TimelineEntry.objects.exists()


@pytest.mark.django_db
def test_a_dry_run_says_what_the_import_would_do_and_writes_nothing(admin):
    services.contact_create(actor=admin, first_name="Dee", email="dee@x.test")
    job = upload(admin, MALFORMED, match_on="email")

    assert imports.import_job_check(actor=admin, job=job)
    checked = imports.import_job_run(job_id=job.pk)

    assert checked.status == ImportJob.Status.UPLOADED and checked.checked_at is not None
    # Dee exists (an update); every other row is refused.
    assert (checked.created_count, checked.updated_count, checked.processed_rows) == (0, 1, 5)
    assert sorted(rows_of(checked)) == [2, 3, 4, 6]
    assert Contact.objects.get().last_name == ""
    assert AuditEntry.objects.filter(action="updated").count() == 0
    assert imports.import_job_run(job_id=job.pk) is None  # back to waiting: nothing to run

    # The same mapping keeps what the check found; another one forgets it.
    imports.import_job_map(
        actor=admin, job=checked, mapping=checked.mapping, match_on="email", skip_invalid=True
    )
    assert checked.checked_at is not None
    done = run(admin, checked)
    assert (done.status, done.created_count, done.updated_count) == ("done", 0, 1)
    assert Contact.objects.get().last_name == "Dunn"

    again = upload(admin, MALFORMED, match_on="email")
    imports.import_job_check(actor=admin, job=again)
    imports.import_job_run(job_id=again.pk)
    again.refresh_from_db()
    imports.import_job_map(
        actor=admin, job=again, mapping=again.mapping, match_on="", skip_invalid=False
    )
    again.refresh_from_db()
    assert (again.checked_at, again.errors) == (None, [])


ACROSS_CHUNKS = """First name,E-mail,External ID
Ann,ann@x.test,e-1
Bob,bob@x.test,e-2
Annie,ANN@x.test,
Cy,cy@x.test,e-1
Dee,dee@x.test,e-3
"""


@pytest.mark.django_db
def test_a_file_goes_in_chunk_by_chunk_and_a_late_bad_row_takes_every_chunk_back(
    admin, monkeypatch
):
    # Two rows a chunk: Ann is created in the first and updated by row 4 in the second, and
    # row 5 takes the external ID row 2 gave Ann.
    monkeypatch.setattr(imports, "CHUNK", 2)

    failed = run(admin, upload(admin, ACROSS_CHUNKS, match_on="email"))

    assert failed.status == ImportJob.Status.FAILED
    assert rows_of(failed) == {5: ["External ID: Row 2 of this file has the same external ID."]}
    assert (failed.created_count, failed.updated_count, failed.processed_rows) == (0, 0, 5)
    assert not Contact.objects.exists()
    assert not AuditEntry.objects.exists() and not TimelineEntry.objects.exists()

    done = run(admin, upload(admin, ACROSS_CHUNKS, match_on="email", skip_invalid=True))

    assert done.status == ImportJob.Status.DONE
    # Ann counts once, as created, though the second chunk changed her.
    assert (done.created_count, done.updated_count) == (3, 0)
    people = Contact.objects.order_by("id").values_list("first_name", "email", "external_id")
    assert list(people) == [
        ("Annie", "ann@x.test", "e-1"),
        ("Bob", "bob@x.test", "e-2"),
        ("Dee", "dee@x.test", "e-3"),
    ]
    assert rows_of(done) == {5: ["External ID: Row 2 of this file has the same external ID."]}


@pytest.mark.django_db
def test_skipping_invalid_rows_imports_the_good_ones_and_reports_the_rest(admin):
    job = run(admin, upload(admin, MALFORMED, match_on="", skip_invalid=True))

    assert job.status == ImportJob.Status.DONE
    assert (job.created_count, job.updated_count) == (1, 0)
    assert sorted(rows_of(job)) == [2, 3, 4, 6]
    dee = Contact.objects.get()
    assert (dee.full_name, dee.email, dee.lifecycle_stage, dee.owner) == (
        "Dee Dunn",
        "dee@x.test",
        "purchase",
        admin,
    )


@pytest.mark.django_db
def test_values_are_converted_and_the_company_links_to_a_visible_account_or_is_created(
    admin, sales
):
    initech = services.account_create(actor=admin, name="Initech")
    text = (
        "First name,Company,Owner,Interests,Do not e-mail,Type\n"
        'Peter,initech,sales@alpha.test,"crm, ERP,crm",yes,Customer\n'
        "Anna,Globex,,,no,\n"
        "Bob,GLOBEX,nobody@alpha.test,,maybe,\n"
        "Carl,globex,,,,\n"
    )

    job = run(admin, upload(admin, text, skip_invalid=True))

    assert rows_of(job) == {
        4: [
            "Owner: No active user has the e-mail address “nobody@alpha.test”.",
            "Do not e-mail: “maybe” is not yes or no.",
        ]
    }
    peter = Contact.objects.get(first_name="Peter")
    assert (peter.account, peter.owner, peter.interests, peter.do_not_email) == (
        initech,
        sales,
        ["crm", "ERP"],
        True,
    )
    assert peter.customer_type == "customer"
    globex = Account.objects.get(name="Globex")
    assert set(globex.contacts.values_list("first_name", flat=True)) == {"Anna", "Carl"}
    assert globex.owner == admin
    assert Account.objects.count() == 2


@pytest.mark.django_db
def test_created_records_get_their_audit_entry_and_timeline_entry(admin):
    job = run(admin, upload(admin, "First name,Last name,Company\nPeter,Gibbons,Initech\n"))

    peter = Contact.objects.get()
    audit = AuditEntry.objects.get(model="contacts.contact", object_id=peter.pk)
    assert audit.action == "created" and audit.actor == admin
    assert audit.changes["first_name"] == [None, "Peter"]
    assert AuditEntry.objects.filter(model="contacts.account", action="created").count() == 1
    entry = TimelineEntry.objects.get(contact=peter)
    assert entry.summary == "Alpha Admin imported Peter Gibbons from people.csv"
    assert entry.account == peter.account and entry.kind == TimelineEntry.Kind.RECORD
    assert job.created_count == 1


# --- dedupe -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_matching_on_email_updates_only_given_fields_and_merges_duplicates_in_the_file(admin):
    peter = services.contact_create(
        actor=admin, first_name="Peter", email="PETER@initech.test", title="Engineer", phone="1"
    )
    text = (
        "First name,E-mail,Title,Phone\n"
        "Pete,peter@initech.test,Manager,\n"
        "Ann,ann@x.test,,\n"
        "Ann,ANN@x.test,Boss,555\n"
    )

    job = run(admin, upload(admin, text, match_on="email"))

    assert (job.status, job.created_count, job.updated_count) == ("done", 1, 1)
    peter.refresh_from_db()
    assert (peter.first_name, peter.title, peter.phone) == ("Pete", "Manager", "1")
    ann = Contact.objects.get(email__iexact="ann@x.test")
    assert (ann.title, ann.phone) == ("Boss", "555")
    assert Contact.objects.count() == 2
    update = AuditEntry.objects.get(object_id=peter.pk, action="updated")
    assert update.changes == {"first_name": ["Peter", "Pete"], "title": ["Engineer", "Manager"]}

    again = run(admin, upload(admin, text, match_on="email"))
    assert (again.created_count, again.updated_count) == (0, 0)
    assert Contact.objects.count() == 2


@pytest.mark.django_db
def test_matching_on_external_id_updates_accounts_and_refuses_taken_ids(admin):
    acme = services.account_create(actor=admin, name="Acme", external_id="A-1", city="Paris")
    services.account_create(actor=admin, name="Taken", external_id="T-9")
    text = (
        "Name,External ID,City,Employees\n"
        "Acme Corp,A-1,,1 200\n"
        "Globex,A-2,Berlin,\n"
        "Globex Inc,A-2,,50\n"
        "Hooli,,Oslo,many\n"
    )

    failed = run(admin, upload(admin, text, kind="account", match_on="external_id"))
    assert rows_of(failed) == {5: ["Employees: “many” is not a whole number."]}

    job = run(admin, upload(admin, text, kind="account", match_on="external_id", skip_invalid=True))
    acme.refresh_from_db()
    assert (acme.name, acme.city, acme.employees) == ("Acme Corp", "Paris", 1200)
    globex = Account.objects.get(external_id="A-2")
    assert (globex.name, globex.city, globex.employees) == ("Globex Inc", "Berlin", 50)
    assert (job.created_count, job.updated_count) == (1, 1)

    # Without matching, an external ID already used (in the file or the database) is an error.
    clash = run(
        admin,
        upload(
            admin, "Name,External ID\nOne,T-9\nTwo,N-1\nThree,N-1\n", kind="account", match_on=""
        ),
    )
    assert rows_of(clash) == {
        2: ["External ID: Another record already has this external ID."],
        4: ["External ID: Row 3 of this file has the same external ID."],
    }
    assert Account.objects.count() == 3


@pytest.mark.django_db
def test_a_match_outside_the_users_reach_is_an_error_and_is_neither_updated_nor_shown(
    sales, stranger
):
    hidden = services.contact_create(
        actor=stranger, first_name="Secret", last_name="Person", email="secret@x.test"
    )
    services.account_create(actor=stranger, name="Hidden Co")
    text = "First name,E-mail,Company\nMe,secret@x.test,\nNew,new@x.test,hidden co\n"

    job = run(sales, upload(sales, text, match_on="email", skip_invalid=True))

    assert rows_of(job) == {2: ["E-mail: A record with this value exists but you cannot edit it."]}
    assert "Secret" not in str(job.errors)
    hidden.refresh_from_db()
    assert hidden.first_name == "Secret" and hidden.owner == stranger
    new = Contact.objects.get(email="new@x.test")
    # The company name matched only an account Sally cannot see: she gets one of her own.
    assert new.account.owner == sales and new.account.pk != Account.objects.get(owner=stranger).pk


@pytest.mark.django_db
def test_an_import_of_a_few_hundred_rows_takes_a_bounded_number_of_queries(
    admin, django_assert_max_num_queries
):
    services.contact_create(actor=admin, first_name="Existing", email="p0@x.test")
    lines = [f"P{i},L{i},p{i}@x.test,Company {i % 20}" for i in range(300)]
    job = upload(
        admin, "First name,Last name,E-mail,Company\n" + "\n".join(lines), match_on="email"
    )

    # A few a chunk (lookups, COPYs, the planner's settings), none a row.
    with django_assert_max_num_queries(35):
        job = run(admin, job)

    assert (job.created_count, job.updated_count) == (299, 1)
    assert Contact.objects.count() == 300 and Account.objects.count() == 20
    assert TimelineEntry.objects.filter(summary__contains="imported").count() == 319


@pytest.mark.django_db
def test_progress_is_kept_in_the_tenants_cache_where_other_connections_see_it(admin, beta):
    job = upload(admin, "First name\nAnn\nBob\nCid\n")
    cache.delete(f"import-progress:{job.pk}")  # left by an earlier session with the same id
    job = run(admin, job)
    # Back to "running", as another connection sees the job while the import's transaction is
    # still open: the figure then comes from the cache, where the run left it.
    ImportJob.objects.filter(pk=job.pk).update(status=ImportJob.Status.RUNNING, processed_rows=0)
    job.refresh_from_db()

    assert imports.import_job_progress(job) == 3
    with schema_context(beta.schema_name):
        assert imports.import_job_progress(job) == 0


# --- pages --------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_upload_map_preview_and_start_through_the_pages(client, sales):
    log_in(client, sales)

    uploaded = client.post(
        "/imports/new/",
        {"kind": "contact", "file": csv_file("Vorname,Mail\nAnn,bad\nBob,bob@x.test\n")},
        **ALPHA,
    )
    job = ImportJob.objects.get()
    assert uploaded.status_code == 302 and uploaded["Location"] == f"/imports/{job.pk}/map/"

    page = client.get(f"/imports/{job.pk}/map/", **ALPHA)
    assert page.status_code == 200
    assert "Choose the column that holds the first name." in page.content.decode()

    mapped = client.post(
        f"/imports/{job.pk}/map/",
        {"column_0": "first_name", "column_1": "email", "match_on": "email", "preview": "1"},
        **ALPHA,
    )
    assert mapped.status_code == 302
    preview = client.get(f"/imports/{job.pk}/map/", **ALPHA)
    rows = preview.context["preview"]
    assert [(r.number, r.action) for r in rows] == [(2, "error"), (3, "create")]
    assert 'class="has-error"' in preview.content.decode()

    started = client.post(
        f"/imports/{job.pk}/map/",
        {"column_0": "first_name", "column_1": "email", "match_on": "email", "start": "1"},
        **ALPHA,
    )
    assert started["Location"] == f"/imports/{job.pk}/"
    job.refresh_from_db()
    assert job.status == ImportJob.Status.QUEUED
    status = client.get(f"/imports/{job.pk}/", **ALPHA)
    assert 'hx-trigger="every 1s"' in status.content.decode()


@pytest.mark.django_db
def test_a_dry_run_through_the_pages_follows_the_check_then_shows_its_summary(client, sales):
    log_in(client, sales)
    client.post(
        "/imports/new/",
        {"kind": "contact", "file": csv_file("First name,Mail\nAnn,bad\nBob,bob@x.test\n")},
        **ALPHA,
    )
    job = ImportJob.objects.get()
    mapping = {"column_0": "first_name", "column_1": "email", "match_on": "email"}

    checking = client.post(f"/imports/{job.pk}/map/", {**mapping, "check": "1"}, **ALPHA)

    assert checking["Location"] == f"/imports/{job.pk}/"
    waiting = client.get(f"/imports/{job.pk}/", **ALPHA).content.decode()
    assert "Checking the whole file (nothing is written)" in waiting
    imports.import_job_run(job_id=job.pk)
    polled = client.get(f"/imports/{job.pk}/", HTTP_HX_REQUEST="true", **ALPHA)
    assert polled["HX-Redirect"] == f"/imports/{job.pk}/map/"
    page = client.get(f"/imports/{job.pk}/map/", **ALPHA).content.decode()
    assert '<span data-testid="would-create">1</span> new' in page
    assert '<span data-testid="would-refuse">1</span> refused' in page
    assert "the import would stop on these rows and import nothing" in page
    assert not Contact.objects.exists()


@pytest.mark.django_db
def test_the_mapping_page_reads_only_the_start_of_a_long_file(client, sales, monkeypatch):
    log_in(client, sales)
    rows = "".join(f"Person {n},p{n}@x.test\n" for n in range(500))
    client.post(
        "/imports/new/",
        {"kind": "contact", "file": csv_file("First name,E-mail\n" + rows)},
        **ALPHA,
    )
    job = ImportJob.objects.get()
    monkeypatch.setattr(imports, "HEAD_CHARS", 400)

    with CaptureQueriesContext(connection) as queries:
        page = client.get(f"/imports/{job.pk}/map/", **ALPHA)

    assert page.status_code == 200
    assert [row.number for row in page.context["preview"]] == list(range(2, 12))
    assert "p9@x.test" in page.content.decode()
    read = " ".join(q["sql"] for q in queries.captured_queries)
    head = 'SUBSTRING("contacts_importjob"."content", 1, 400)'
    assert head in read
    assert '"contacts_importjob"."content"' not in read.replace(head, "")


@pytest.mark.django_db
def test_a_bad_upload_shows_the_reason_on_the_form(client, sales):
    log_in(client, sales)

    response = client.post(
        "/imports/new/",
        {"kind": "contact", "file": csv_file("Name\nMüller\n", encoding="latin-1")},
        **ALPHA,
    )

    assert response.status_code == 200
    assert "not UTF-8" in response.content.decode()
    assert "choose its encoding (Windows-1252" in response.content.decode()
    assert not ImportJob.objects.exists()

    response = client.post(
        "/imports/new/",
        {
            "kind": "contact",
            "file": csv_file("Name\nMüller\n", encoding="latin-1"),
            "encoding": "cp1252",
        },
        **ALPHA,
    )

    job = ImportJob.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/imports/{job.pk}/map/"
    assert job.content == "Name\nMüller\n"


@pytest.mark.django_db
def test_the_finished_job_shows_counts_and_errors_escaped_and_offers_them_as_csv(client, sales):
    job = run(
        sales,
        upload(
            sales,
            "First name,E-mail,Do not e-mail\n<b>Bold</b>,b@x.test,no\nEve,e@x.test,<i>maybe</i>\n",
            skip_invalid=True,
        ),
    )
    log_in(client, sales)

    page = client.get(f"/imports/{job.pk}/", **ALPHA).content.decode()
    contacts = client.get("/contacts/", **ALPHA).content.decode()
    report = client.get(f"/imports/{job.pk}/errors.csv", **ALPHA)

    assert 'hx-trigger="every 1s"' not in page
    assert 'data-testid="created">1<' in page
    assert "<b>Bold</b>" not in contacts and "&lt;b&gt;Bold&lt;/b&gt;" in contacts
    assert "<i>maybe" not in page and "“&lt;i&gt;maybe&lt;/i&gt;” is not yes or no." in page
    assert report["Content-Type"].startswith("text/csv")
    assert report.content.decode().splitlines() == [
        "row,column,message",
        "3,Do not e-mail,“<i>maybe</i>” is not yes or no.",
    ]


@pytest.mark.django_db
def test_a_job_is_its_creators_admins_see_all_partners_may_not_import(
    client, sales, stranger, admin
):
    job = upload(sales, "First name\nAnn\n")
    partner = user_create(
        email="partner@alpha.test", password=PASSWORD, full_name="Pat", role=Role.PARTNER
    )

    assert log_in(client, stranger).get(f"/imports/{job.pk}/", **ALPHA).status_code == 404
    assert client.get(f"/imports/{job.pk}/map/", **ALPHA).status_code == 404
    assert client.get("/imports/", **ALPHA).context["jobs"] == []
    assert log_in(client, admin).get(f"/imports/{job.pk}/map/", **ALPHA).status_code == 200
    assert log_in(client, partner).get("/imports/new/", **ALPHA).status_code == 403
    assert "/imports/new/" not in client.get("/contacts/", **ALPHA).content.decode()
    assert 'href="/imports/new/?kind=contact"' in (
        log_in(client, sales).get("/contacts/", **ALPHA).content.decode()
    )


@pytest.mark.django_db
def test_a_job_of_alpha_is_not_found_on_betas_host_and_writes_nothing_there(client, admin, beta):
    job = run(admin, upload(admin, "First name,E-mail\nAnn,ann@x.test\n"))
    connection.set_schema_to_public()

    log_in(client, User(email="admin@beta.test"), host=BETA)
    response = client.get(f"/imports/{job.pk}/", **BETA)
    errors = client.get(f"/imports/{job.pk}/errors.csv", **BETA)

    assert response.status_code == errors.status_code == 404
    with schema_context(beta.schema_name):
        assert not Contact.objects.exists() and not ImportJob.objects.exists()


# --- the real worker ----------------------------------------------------------------------------


def test_the_worker_imports_a_committed_job_once_and_reports_progress(
    committed_tenant, celery_worker
):
    from contacts.tasks import import_job_run_task

    tenant = committed_tenant("imp")
    with schema_context(tenant.schema_name):
        admin = User.objects.get()
        job = upload(admin, "First name,E-mail\nAnn,ann@x.test\nBob,bob@x.test\n", match_on="email")
        imports.import_job_start(actor=admin, job=job)  # on_commit: sent at once (autocommit)
    connection.set_schema_to_public()

    deadline = time.monotonic() + 20
    while True:
        with schema_context(tenant.schema_name):
            job.refresh_from_db()
        if job.status in ("done", "failed") or time.monotonic() > deadline:
            break
        time.sleep(0.1)

    assert (job.status, job.created_count, job.processed_rows) == ("done", 2, 2)
    with schema_context(tenant.schema_name):
        assert sorted(Contact.objects.values_list("first_name", flat=True)) == ["Ann", "Bob"]
        assert imports.import_job_progress(job) == 2
        again = import_job_run_task.delay(job.pk)
    connection.set_schema_to_public()
    assert again.get(timeout=20) is False
    with schema_context(tenant.schema_name):
        assert Contact.objects.count() == 2
    connection.set_schema_to_public()


def test_a_job_left_running_by_a_killed_worker_is_imported_by_the_redelivered_task(in_alpha):
    admin = User.objects.get(email="admin@alpha.test")
    job = upload(admin, "First name,E-mail\nAnn,ann@x.test\n", match_on="email")
    imports.import_job_start(actor=admin, job=job)
    # What a worker killed mid-import leaves: the job shown as running, nothing written (its
    # transaction rolled back, so no lock is held).
    ImportJob.objects.filter(pk=job.pk).update(status=ImportJob.Status.RUNNING)

    done = imports.import_job_run(job_id=job.pk)

    assert (done.status, done.created_count) == (ImportJob.Status.DONE, 1)
    assert imports.import_job_run(job_id=job.pk) is None
    assert Contact.objects.filter(email="ann@x.test").count() == 1
