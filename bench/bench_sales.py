"""Sales pages on a large tenant, through gunicorn, with 8 concurrent clients.

Starts its own embedded PostgreSQL and Redis in a temporary folder (unless DATABASE_URL and
REDIS_URL are set), seeds a tenant with BENCH_CONTACTS contacts (default 1,000,000; a fifth as many
accounts, 30% as many opportunities) and one contact with 10,000 timeline entries, then times the
contact list (first page, a filtered page, a search, a deep page), the 360-degree page of that
contact and the pipeline board. Each request is timed twice: by the server (Django's own time, from
its Server-Timing header: `sales.<page>_p50`, `sales.<page>_p95`) and by the client over loopback
(`_client_p50`, `_client_p95`: the server's time plus the wait in the socket queue and for the
client threads' own CPU, which share the machine). Each page's main query is also timed as raw SQL
over psycopg; `_vs_sql` is the page's server-side p95 over the query's p95 (`_client_vs_sql` the
same from the client-side p95).

With BENCH_REUSE=1 and DATABASE_URL/REDIS_URL set, a tenant seeded by an earlier run on that
database is used again as it is (seeding a million contacts takes minutes), so that a change can
be measured over and over.

Prints `BENCH sales.<metric> <value> <unit>` lines; leaves nothing running.
"""

import os
import statistics
import time
from urllib.parse import urlencode

from measure import page_load, percentile, start_gunicorn, time_sql
from platform_setup import platform_ready

CONTACTS = int(os.environ.get("BENCH_CONTACTS", "1000000"))
CLIENTS = 8
REQUESTS_PER_PAGE = int(os.environ.get("BENCH_REQUESTS", "200"))
REUSE = os.environ.get("BENCH_REUSE") == "1"


def main() -> None:
    platform_ready()
    from django.conf import settings

    tenant, contact_id, cookie, deep_key, deep_cursor = prepare()
    port = start_gunicorn(settings)
    host = f"{tenant.slug}.localhost:{port}"

    pages = {
        "contact_list": "/contacts/",
        "filtered": "/contacts/?"
        + urlencode({"territory": "North", "lifecycle_stage": "evaluation"}),
        "search": "/contacts/?q=smith",
        "deep_page": "/contacts/?" + urlencode({"after": deep_cursor}),
        "contact_360": f"/contacts/{contact_id}/",
        "pipeline_board": "/opportunities/board/",
    }
    raw = raw_queries(contact_id, deep_key)
    for name, path in pages.items():
        client, server = page_load(
            port, host, path, cookie, clients=CLIENTS, requests=REQUESTS_PER_PAGE
        )
        sql_p95 = percentile(time_sql(tenant, raw[name]), 0.95)
        for prefix, samples in ((name, server), (f"{name}_client", client)):
            print(f"BENCH sales.{prefix}_p50 {statistics.median(samples):.1f} ms", flush=True)
            print(f"BENCH sales.{prefix}_p95 {percentile(samples, 0.95):.1f} ms", flush=True)
        print(f"BENCH sales.{name}_sql_p95 {sql_p95:.1f} ms", flush=True)
        ratio = percentile(server, 0.95) / sql_p95
        print(f"BENCH sales.{name}_vs_sql {ratio:.2f} ratio", flush=True)
        ratio = percentile(client, 0.95) / sql_p95
        print(f"BENCH sales.{name}_client_vs_sql {ratio:.2f} ratio", flush=True)


def prepare():
    """Seed the tenant (timed), give one contact 10,000 timeline entries, log the admin in."""
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore
    from django.core import signing
    from django.db import connection
    from django_tenants.utils import schema_context

    from crm.demo import demo_seed
    from crm.pagination import SALT
    from crm.tenants.models import Tenant
    from crm.tenants.services import tenant_provision
    from crm.users.models import User

    tenant = Tenant.objects.filter(slug="bench").first() if REUSE else None
    seeding = tenant is None
    if seeding:
        tenant = tenant_provision(
            slug="bench",
            name="Bench Co",
            admin_email="admin@bench.example",
            admin_password="a-long-bench-password-1",
        )
    with schema_context(tenant.schema_name):
        if seeding:
            started = time.monotonic()
            demo_seed(contacts=CONTACTS)
            print(
                f"BENCH sales.seed_{CONTACTS}_contacts_s {time.monotonic() - started:.1f} s",
                flush=True,
            )
        with connection.cursor() as cursor:
            cursor.execute("SELECT id, account_id FROM contacts_contact ORDER BY id LIMIT 1")
            contact_id, account_id = cursor.fetchone()
            if seeding:
                cursor.execute(
                    "INSERT INTO tracking_timelineentry (contact_id, account_id, kind, "
                    "occurred_at, summary, detail) SELECT %s, %s, "
                    "(ARRAY['call','meeting','email','note'])[1 + n %% 4], "
                    "now() - n * interval '1 hour', 'Entry number ' || n, '' "
                    "FROM generate_series(1, 10000) n",
                    [contact_id, account_id],
                )
            # A table that has been in use a while is mostly all-visible, so index-only scans
            # work; a freshly loaded one is not until autovacuum comes by.
            cursor.execute("VACUUM ANALYZE")
            cursor.execute("SELECT count(*) FROM contacts_contact")
            (contacts,) = cursor.fetchone()
            cursor.execute(
                "SELECT last_name, first_name, id FROM contacts_contact "
                "ORDER BY last_name, first_name, id OFFSET %s LIMIT 1",
                [int(contacts * 0.9)],
            )
            deep_key = list(cursor.fetchone())
        user = User.objects.get(email="admin@bench.example")
        session = SessionStore()
        session[SESSION_KEY] = str(user.pk)
        session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
        session.create()
        cursor_value = signing.dumps(deep_key, salt=f"{SALT}:contacts_contact:name")
    connection.set_schema_to_public()
    return tenant, contact_id, f"sessionid={session.session_key}", deep_key, cursor_value


def raw_queries(contact_id: int, deep_key: list) -> dict[str, tuple[str, list]]:
    """Each page's main query, written by hand."""
    columns = "c.id, c.first_name, c.last_name, c.email, c.lifecycle_stage, a.name, u.full_name"
    joins = (
        "FROM contacts_contact c LEFT JOIN contacts_account a ON a.id = c.account_id "
        "LEFT JOIN users_user u ON u.id = c.owner_id"
    )
    order = "ORDER BY c.last_name, c.first_name, c.id LIMIT 51"
    return {
        "contact_list": (f"SELECT {columns} {joins} {order}", []),
        "filtered": (
            f"SELECT {columns} {joins} WHERE upper(c.territory) = upper(%s) AND "
            f"c.lifecycle_stage = %s {order}",
            ["North", "evaluation"],
        ),
        "search": (
            f"SELECT {columns} {joins} WHERE upper(c.first_name) LIKE upper(%s) OR "
            f"upper(c.last_name) LIKE upper(%s) OR upper(c.email) LIKE upper(%s) OR "
            f"upper(c.phone) LIKE upper(%s) OR upper(a.name) LIKE upper(%s) {order}",
            ["%smith%"] * 5,
        ),
        "deep_page": (
            f"SELECT {columns} {joins} WHERE (c.last_name, c.first_name, c.id) > "
            f"(%s, %s, %s) {order}",
            deep_key,
        ),
        "contact_360": (
            "SELECT t.id, t.kind, t.summary, t.occurred_at FROM "
            "tracking_timelineentry t WHERE t.contact_id = %s "
            "ORDER BY t.occurred_at DESC, t.id DESC LIMIT 51",
            [contact_id],
        ),
        # The stages of the first pipeline, each with its kept totals and its 20 biggest deals.
        "pipeline_board": (
            "SELECT s.id, s.name, t.n, t.total, t.total * s.probability / 100, "
            "c.id, c.name, c.amount, c.currency, c.account "
            "FROM opportunities_stage s "
            "CROSS JOIN LATERAL (SELECT sum(count) AS n, sum(amount) AS total "
            "FROM opportunities_stagetotal WHERE stage_id = s.id) t "
            "LEFT JOIN LATERAL (SELECT o.id, o.name, o.amount, o.currency, a.name AS account "
            "FROM opportunities_opportunity o LEFT JOIN contacts_account a ON a.id = o.account_id "
            "WHERE o.stage_id = s.id ORDER BY o.amount DESC, o.id LIMIT 20) c ON true "
            "WHERE s.pipeline_id = (SELECT min(id) FROM opportunities_pipeline) "
            "ORDER BY s.position, c.amount DESC, c.id",
            [],
        ),
    }


if __name__ == "__main__":
    main()
