"""A CSV import of a million contacts, through the code the Celery worker runs.

Starts its own embedded PostgreSQL and Redis in a temporary folder (unless DATABASE_URL and
REDIS_URL are set), makes a fresh tenant, writes a CSV file of BENCH_ROWS contacts (default
1,000,000: name, e-mail, company out of 20,000, phone, territory, life-cycle stage, title) and
times: the upload (decoding, counting and keeping the file), the import of all new contacts
matched on e-mail (`contacts.imports.import_job_run`, as the worker calls it; the accounts are
created as it goes), and the same contacts imported again with another title, every row now an
update. The worker's peak memory
during each run is its resident set's high-water mark. The raw limit is the same number of
contact rows written with one COPY over psycopg (rolled back).

Prints `BENCH sales.import_<metric> <value> <unit>` lines; leaves nothing running.
"""

import io
import os
import time
from datetime import UTC, datetime
from pathlib import Path

from measure import raw_connection
from platform_setup import platform_ready

ROWS = int(os.environ.get("BENCH_ROWS", "1000000"))
COMPANIES = 20_000
STAGES = ("awareness", "education", "evaluation", "purchase", "reorder")


def csv_file(title: str) -> bytes:
    out = io.StringIO()
    out.write("First name,Last name,E-mail,Company,Phone,Territory,Stage,Title\n")
    for n in range(ROWS):
        out.write(
            f"Ima{n % 7919},Porter{n % 997},import.{n}@bench.example,Company {n % COMPANIES},"
            f"+1 555 {n:07d},{('North', 'South', 'East', 'West')[n % 4]},{STAGES[n % 5]},"
            f"{title}\n"
        )
    return out.getvalue().encode()


def peak_reset() -> None:
    # Linux: "5" resets the process's resident set high-water mark (VmHWM).
    Path("/proc/self/clear_refs").write_text("5")


def peak_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def main() -> None:
    platform_ready()
    from django.db import connection

    from crm.tenants.services import tenant_provision

    slug = f"import{int(time.time())}"
    tenant = tenant_provision(
        slug=slug,
        name="Import Bench",
        admin_email=f"admin@{slug}.example",
        admin_password="a-long-bench-password-1",
    )
    try:
        imports_timed(tenant)
    finally:
        # A million contacts a run: not worth keeping in a database given with DATABASE_URL.
        connection.set_schema_to_public()
        tenant.delete(force_drop=True)


def imports_timed(tenant) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.db import connection
    from django_tenants.utils import schema_context

    from contacts import imports
    from contacts.models import ImportJob
    from crm.users.models import User

    with schema_context(tenant.schema_name):
        admin = User.objects.get()
        # The second file changes every contact's title.
        for label, title in (("new", "Buyer"), ("again", "Head of buying")):
            data = csv_file(title)
            print(f"BENCH sales.import_file_mb {len(data) / 1024 / 1024:.1f} MB", flush=True)
            started = time.monotonic()
            job = imports.import_job_create(
                actor=admin, kind="contact", file=SimpleUploadedFile("people.csv", data)
            )
            uploaded = time.monotonic() - started
            imports.import_job_map(
                actor=admin, job=job, mapping=job.mapping, match_on="email", skip_invalid=False
            )
            # What import_job_start does, without sending the task: the run is timed here.
            ImportJob.objects.filter(pk=job.pk).update(status=ImportJob.Status.QUEUED)
            peak_reset()
            started = time.monotonic()
            job = imports.import_job_run(job_id=job.pk)
            took = time.monotonic() - started
            assert job.status == ImportJob.Status.DONE, job.errors[:5]
            assert job.created_count + job.updated_count == ROWS, job
            metric = f"sales.import_{label}_{ROWS}_rows"
            print(f"BENCH {metric}_upload_s {uploaded:.1f} s", flush=True)
            print(f"BENCH {metric}_s {took:.1f} s", flush=True)
            print(f"BENCH {metric}_rate {ROWS / took:.0f} rows/s", flush=True)
            print(f"BENCH {metric}_peak_rss {peak_mb():.0f} MB", flush=True)
            if label == "new":
                new_took = took
    connection.set_schema_to_public()
    copy = time_copy(tenant)
    print(f"BENCH sales.import_raw_copy_{ROWS}_rows_s {copy:.1f} s", flush=True)
    print(f"BENCH sales.import_vs_copy {new_took / copy:.1f} ratio", flush=True)


def time_copy(tenant) -> float:
    """Seconds to COPY as many contact rows (rolled back): the raw limit."""
    with raw_connection(tenant) as conn:
        owner = conn.execute("SELECT min(id) FROM users_user").fetchone()[0]
        started = time.monotonic()
        with conn.transaction(force_rollback=True):
            now = datetime.now(UTC)
            with conn.cursor().copy(
                "COPY contacts_contact (first_name, last_name, email, other_emails, phone, "
                "other_phones, title, territory, customer_type, source, lifecycle_stage, "
                "interests, do_not_email, do_not_call, do_not_mail, owner_id, created_at, "
                "updated_at) FROM STDIN"
            ) as copy:
                for n in range(ROWS):
                    copy.write_row(
                        (
                            f"Ima{n % 7919}",
                            f"Porter{n % 997}",
                            f"import.{n}@bench.example",
                            [],
                            f"+1 555 {n:07d}",
                            [],
                            "",
                            ("North", "South", "East", "West")[n % 4],
                            "prospect",
                            "",
                            STAGES[n % 5],
                            [],
                            False,
                            False,
                            False,
                            owner,
                            now,
                            now,
                        )
                    )
        return time.monotonic() - started


if __name__ == "__main__":
    main()
