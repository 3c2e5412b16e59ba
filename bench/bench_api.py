"""The REST API on a large tenant, through gunicorn, with 16 concurrent clients.

Starts its own embedded PostgreSQL and Redis in a temporary folder (unless DATABASE_URL and
REDIS_URL are set), seeds a tenant with BENCH_CONTACTS contacts (default 1,000,000), makes an API
key for its admin and raises the tenant's rate limit out of the way, then times, with the key as
a partner would: the contact list's first page and a deep one, one contact by id, the lookup of a
contact by e-mail, creating one contact, and the bulk upsert of 1,000 contacts (half of them new,
half updates of contacts the same client sent in its call before). Any answer that is not 2xx is
counted as an error and printed.

Each call is timed twice: by the server (Django's own time, from its Server-Timing header:
`api.<call>_p50`, `api.<call>_p95`) and by the client over loopback (`_client_p50`,
`_client_p95`: the server's time plus the wait in the socket queue and for the client threads'
own CPU, which share the machine).

Each read is compared with the same SELECT run as raw SQL over psycopg, creating one contact with
a raw INSERT, and the bulk upsert with a raw COPY of 1,000 contact rows (each rolled back); the
ratio printed is the API's server-side p95 over the raw p95 (`_client_vs_sql` the same from the
client-side p95; for the bulk upsert's rate, the raw COPY's contacts per second over the API's,
whose rate is the clients' wall-clock one). The raw figures are from one connection at a time,
the API's from 16 clients sharing gunicorn's workers, as a partner's integrations would.

With BENCH_REUSE=1 and DATABASE_URL/REDIS_URL set, a tenant seeded by an earlier run (of this
benchmark or of bench_sales.py) on that database is used again as it is.

Prints `BENCH api.<metric> <value> <unit>` lines; leaves nothing running.
"""

import itertools
import json
import os
import random
import statistics
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime

from measure import (
    percentile,
    raw_connection,
    server_ms,
    start_gunicorn,
    time_sql,
    warmed_up_load,
)
from platform_setup import platform_ready

CONTACTS = int(os.environ.get("BENCH_CONTACTS", "1000000"))
CLIENTS = 16
REQUESTS_PER_CALL = int(os.environ.get("BENCH_REQUESTS", "320"))
BULK_SIZE = 1000
BULK_ROUNDS = int(os.environ.get("BENCH_BULK_ROUNDS", "3"))
REUSE = os.environ.get("BENCH_REUSE") == "1"
# The sample of contacts that gets and e-mail lookups pick from, so they are not one cached row.
SAMPLE = 500
# Contact columns as the API returns them; the raw reads select the same.
COLUMNS = (
    "id, first_name, last_name, email, other_emails, phone, other_phones, title, account_id, "
    "owner_id, territory, customer_type, source, lifecycle_stage, interests, do_not_email, "
    "do_not_call, do_not_mail, external_id, created_at, updated_at"
)


def main() -> None:
    platform_ready()
    from django.conf import settings

    tenant, key, sample, deep_key, deep_cursor = prepare()
    port = start_gunicorn(settings)
    host = f"{tenant.slug}.localhost:{port}"
    client = Client(port, host, key)
    rng = random.Random(4)
    run = f"{int(time.time())}"
    created = itertools.count()

    reads = {
        "list_first": lambda: ("GET", "/api/v1/contacts/", None),
        "list_deep": lambda: ("GET", f"/api/v1/contacts/?cursor={deep_cursor}", None),
        "get": lambda: ("GET", f"/api/v1/contacts/{rng.choice(sample)[0]}/", None),
        "email_lookup": lambda: (
            "GET",
            "/api/v1/contacts/?email=" + urllib.request.quote(rng.choice(sample)[1]),
            None,
        ),
        "create": lambda: (
            "POST",
            "/api/v1/contacts/",
            new_contact(f"{run}.{next(created)}"),
        ),
    }
    raw = raw_queries(deep_key)
    for name, call in reads.items():
        samples, errors = client.load(call, REQUESTS_PER_CALL)
        sql = time_raw(tenant, raw[name], sample, rng) if name != "create" else time_insert(tenant)
        report(name, samples, errors, sql)

    bulk_samples, bulk_errors, rate = client.bulk(run)
    copy = time_copy(tenant)
    report("bulk_upsert", bulk_samples, bulk_errors, copy)
    copy_rate = BULK_SIZE / (statistics.median(copy) / 1000)
    print(f"BENCH api.bulk_upsert_rate {rate:.0f} contacts/s", flush=True)
    print(f"BENCH api.bulk_upsert_copy_rate {copy_rate:.0f} contacts/s", flush=True)
    print(f"BENCH api.bulk_upsert_vs_copy {copy_rate / rate:.2f} ratio", flush=True)


def new_contact(tag: str) -> dict:
    return {"first_name": "Bench", "last_name": f"Created {tag}", "email": f"{tag}@bench.example"}


class Samples:
    """Milliseconds of each call as the clients saw it, and as the server says it took."""

    def __init__(self):
        self.client: list[float] = []
        self.server: list[float] = []

    def add(self, client: float, server: float | None) -> None:
        self.client.append(client)
        # An answer made outside Django (none is expected) carries no Server-Timing.
        if server is not None:
            self.server.append(server)


def report(name: str, samples: Samples, errors: int, sql: list[float]) -> None:
    sql_p95 = percentile(sql, 0.95)
    for prefix, values in ((name, samples.server), (f"{name}_client", samples.client)):
        print(f"BENCH api.{prefix}_p50 {statistics.median(values):.1f} ms", flush=True)
        print(f"BENCH api.{prefix}_p95 {percentile(values, 0.95):.1f} ms", flush=True)
    print(f"BENCH api.{name}_sql_p95 {sql_p95:.2f} ms", flush=True)
    ratio = percentile(samples.server, 0.95) / sql_p95
    print(f"BENCH api.{name}_vs_sql {ratio:.1f} ratio", flush=True)
    ratio = percentile(samples.client, 0.95) / sql_p95
    print(f"BENCH api.{name}_client_vs_sql {ratio:.1f} ratio", flush=True)
    print(f"BENCH api.{name}_errors {errors} calls", flush=True)


def prepare():
    """The seeded tenant, an API key of its admin, a sample of (id, e-mail) of its contacts,
    and the key and cursor of a page 90% of the way through the default order."""
    from django.core import signing
    from django.db import connection
    from django_tenants.utils import schema_context

    from crm.api.pagination import SALT
    from crm.demo import demo_seed
    from crm.tenants.models import Tenant
    from crm.tenants.services import tenant_provision
    from crm.users.models import User
    from integrations.keys import api_key_create
    from integrations.ratelimit import api_rate_limit_set

    tenant = Tenant.objects.filter(slug="bench").first() if REUSE else None
    seeding = tenant is None
    if seeding:
        tenant = tenant_provision(
            slug="bench",
            name="Bench Co",
            admin_email="admin@bench.example",
            admin_password="a-long-bench-password-1",
        )
    # Thousands of calls a minute from one key: a limit in the way would time the 429s.
    api_rate_limit_set(tenant=tenant, limit=10_000_000)
    with schema_context(tenant.schema_name):
        if seeding:
            started = time.monotonic()
            demo_seed(contacts=CONTACTS)
            print(
                f"BENCH api.seed_{CONTACTS}_contacts_s {time.monotonic() - started:.1f} s",
                flush=True,
            )
        admin = User.objects.get(email="admin@bench.example")
        _, key = api_key_create(actor=None, user=admin, name="bench_api.py", read_only=False)
        with connection.cursor() as cursor:
            if seeding:
                # A table that has been in use a while is mostly all-visible, so index-only
                # scans work; a freshly loaded one is not until autovacuum comes by.
                cursor.execute("VACUUM ANALYZE")
            cursor.execute(
                "SELECT id, email FROM contacts_contact WHERE email <> '' "
                "ORDER BY random() LIMIT %s",
                [SAMPLE],
            )
            sample = cursor.fetchall()
            cursor.execute("SELECT count(*) FROM contacts_contact")
            (contacts,) = cursor.fetchone()
            # The list's default order is the sync order, (updated_at, id). The cursor is the
            # one the API's `next` link carries on the page that ends at this row: signed as
            # pagination.py signs it, so the server cannot tell it from one a client reached by
            # following 18,000 `next` links, which a benchmark cannot afford to do.
            cursor.execute(
                "SELECT updated_at, id FROM contacts_contact ORDER BY updated_at, id "
                "OFFSET %s LIMIT 1",
                [int(contacts * 0.9)],
            )
            updated_at, contact_id = cursor.fetchone()
    connection.set_schema_to_public()
    deep_key = [updated_at.isoformat(), contact_id]
    deep_cursor = signing.dumps(["n", deep_key], salt=f"{SALT}:contacts_contact:updated_at")
    return tenant, key, sample, [updated_at, contact_id], deep_cursor


class Client:
    """Calls the API over loopback with the key; latency is the server's time plus a little."""

    def __init__(self, port: int, host: str, key: str):
        self.port, self.host, self.key = port, host, key

    def call(self, method: str, path: str, body) -> tuple[float, float | None, bool]:
        """Milliseconds as the client saw them and as the server says it took, and whether the
        answer was 2xx."""
        headers = {"Host": self.host, "Authorization": f"Bearer {self.key}"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", data=data, headers=headers, method=method
        )
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                response.read()
                ok = 200 <= response.status < 300
                headers = response.headers
        except urllib.error.HTTPError as error:
            error.read()
            ok = False
            headers = error.headers
            if not getattr(self, "shown", False):
                self.shown = True
                print(f"# {method} {path.split('?')[0]}: {error.code}", flush=True)
        return (time.perf_counter() - started) * 1000, server_ms(headers), ok

    def load(self, make_call, count: int) -> tuple[Samples, int]:
        """`count` calls from CLIENTS threads, after a warm-up (`measure.warmed_up_load`):
        milliseconds each, and how many failed."""
        samples = Samples()
        errors = 0
        lock = threading.Lock()

        def one(timed: bool) -> None:
            nonlocal errors
            with lock:
                method, path, body = make_call()
            elapsed, own, ok = self.call(method, path, body)
            if timed:
                with lock:
                    samples.add(elapsed, own)
                    errors += not ok

        warmed_up_load(one, clients=CLIENTS, calls=count // CLIENTS)
        return samples, errors

    def bulk(self, run: str) -> tuple[Samples, int, float]:
        """Each client sends BULK_ROUNDS batches of 1,000 contacts: half new, half the new ones
        of its batch before, changed (a first, untimed batch gives the first of those). Each
        client has external ids of its own, so concurrent batches never race for one.
        Milliseconds per call, failed calls, and contacts upserted per second overall."""
        samples = Samples()
        errors = 0
        lock = threading.Lock()
        half = BULK_SIZE // 2

        def batch(client: int, round_: int, size: int) -> list[dict]:
            return [
                {
                    "external_id": f"bench-{run}-{client}-{round_}-{n}",
                    "first_name": "Bulk",
                    "last_name": f"Contact {client}-{round_}-{n}",
                    "email": f"bulk.{run}.{client}.{round_}.{n}@bench.example",
                    "lifecycle_stage": "awareness",
                }
                for n in range(size)
            ]

        def changed(records: list[dict]) -> list[dict]:
            return [{**r, "lifecycle_stage": "evaluation"} for r in records]

        previous = {c: batch(c, 0, half) for c in range(CLIENTS)}
        for c in range(CLIENTS):
            self.call("POST", "/api/v1/contacts/bulk/", {"records": previous[c]})
        barrier = threading.Barrier(CLIENTS + 1)

        def client(c: int) -> None:
            nonlocal errors
            last = previous[c]
            bodies = []
            for round_ in range(1, BULK_ROUNDS + 1):
                new = batch(c, round_, half)
                bodies.append({"records": changed(last) + new})
                last = new
            barrier.wait()
            for body in bodies:
                elapsed, own, ok = self.call("POST", "/api/v1/contacts/bulk/", body)
                with lock:
                    samples.add(elapsed, own)
                    errors += not ok

        threads = [threading.Thread(target=client, args=(c,)) for c in range(CLIENTS)]
        for thread in threads:
            thread.start()
        barrier.wait()
        started = time.perf_counter()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        return samples, errors, CLIENTS * BULK_ROUNDS * BULK_SIZE / elapsed


def raw_queries(deep_key: list) -> dict:
    """The reads' SELECTs, written by hand, and their parameters (or, for a get or a lookup, how
    to take them from a sampled (id, e-mail))."""
    page = "ORDER BY updated_at, id LIMIT 51"
    return {
        "list_first": (f"SELECT {COLUMNS} FROM contacts_contact {page}", []),
        "list_deep": (
            f"SELECT {COLUMNS} FROM contacts_contact WHERE (updated_at, id) > (%s, %s) {page}",
            deep_key,
        ),
        "get": (f"SELECT {COLUMNS} FROM contacts_contact WHERE id = %s", lambda s: [s[0]]),
        "email_lookup": (
            f"SELECT {COLUMNS} FROM contacts_contact WHERE upper(email) = upper(%s) {page}",
            lambda s: [s[1]],
        ),
    }


def time_raw(tenant, query: tuple, sample: list, rng, rounds: int = 50) -> list[float]:
    sql, params = query
    if not callable(params):
        return time_sql(tenant, (sql, params), rounds)
    samples = []
    with raw_connection(tenant) as conn:
        for _ in range(rounds):
            values = params(rng.choice(sample))
            started = time.perf_counter()
            conn.execute(sql, values).fetchall()
            samples.append((time.perf_counter() - started) * 1000)
    return samples


def contact_row(n: int, now: datetime) -> tuple:
    return (
        "Raw",
        f"Contact {n}",
        f"raw.{n}@bench.example",
        [],
        "",
        [],
        "",
        None,
        None,
        "",
        "prospect",
        "",
        "awareness",
        [],
        False,
        False,
        False,
        f"raw-{n}",
        now,
        now,
    )


RAW_COLUMNS = COLUMNS.removeprefix("id, ")


def time_insert(tenant, rounds: int = 50) -> list[float]:
    """One contact with a plain INSERT, rolled back each time."""
    samples = []
    placeholders = ", ".join(["%s"] * len(RAW_COLUMNS.split(", ")))
    with raw_connection(tenant) as conn:
        for n in range(rounds):
            started = time.perf_counter()
            with conn.transaction(force_rollback=True):
                conn.execute(
                    f"INSERT INTO contacts_contact ({RAW_COLUMNS}) VALUES ({placeholders})",
                    contact_row(n, datetime.now(UTC)),
                )
            samples.append((time.perf_counter() - started) * 1000)
    return samples


def time_copy(tenant, rounds: int = 10) -> list[float]:
    """1,000 contact rows with COPY, rolled back each time."""
    samples = []
    with raw_connection(tenant) as conn:
        for _ in range(rounds):
            started = time.perf_counter()
            with conn.transaction(force_rollback=True):
                now = datetime.now(UTC)
                with conn.cursor().copy(
                    f"COPY contacts_contact ({RAW_COLUMNS}) FROM STDIN"
                ) as copy:
                    for n in range(BULK_SIZE):
                        copy.write_row(contact_row(n, now))
            samples.append((time.perf_counter() - started) * 1000)
    return samples


if __name__ == "__main__":
    main()
