"""CSV import of accounts and contacts: reading the file, guessing how its columns map onto our
fields, checking every row with the models' own rules, and writing the lot in bulk.

A job goes uploaded -> queued -> running -> done | failed. Upload, mapping and preview happen in
the request; the import runs in a Celery task (`contacts.tasks.import_job_run_task`) inside one
transaction, so it lands whole (or whole minus the rows the user chose to skip) or not at all.
Everything here runs in the current tenant's schema.
"""

import codecs
import copy
import csv
import io
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import PurePath

from django.core.cache import cache
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import connection, transaction
from django.db.models import F, Model, QuerySet
from django.db.models.functions import Substr, Upper
from django.utils import timezone

from contacts import services
from contacts.models import Account, Contact, ImportJob, RecordKind
from crm import access
from crm.claims import claimed
from crm.users.models import Role, User
from tracking.services import field_values

# A million contacts of a dozen columns take about 100 MB.
MAX_BYTES = 250 * 1024 * 1024
PREVIEW_ROWS = 10
# The start of a file that the mapping page reads: its header and preview rows, with room.
HEAD_CHARS = 1_000_000
CHUNK = 1000
DELIMITERS = (",", ";", "\t")


class ImportFileError(ValueError):
    """The file as a whole cannot be imported (too big, not in its encoding, no header...)."""


class ImportMappingError(ValueError):
    """The column mapping cannot be used; `problems` says why, one sentence each."""

    def __init__(self, problems: list[str]):
        super().__init__(" ".join(problems))
        self.problems = problems


# --- what a column can map onto -----------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A field a CSV column can be mapped onto, with the header spellings that mean it."""

    name: str
    label: str
    aliases: tuple[str, ...] = ()


COMMON_TARGETS = (
    Target("phone", "Phone", ("telephone", "tel", "phonenumber", "mobile")),
    Target("territory", "Territory", ("region",)),
    Target("customer_type", "Customer type", ("type",)),
    Target("owner", "Owner (a user's e-mail)", ("owneremail", "assignedto")),
    Target("external_id", "External ID", ("externalid", "extid", "crmid")),
)
CONTACT_TARGETS = (
    Target("first_name", "First name", ("first", "givenname", "forename")),
    Target("last_name", "Last name", ("last", "surname", "familyname")),
    Target("email", "E-mail", ("mail", "emailaddress", "email1")),
    Target("title", "Job title", ("title", "position", "jobtitle")),
    Target(
        "account",
        "Account (company name)",
        ("company", "companyname", "organization", "organisation", "accountname", "employer"),
    ),
    Target("source", "Source", ("leadsource",)),
    Target("lifecycle_stage", "Life-cycle stage", ("stage", "lifecycle")),
    Target("interests", "Interests (comma-separated)", ("interests", "tags")),
    Target("do_not_email", "Do not e-mail", ("emailoptout", "optout", "unsubscribed")),
    Target("do_not_call", "Do not call", ("donotphone",)),
    Target("do_not_mail", "Do not mail", ("donotpost",)),
    *COMMON_TARGETS,
)
ACCOUNT_TARGETS = (
    Target(
        "name",
        "Name",
        ("company", "companyname", "accountname", "organization", "organisation"),
    ),
    Target("domain", "Domain", ("website", "web", "url")),
    Target("industry", "Industry", ("sector",)),
    Target("employees", "Employees", ("size", "companysize", "headcount", "numberofemployees")),
    Target("street", "Street", ("address", "streetaddress")),
    Target("postal_code", "Postal code", ("zip", "zipcode", "postcode")),
    Target("city", "City", ("town",)),
    Target("country", "Country", ()),
    Target("tags", "Tags (comma-separated)", ("tags", "labels")),
    *COMMON_TARGETS,
)
TARGETS = {RecordKind.CONTACT: CONTACT_TARGETS, RecordKind.ACCOUNT: ACCOUNT_TARGETS}
REQUIRED = {RecordKind.CONTACT: "first_name", RecordKind.ACCOUNT: "name"}
MATCH_ON = {
    RecordKind.CONTACT: (ImportJob.MatchOn.EMAIL, ImportJob.MatchOn.EXTERNAL_ID),
    RecordKind.ACCOUNT: (ImportJob.MatchOn.EXTERNAL_ID,),
}
MODELS = {RecordKind.CONTACT: Contact, RecordKind.ACCOUNT: Account}
# Looked up by the importer rather than checked by the model (one query per row otherwise).
LOOKED_UP = ("account", "owner", "parent")
LIST_FIELDS = ("interests", "tags")
BOOLEAN_FIELDS = ("do_not_email", "do_not_call", "do_not_mail")
TRUE = {"1", "yes", "y", "true", "t", "x", "on"}
FALSE = {"0", "no", "n", "false", "f", "off"}


def _normal(header: str) -> str:
    return re.sub(r"[^a-z0-9]", "", header.lower())


def targets_for(kind: str) -> tuple[Target, ...]:
    return TARGETS[kind]


def mapping_guess(*, kind: str, headers: list[str]) -> dict[str, str]:
    """Our best guess of the field each column means, from its header ("E-mail",
    "Email Address" -> email); each field is given to the first column that names it."""
    spellings = {}
    for target in targets_for(kind):
        for spelling in (target.name, target.label, *target.aliases):
            spellings.setdefault(_normal(spelling), target.name)
    mapping, taken = {}, set()
    for header in headers:
        guess = spellings.get(_normal(header), "")
        if guess in taken:
            guess = ""
        mapping[header] = guess
        taken.add(guess)
    return mapping


def mapping_problems(*, kind: str, mapping: dict[str, str], match_on: str) -> list[str]:
    """Why this mapping cannot be imported (empty when it can)."""
    labels = {t.name: t.label for t in targets_for(kind)}
    problems = []
    columns_of: dict[str, list[str]] = {}
    for header, name in mapping.items():
        if name:
            columns_of.setdefault(name, []).append(header)
    for name, headers in columns_of.items():
        if name not in labels:
            problems.append(f"“{name}” is not a field of {kind}s.")
        elif len(headers) > 1:
            problems.append(f"Only one column can go to {labels[name]}: {', '.join(headers)}.")
    required = REQUIRED[kind]
    if required not in columns_of:
        problems.append(f"Choose the column that holds the {labels[required].lower()}.")
    if match_on:
        if match_on not in MATCH_ON[kind]:
            problems.append(f"{kind.title()}s cannot be matched on {match_on}.")
        elif match_on not in columns_of:
            problems.append(f"To match on {labels[match_on]}, choose the column that holds it.")
    return problems


# --- reading the file ---------------------------------------------------------------------------


# What Excel and other spreadsheets save CSV files in, offered on the upload form. A file in
# one of the 8-bit code pages cannot be told from another by its bytes (each decodes any byte),
# so the user says which; the preview shows the names before anything is imported.
ENCODINGS = {
    "utf-8": ("UTF-8", "Excel's “CSV UTF-8”, Google Sheets, Numbers"),
    "cp1252": ("Windows-1252", "Western European, Excel's plain “CSV” on Windows"),
    "cp1250": ("Windows-1250", "Central European"),
    "cp1251": ("Windows-1251", "Cyrillic"),
}
UTF_16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


def _line_of(raw: bytes, error: UnicodeDecodeError, encoding: str = "utf-8") -> int:
    # Counted in the text before the bad byte: in UTF-16 a 0x0A byte is not always a newline.
    return raw[: error.start].decode(encoding, errors="replace").count("\n") + 1


NOT_TEXT = (
    "This is not a plain-text CSV file (it contains NUL characters: is it a spreadsheet, or saved "
    "as UTF-16 without a byte-order mark?). Save it as “CSV UTF-8” and upload it again."
)


def _decode(raw: bytes, encoding: str = "utf-8") -> str:
    """The file's text. A byte-order mark settles UTF-8 and UTF-16 (Excel's "Unicode text"),
    and so does a file that reads as UTF-8, whatever was chosen: text in a Windows code page with
    letters outside ASCII practically never does, and in ASCII the two are the same."""
    if raw.startswith(UTF_16_BOMS):
        try:
            text = raw.decode("utf-16")
        except UnicodeDecodeError as error:
            raise ImportFileError(
                f"The file starts as UTF-16 but is not (line {_line_of(raw, error, 'utf-16')})."
            ) from None
    elif b"\x00" in raw:
        raise ImportFileError(NOT_TEXT)
    else:
        text = _decode_8bit(raw, encoding)
    if "\x00" in text:
        # PostgreSQL's text holds no NUL character.
        raise ImportFileError(NOT_TEXT)
    return text


def _decode_8bit(raw: bytes, encoding: str) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        # A UTF-8 byte-order mark says what the file is, whatever was chosen.
        if encoding == "utf-8" or raw.startswith(codecs.BOM_UTF8):
            raise ImportFileError(
                f"The file is not UTF-8 (the first character that is not is on line "
                f"{_line_of(raw, error)}). If Excel saved it as plain “CSV”, choose its "
                "encoding (Windows-1252 for Western European languages) and upload it again, "
                "or save it as “CSV UTF-8”."
            ) from None
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as error:
        raise ImportFileError(
            f"The file is not {ENCODINGS[encoding][0]} either (line "
            f"{_line_of(raw, error, encoding)} has a byte that encoding does not use). Save it "
            "as “CSV UTF-8” and upload it again."
        ) from None


def _lines(text: str) -> Iterator[str]:
    """The text's lines with their ends, one at a time: the csv reader takes them as they come
    (a quoted value across lines included), and the text is never copied whole (a StringIO of
    it would hold four bytes a character)."""
    start = 0
    while start < len(text):
        end = text.find("\n", start)
        end = len(text) if end < 0 else end + 1
        yield text[start:end]
        start = end


def _delimiter(text: str) -> str:
    """The separator the header line uses most: comma, semicolon or tab (quoted text aside)."""
    first_line = re.sub(r'"[^"]*"', "", next(_lines(text), ""))
    counts = {d: first_line.count(d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


def _records(text: str) -> Iterator[tuple[int, list[str]]]:
    """The file's records as (row number, cells), the header being row 1; blank rows skipped."""
    reader = csv.reader(_lines(text), delimiter=_delimiter(text))
    number = 0
    try:
        for number, cells in enumerate(reader, start=1):
            if any(cell.strip() for cell in cells):
                yield number, cells
    except csv.Error as error:
        raise ImportFileError(f"Row {number + 1} cannot be read: {error}.") from None


def _headers(text: str) -> list[str]:
    first = next(_records(text), None)
    if first is None:
        raise ImportFileError("The file is empty.")
    headers = [cell.strip() or f"Column {i}" for i, cell in enumerate(first[1], start=1)]
    repeated = sorted({h for h in headers if headers.count(h) > 1})
    if repeated:
        raise ImportFileError(
            f"The header row names {', '.join(repeated)} more than once; "
            "give each column its own name."
        )
    return headers


def jobs_with_head(jobs: QuerySet[ImportJob]) -> QuerySet[ImportJob]:
    """The jobs with the start of their file (`head`) in place of all of it: what the mapping and
    preview read, where a million-row file is 100 MB."""
    return jobs.defer("content").annotate(head=Substr("content", 1, HEAD_CHARS))


def _start_of(job: ImportJob) -> str:
    head = getattr(job, "head", None)
    return job.content if head is None else head


def job_headers(job: ImportJob) -> list[str]:
    return _headers(_start_of(job))


# --- services -----------------------------------------------------------------------------------


@transaction.atomic
def import_job_create(*, actor, kind: str, file, encoding: str = "utf-8") -> ImportJob:
    """Keep an uploaded CSV file (decoded from `encoding`, one of ENCODINGS, in the tenant's
    schema) with a guessed mapping. Raises ImportFileError when the file cannot be read at all."""
    if encoding not in ENCODINGS:
        raise ImportFileError(f"“{encoding}” is not an encoding the importer reads.")
    if file.size > MAX_BYTES:
        raise ImportFileError(
            f"The file is {file.size / 1024 / 1024:.1f} MB; the limit is "
            f"{MAX_BYTES // 1024 // 1024} MB. Split it into smaller files."
        )
    text = _decode(file.read(), encoding)
    headers = _headers(text)
    total = sum(1 for _ in _records(text)) - 1
    if total < 1:
        raise ImportFileError("The file has a header row but no rows to import.")
    return ImportJob.objects.create(
        kind=kind,
        file_name=PurePath(file.name or "import.csv").name[:255],
        content=text,
        mapping=mapping_guess(kind=kind, headers=headers),
        total_rows=total,
        created_by=actor,
    )


def import_job_map(
    *, actor, job: ImportJob, mapping: dict[str, str], match_on: str, skip_invalid: bool
) -> ImportJob:
    """Set how the job's columns map onto fields and how rows find existing records. Raises
    ImportMappingError when the mapping cannot be imported."""
    headers = job_headers(job)
    mapping = {header: mapping.get(header, "") for header in headers}
    problems = mapping_problems(kind=job.kind, mapping=mapping, match_on=match_on)
    if problems:
        raise ImportMappingError(problems)
    if (mapping, match_on) != (job.mapping, job.match_on):
        # What a dry run found no longer says what this mapping would do.
        job.checked_at, job.errors = None, []
    job.mapping, job.match_on, job.skip_invalid = mapping, match_on, skip_invalid
    job.save(update_fields=["mapping", "match_on", "skip_invalid", "checked_at", "errors"])
    return job


@transaction.atomic
def import_job_check(*, actor, job: ImportJob) -> bool:
    """Queue a dry run of the whole file: the Celery task imports it and takes it all back, and
    the job, ready to start again, then says how many records the import would create and
    update and which rows it would refuse. False if the job is not waiting for its mapping."""
    return _queue(job, dry_run=True)


@transaction.atomic
def import_job_start(*, actor, job: ImportJob) -> bool:
    """Queue the import (once: a second start does nothing and returns False). The Celery task
    is sent after the commit."""
    return _queue(job, dry_run=False)


def _queue(job: ImportJob, *, dry_run: bool) -> bool:
    from contacts.tasks import import_job_run_task

    problems = mapping_problems(kind=job.kind, mapping=job.mapping, match_on=job.match_on)
    if problems:
        raise ImportMappingError(problems)
    queued = ImportJob.objects.filter(pk=job.pk, status=ImportJob.Status.UPLOADED).update(
        status=ImportJob.Status.QUEUED, dry_run=dry_run
    )
    if queued:
        job.status, job.dry_run = ImportJob.Status.QUEUED, dry_run
        transaction.on_commit(lambda: import_job_run_task.delay(job.pk))
    return bool(queued)


def import_job_run(*, job_id: int) -> ImportJob | None:
    """Import a queued job's rows, all in one transaction: nothing is written unless every row
    is valid, or the user chose to skip the invalid ones. None if the job is not to be run.

    The job's row is claimed for that transaction (crm.claims): a second delivery does nothing,
    and a worker killed mid-way leaves nothing behind for the redelivered task. On an error the
    job is marked failed (in its own write, after the rollback) and the error re-raised."""
    pending = ImportJob.objects.filter(
        pk=job_id, status__in=(ImportJob.Status.QUEUED, ImportJob.Status.RUNNING)
    )
    try:
        with claimed(pending, running=ImportJob.Status.RUNNING, related=("created_by",)) as job:
            if job is None:
                return None
            return _run(job)
    except Exception:
        pending.update(
            status=ImportJob.Status.FAILED,
            finished_at=timezone.now(),
            created_count=0,
            updated_count=0,
            errors=[
                {
                    "row": None,
                    "field": "",
                    "message": "The import stopped on an unexpected error; nothing was imported.",
                }
            ],
        )
        raise


# Progress goes to the cache (Redis), not to the job row: the import writes the row in the same
# transaction as the records, so other connections would only see it when all is over. Cache keys
# carry the tenant's schema (crm.tenants.cache), so the figure stays within the tenant.
def _progress_key(job_id: int) -> str:
    return f"import-progress:{job_id}"


def _progress_set(job: ImportJob, rows: int) -> None:
    cache.set(_progress_key(job.pk), rows, timeout=24 * 3600)


def import_job_progress(job: ImportJob) -> int:
    """Rows processed so far: live from the cache while the job runs, from the job after."""
    if job.status == ImportJob.Status.RUNNING:
        return min(int(cache.get(_progress_key(job.pk)) or 0), job.total_rows)
    return job.processed_rows


def _run(job: ImportJob) -> ImportJob:
    job.finished_at = timezone.now()
    if job.created_by is None or not job.created_by.is_active:
        job.status = ImportJob.Status.FAILED
        job.errors = [
            {
                "row": None,
                "field": "",
                "message": "The user who uploaded the file is no longer active.",
            }
        ]
        job.save(update_fields=["status", "errors", "finished_at"])
        return job
    importer = _Importer(job=job, user=job.created_by, lock=True)
    processed = created = updated = 0
    # The rows go in a chunk at a time, so that memory holds one chunk however long the file;
    # a savepoint takes them all back if a bad row stops the import. Rows after a bad one are
    # still checked (and written, to be checked against what the file wrote before them), so
    # that the report lists every bad row.
    with transaction.atomic():
        for chunk in _chunks(_records(job.content)):
            importer.check(chunk)
            made, changed = importer.write(file_name=job.file_name)
            created, updated = created + made, updated + changed
            processed += len(chunk)
            _progress_set(job, processed)
        refused = bool(importer.errors) and not job.skip_invalid
        if refused or job.dry_run:
            transaction.set_rollback(True)
    job.processed_rows = processed
    job.errors = importer.errors
    if job.dry_run:
        # What the import would do; the job waits for its start (or another mapping).
        job.status, job.checked_at = ImportJob.Status.UPLOADED, timezone.now()
        job.created_count, job.updated_count = created, updated
    elif refused:
        job.status = ImportJob.Status.FAILED
        job.created_count = job.updated_count = 0
    else:
        job.created_count, job.updated_count = created, updated
        job.status = ImportJob.Status.DONE
    job.save(
        update_fields=[
            "processed_rows",
            "errors",
            "finished_at",
            "status",
            "created_count",
            "updated_count",
            "checked_at",
        ]
    )
    return job


def _chunks(records: Iterator[tuple[int, list[str]]]) -> Iterator[list[tuple[int, list[str]]]]:
    records = iter(records)
    next(records, None)  # the header
    chunk = []
    for record in records:
        chunk.append(record)
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# --- preview ------------------------------------------------------------------------------------


@dataclass
class PreviewRow:
    number: int
    action: str  # "create", "update" or "error"
    cells: list[tuple[str, str, bool]]  # (header, value, has an error)
    errors: list[dict]


def import_preview(*, job: ImportJob, user, limit: int = PREVIEW_ROWS) -> list[PreviewRow]:
    """The first rows as they would be imported with the job's mapping, and what is wrong with
    each. Writes nothing."""
    importer = _Importer(job=job, user=user, lock=False)
    records = list(_first_rows(job, limit))
    actions = importer.check(records)
    mapped = [h for h in importer.headers if job.mapping.get(h)]
    index = {h: i for i, h in enumerate(importer.headers)}
    rows = []
    for number, cells in records:
        errors = [e for e in importer.errors if e["row"] == number]
        bad = {e["field"] for e in errors}
        rows.append(
            PreviewRow(
                number=number,
                action=actions[number],
                cells=[
                    (h, cells[index[h]].strip() if index[h] < len(cells) else "", h in bad)
                    for h in mapped
                ],
                errors=errors,
            )
        )
    return rows


def _first_rows(job: ImportJob, limit: int) -> Iterator[tuple[int, list[str]]]:
    records = _records(_start_of(job))
    next(records, None)
    for _, record in zip(range(limit), records, strict=False):
        yield record


# --- reading jobs -------------------------------------------------------------------------------


def import_jobs_for(user) -> QuerySet[ImportJob]:
    """The jobs a user may open: their own; admins see everyone's."""
    jobs = ImportJob.objects.select_related("created_by")
    return jobs if user.role == Role.ADMIN else jobs.filter(created_by=user)


def import_errors_csv(job: ImportJob) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["row", "column", "message"])
    for error in job.errors:
        writer.writerow([error["row"] or "", _inert(error["field"]), _inert(error["message"])])
    return out.getvalue()


def _inert(text: str) -> str:
    # A spreadsheet would run a cell starting with one of these as a formula.
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


# --- checking and writing rows ------------------------------------------------------------------


@contextmanager
def _btree_lookups():
    """Look keys up (e-mail addresses, company names) through the b-tree indexes. The same
    columns have trigram indexes for searching, which answer `=` too: after a large insert, whose
    rows wait in the trigram indexes' pending lists, the planner still chose them, and a chunk's
    1,000 addresses took 2.5 s to find instead of a few milliseconds. Trigram (GIN) indexes are
    read only by bitmap scans, so the import's transaction turns those off for the lookups."""
    if not connection.in_atomic_block:
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_bitmapscan = off")
    yield
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_bitmapscan = on")


@dataclass(eq=False)
class _Slot:
    """A record rows of this file write to: one about to be created, or an existing one."""

    instance: Model
    first_row: int
    existing: bool
    before: dict = field(default_factory=dict)
    # Set once a valid row wrote to it; later rows then change only the fields they give.
    taken: bool = False


class _Importer:
    """Checks rows chunk by chunk (one query per chunk for each lookup) and collects what to
    create and update; `write` then saves a chunk's records in bulk and forgets them."""

    def __init__(self, *, job: ImportJob, user, lock: bool):
        self.job, self.user, self.lock = job, user, lock
        self.kind = job.kind
        self.model = MODELS[self.kind]
        self.headers = job_headers(job)
        self.columns = [
            (i, h, job.mapping[h]) for i, h in enumerate(self.headers) if job.mapping.get(h)
        ]
        self.column_of = {name: header for _, header, name in self.columns}
        self.match_on = job.match_on
        self.errors: list[dict] = []
        self.slots: list[_Slot] = []
        self.by_key: dict[str, _Slot] = {}  # match key -> slot, for duplicates within the file
        # External ID -> the first row that gave it, and its record: the slot until written,
        # then the record's id. The claims made since the last write are in `new_claims`.
        self.external_ids: dict[str, tuple[int, _Slot | int]] = {}
        self.new_claims: list[str] = []
        # Records this file created: a later row about one updates it, but it counts as created.
        self.created_ids: set[int] = set()
        # Rows added to the tables this file grows since their statistics were last taken, and
        # how many rows the tables had then (see _statistics_kept).
        self.grown, self.sampled = 0, self._rows_known()
        self.users = {u.email.lower(): u for u in User.objects.filter(is_active=True)}
        self.accounts: dict[str, Account | None] = {}  # upper name -> visible account
        self.new_accounts: dict[str, Account] = {}
        self.matches: dict[str, tuple[str, Model | None]] = {}
        self.taken_external_ids: dict[str, int] = {}

    # Lookups, one query each per chunk.

    def _preload(self, rows: list[dict[str, str]]) -> None:
        with _btree_lookups():
            self._lookups(rows)

    def _lookups(self, rows: list[dict[str, str]]) -> None:
        if self.kind == RecordKind.CONTACT and "account" in self.column_of:
            names = {r["account"].upper() for r in rows if r.get("account")} - self.accounts.keys()
            self.accounts.update(dict.fromkeys(names))
            found = (
                access.accounts_for(self.user)
                .annotate(key=Upper("name"))
                .filter(key__in=names)
                .order_by("-id")
            )
            self.accounts.update({a.key: a for a in found})  # the oldest wins
        if self.match_on:
            keys = {self._key(r) for r in rows} - self.matches.keys() - {""}
            self._find_matches(keys)
        if "external_id" in self.column_of:
            ids = {r["external_id"] for r in rows if r.get("external_id")}
            ids -= self.taken_external_ids.keys()
            self.taken_external_ids.update(
                self.model.objects.filter(external_id__in=ids).values_list("external_id", "pk")
            )

    def _key(self, row: dict[str, str]) -> str:
        value = row.get(self.match_on, "")
        return value.upper() if self.match_on == ImportJob.MatchOn.EMAIL else value

    def _find_matches(self, keys: set[str]) -> None:
        if not keys:
            return
        if self.match_on == ImportJob.MatchOn.EMAIL:
            found = self.model.objects.annotate(key=Upper("email")).filter(key__in=keys)
        else:
            found = self.model.objects.annotate(key=F("external_id")).filter(external_id__in=keys)
        if self.lock:
            found = found.select_for_update()
        found = list(found.order_by("id"))
        reachable = access.contacts_for if self.kind == RecordKind.CONTACT else access.accounts_for
        visible = set(
            reachable(self.user).filter(pk__in=[r.pk for r in found]).values_list("pk", flat=True)
        )
        self.matches.update(dict.fromkeys(keys, ("none", None)))
        for record in found:
            state, _ = self.matches[record.key]
            if record.pk not in visible:
                if state == "none":
                    self.matches[record.key] = ("hidden", None)
            elif state in ("none", "hidden"):
                self.matches[record.key] = ("found", record)
            else:
                self.matches[record.key] = ("ambiguous", None)

    # Checking.

    def check(self, records: list[tuple[int, list[str]]]) -> dict[int, str]:
        """Check a chunk of rows, keeping the good ones; returns each row's action."""
        width = len(self.headers)
        parsed = []
        actions = {}
        for number, cells in records:
            if len(cells) < width or any(c.strip() for c in cells[width:]):
                self._error(
                    number,
                    "",
                    f"This row has {len(cells)} cells where the header has {width}; "
                    "check for a missing or extra separator or an unclosed quote.",
                )
                actions[number] = "error"
            else:
                parsed.append((number, {name: cells[i].strip() for i, _, name in self.columns}))
        self._preload([row for _, row in parsed])
        for number, row in parsed:
            actions[number] = self._check_row(number, row)
        return actions

    def _error(self, number: int, name: str, message: str) -> None:
        column = "" if name == NON_FIELD_ERRORS else self.column_of.get(name, name)
        self.errors.append({"row": number, "field": column, "message": message})

    def _check_row(self, number: int, row: dict[str, str]) -> str:
        problems: list[tuple[str, str]] = []
        values = self._convert(row, problems)
        slot = None
        if not problems:
            slot = self._slot_for(number, row, problems)
        candidate = None
        if slot is not None:
            partial = slot.existing or slot.taken
            if partial and self.match_on:
                # The record was found by this value (in any case); keep it as it is spelled.
                values.pop(self.match_on, None)
            candidate = copy.copy(slot.instance)
            for name, value in values.items():
                setattr(candidate, name, value)
            # A record already written to (in the database, or by an earlier row) is checked only
            # on the fields this row gives.
            exclude = [
                f.name
                for f in self.model._meta.concrete_fields
                if f.name in LOOKED_UP or (partial and f.name not in values)
            ]
            try:
                candidate.full_clean(
                    exclude=exclude, validate_unique=False, validate_constraints=False
                )
            except ValidationError as invalid:
                for name, messages in invalid.message_dict.items():
                    problems.extend((name, message) for message in messages)
            external_id = values.get("external_id")
            if external_id and not problems:
                problems.extend(self._external_id_problems(number, slot, external_id))
        if problems:
            for name, message in problems:
                self._error(number, name, message)
            return "error"
        slot.instance = candidate
        if not slot.taken:
            slot.taken = True
            self.slots.append(slot)
        if self.match_on and (key := self._key(row)):
            self.by_key[key] = slot
        external_id = values.get("external_id")
        if external_id and external_id not in self.external_ids:
            self.external_ids[external_id] = (slot.first_row, slot)
            self.new_claims.append(external_id)
        account = values.get("account")
        if account is not None and account.pk is None:
            self.new_accounts.setdefault(account.name.upper(), account)
        return "update" if slot.existing else "create"

    def _convert(self, row: dict[str, str], problems: list) -> dict[str, object]:
        """The row's non-empty mapped values as our fields' values."""
        values: dict[str, object] = {}
        for name, text in row.items():
            if not text:
                continue
            if name == "owner":
                owner = self.users.get(text.lower())
                if owner is None:
                    problems.append((name, f"No active user has the e-mail address “{text}”."))
                values[name] = owner
            elif name == "account":
                values[name] = self._account(text, problems)
            elif name in LIST_FIELDS:
                values[name] = list(dict.fromkeys(p.strip() for p in text.split(",") if p.strip()))
            elif name in BOOLEAN_FIELDS:
                if text.lower() not in TRUE | FALSE:
                    problems.append((name, f"“{text}” is not yes or no."))
                values[name] = text.lower() in TRUE
            elif name == "employees":
                try:
                    values[name] = int(text.replace(" ", "").replace(",", ""))
                except ValueError:
                    problems.append((name, f"“{text}” is not a whole number."))
            elif name in ("customer_type", "lifecycle_stage"):
                choices = self.model._meta.get_field(name).choices
                values[name] = next(
                    (v for v, label in choices if text.lower() in (v, label.lower())), text
                )
            else:
                values[name] = text
        return values

    def _account(self, name: str, problems: list) -> Account | None:
        key = name.upper()
        if found := self.accounts.get(key):
            return found
        if key in self.new_accounts:
            return self.new_accounts[key]
        account = Account(name=name, owner=self.user)
        try:
            account.clean_fields(exclude=[f.name for f in Account._meta.fields if f.name != "name"])
        except ValidationError as invalid:
            problems.extend(("account", m) for m in invalid.message_dict["name"])
        return account

    def _slot_for(self, number: int, row: dict[str, str], problems: list) -> _Slot | None:
        key = self._key(row) if self.match_on else ""
        if not key:
            return _Slot(instance=self.model(owner=self.user), first_row=number, existing=False)
        if key in self.by_key:
            return self.by_key[key]
        state, record = self.matches[key]
        if state == "hidden":
            problems.append(
                (self.match_on, "A record with this value exists but you cannot edit it.")
            )
            return None
        if state == "ambiguous":
            problems.append(
                (self.match_on, "Several records you can see have this value; merge them first.")
            )
            return None
        if state == "found":
            return _Slot(
                instance=record, first_row=number, existing=True, before=field_values(record)
            )
        return _Slot(instance=self.model(owner=self.user), first_row=number, existing=False)

    def _external_id_problems(self, number: int, slot: _Slot, external_id: str) -> list:
        first_row, holder = self.external_ids.get(external_id, (0, slot))
        if holder is not slot and not (slot.existing and holder == slot.instance.pk):
            return [("external_id", f"Row {first_row} of this file has the same external ID.")]
        owner_pk = self.taken_external_ids.get(external_id)
        if owner_pk is not None and not (slot.existing and slot.instance.pk == owner_pk):
            return [("external_id", "Another record already has this external ID.")]
        return []

    # Writing.

    def _tables(self) -> list[str]:
        return list(dict.fromkeys([self.model._meta.db_table, Account._meta.db_table]))

    def _rows_known(self) -> int:
        """How many rows the planner believes the tables hold (-1 when never analyzed)."""
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT coalesce(min(reltuples), -1) FROM pg_class WHERE oid = ANY(%s::regclass[])",
                [self._tables()],
            )
            return max(int(cursor.fetchone()[0]), 0)

    def _statistics_kept(self, added: int) -> None:
        """ANALYZE the tables this import grows each time it has doubled them since their
        statistics were taken. Without statistics on the upper-cased e-mail, the planner takes
        a chunk's 1,000 addresses to match most of the table and reads all of it for each chunk
        of the first import into a new tenant (3.7 s of 65 s for 200,000 rows, growing with the
        square of the file). A handful of ANALYZEs in all (each samples 30,000 rows), inside the
        import's transaction, whose rows they see."""
        self.grown += added
        if self.grown < max(self.sampled, CHUNK):
            return
        with connection.cursor() as cursor:
            for table in self._tables():
                cursor.execute(f'ANALYZE "{table}"')
        self.sampled, self.grown = self.sampled + self.grown, 0

    def write(self, *, file_name: str) -> tuple[int, int]:
        """Save what the rows checked since the last write create and change, with audit
        entries and timeline entries, in bulk; then forget them (a later row about one of these
        records finds it in the database, as it finds any other). Returns (created, updated)."""
        actor = self.user
        created = [s.instance for s in self.slots if not s.existing]
        changed = services.records_bulk_save(
            actor=actor,
            created=[*self.new_accounts.values(), *created],
            changed=[(s.instance, s.before) for s in self.slots if s.existing],
            summary=lambda record: f"{actor} imported {record} from {file_name}",
        )
        for external_id in self.new_claims:
            first_row, slot = self.external_ids[external_id]
            self.external_ids[external_id] = (first_row, slot.instance.pk)
        updated = sum(1 for record in changed if record.pk not in self.created_ids)
        self.created_ids.update(record.pk for record in created)
        self._statistics_kept(len(created) + len(self.new_accounts))
        self.accounts.update(self.new_accounts)
        self.new_accounts, self.new_claims = {}, []
        self.slots, self.by_key, self.matches, self.taken_external_ids = [], {}, {}, {}
        return len(created), updated
