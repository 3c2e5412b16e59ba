"""Report pages on a large tenant, through gunicorn, with 8 concurrent clients.

Starts its own embedded PostgreSQL and Redis in a temporary folder (unless DATABASE_URL and
REDIS_URL are set) and seeds a tenant as bench_sales does (BENCH_CONTACTS contacts, default
1,000,000, with a fifth as many accounts and 30% as many opportunities), then gives it the history
reports read: four teams of a manager and ten salespeople who own the opportunities; contacts
created over three years; opportunities opened over two years, each with its stage history and
closed 10 to 150 days after it opened; 1.1 million calls, meetings, e-mails, letters and notes
(about a third of them on the opportunities), 400,000 tasks, most of them done, and a
life-cycle ledger of about two million stage changes (six contacts in seven moved through the
stages, forwards and sometimes back); every activity and stage change is on the timeline too;
the deals' audit trail (half of them with a next step changed, one in seven with its expected
close date pushed a month later).

The marketing reports' history comes from bench/marketing_seed.py (campaigns with their costs,
members, sources and forms). The activity, deal (forecast and pipeline movement), life-cycle
and marketing rollups are rebuilt (timed: `_rebuild_s`), then refreshed incrementally (timed:
`_refresh_s`) after new work: 2,000 activities, 300 tasks done, 500 deals changed, stage
changes of up to 2,000 contacts, and marketing_seed's recent clicks, responses and deals. Every
report page
registered in reports.views.REPORTS is then opened with its default filters by the tenant's
admin (whose reports cover everyone): `reports.<report>_p50` and `_p95` are the clients' times
over loopback (the server's own time plus the wait in the socket queue and for the client
threads' CPU, which share the machine); `_server_p50` and `_server_p95` Django's own time from
its Server-Timing header.

With BENCH_REUSE=1 and DATABASE_URL/REDIS_URL set, a tenant seeded by an earlier run (of this
benchmark or of bench_sales.py) on that database is used again, and only what it lacks is added.

Prints `BENCH reports.<metric> <value> <unit>` lines; leaves nothing running.
"""

import os
import random
import statistics
import time
from datetime import timedelta

from measure import page_load, percentile, start_gunicorn
from platform_setup import platform_ready

CONTACTS = int(os.environ.get("BENCH_CONTACTS", "1000000"))
CLIENTS = 8
REQUESTS_PER_PAGE = int(os.environ.get("BENCH_REQUESTS", "200"))
REUSE = os.environ.get("BENCH_REUSE") == "1"
TEAMS, SALESPEOPLE = 4, 10
ACTIVITIES = CONTACTS + CONTACTS // 10
TASKS = CONTACTS * 2 // 5
DAY = 86400.0


def main() -> None:
    platform_ready()
    from django.conf import settings

    tenant, cookie = prepare()
    port = start_gunicorn(settings)
    host = f"{tenant.slug}.localhost:{port}"
    for name, path in pages(tenant):
        client, server = page_load(
            port, host, path, cookie, clients=CLIENTS, requests=REQUESTS_PER_PAGE
        )
        print(f"BENCH reports.{name}_p50 {statistics.median(client):.1f} ms", flush=True)
        print(f"BENCH reports.{name}_p95 {percentile(client, 0.95):.1f} ms", flush=True)
        print(f"BENCH reports.{name}_server_p50 {statistics.median(server):.1f} ms", flush=True)
        print(f"BENCH reports.{name}_server_p95 {percentile(server, 0.95):.1f} ms", flush=True)


def pages(tenant) -> list[tuple[str, str]]:
    """(name, path) of every report page: each report's module registers itself when the
    URLconf loads it."""
    from django.urls import get_resolver
    from django_tenants.utils import schema_context

    get_resolver().url_patterns  # noqa: B018 - loads the report modules, which fill REPORTS
    from reports.views import REPORTS

    with schema_context(tenant.schema_name):
        return [(report.url_name.rpartition(":")[2], report.url) for report in REPORTS]


def prepare():
    """The tenant, seeded with what it lacks and its rollups brought up to date; the admin's
    session cookie."""
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore
    from django.db import connection
    from django_tenants.utils import schema_context

    from crm.demo import demo_seed
    from crm.tenants.models import Tenant
    from crm.tenants.services import tenant_provision
    from crm.users.models import User

    tenant = Tenant.objects.filter(slug="bench").first() if REUSE else None
    if tenant is None:
        tenant = tenant_provision(
            slug="bench",
            name="Bench Co",
            admin_email="admin@bench.example",
            admin_password="a-long-bench-password-1",
        )
        with schema_context(tenant.schema_name):
            timed("seed_contacts", lambda: demo_seed(contacts=CONTACTS))
    with schema_context(tenant.schema_name):
        history_seed()
        with connection.cursor() as cursor:
            # A table that has been in use a while is mostly all-visible, so index-only scans
            # work; a freshly loaded one is not until autovacuum comes by.
            cursor.execute("VACUUM ANALYZE")
        rollups_bring_up_to_date()
        with connection.cursor() as cursor:
            # As autovacuum would after the rollups' rewrite, before the pages are timed.
            cursor.execute("VACUUM ANALYZE")
        user = User.objects.get(email="admin@bench.example")
        session = SessionStore()
        session[SESSION_KEY] = str(user.pk)
        session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
        session.create()
    connection.set_schema_to_public()
    return tenant, f"sessionid={session.session_key}"


def timed(name: str, work) -> None:
    started = time.monotonic()
    work()
    print(f"BENCH reports.{name}_s {time.monotonic() - started:.1f} s", flush=True)


def history_seed() -> None:
    """What the reports read and bench_sales does not seed, each part added once."""
    from marketing_seed import marketing_history_seed

    from campaigns.models import CampaignMember
    from contacts.models import Activity, Task
    from crm.users.models import Team
    from tracking.models import AuditEntry, LifecycleChange

    if not Team.objects.filter(name="Bench team 1").exists():
        timed("seed_people", people_seed)
    if not LifecycleChange.objects.exists():
        timed("seed_lifecycle", lifecycle_seed)
    if not Activity.objects.filter(user__team__name__startswith="Bench team").exists():
        timed("seed_opportunities_activities", opportunities_activities_seed)
    if not Task.objects.exists():
        timed("seed_tasks", tasks_seed)
    if not CampaignMember.objects.exists():
        timed("seed_marketing", marketing_history_seed)
    if not AuditEntry.objects.filter(model="opportunities.opportunity").exists():
        timed("seed_audit", audit_seed)


def salespeople() -> list[int]:
    from crm.users.models import User

    return list(
        User.objects.filter(team__name__startswith="Bench team")
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def people_seed() -> None:
    from django.db import transaction

    from crm.users.models import Role, Team, User

    with transaction.atomic():
        for number in range(1, TEAMS + 1):
            team = Team.objects.create(name=f"Bench team {number}")
            people = [
                User(
                    email=f"bench-{number}-{i}@bench.example",
                    full_name=f"Bench Seller {number}-{i}",
                    role=Role.MANAGER if i == 0 else Role.SALES,
                    team=team,
                )
                for i in range(SALESPEOPLE + 1)
            ]
            for person in people:
                person.set_unusable_password()
            User.objects.bulk_create(people)


def _copy(cursor, table: str, columns: str, rows) -> None:
    with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def lifecycle_seed() -> None:
    """Contacts created over three years; three in four of them moved through the life-cycle
    stages from awareness (a few back from evaluation), in the ledger and on the timeline."""
    from django.db import connection, transaction
    from django.utils import timezone

    rng = random.Random(7)
    now = timezone.now()
    # stage -> [(next stage, probability, mean days before the move)]
    moves = {
        "awareness": [("education", 0.8, 25)],
        "education": [("evaluation", 0.7, 35)],
        "evaluation": [("purchase", 0.55, 40), ("education", 0.25, 30)],
        "purchase": [("reorder", 0.55, 120), ("evaluation", 0.15, 60)],
        "reorder": [("reorder", 0.45, 150), ("evaluation", 0.1, 90)],
    }
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT id FROM contacts_contact ORDER BY id")
        ids = [row[0] for row in cursor.fetchall()]
        changes, contacts = [], []
        for contact_id in ids:
            created = now - timedelta(seconds=rng.uniform(0, 1095 * DAY))
            if rng.random() >= 0.85:
                contacts.append((contact_id, created, None))
                continue
            stage, at = "awareness", created
            while True:
                roll, to = rng.random(), None
                for candidate, probability, mean in moves[stage]:
                    if roll < probability:
                        to, at = candidate, at + timedelta(days=rng.expovariate(1 / mean))
                        break
                    roll -= probability
                if to is None or at > now:
                    break
                changes.append((contact_id, stage, to, at, "Bench history"))
                stage = to
            contacts.append((contact_id, created, stage))
        cursor.execute(
            "CREATE TEMP TABLE bench_contact (id bigint, created_at timestamptz, stage text) "
            "ON COMMIT DROP"
        )
        _copy(cursor, "bench_contact", "id, created_at, stage", contacts)
        cursor.execute(
            "UPDATE contacts_contact c SET created_at = b.created_at, "
            "lifecycle_stage = coalesce(b.stage, c.lifecycle_stage) "
            "FROM bench_contact b WHERE b.id = c.id"
        )
        _copy(
            cursor,
            "tracking_lifecyclechange",
            "contact_id, from_stage, to_stage, at, cause",
            changes,
        )
        cursor.execute(
            "INSERT INTO tracking_timelineentry (contact_id, account_id, kind, occurred_at, "
            "summary, detail, session_key, count) SELECT l.contact_id, c.account_id, 'stage', "
            "l.at, 'Stage: ' || l.from_stage || ' → ' || l.to_stage, '', '', 1 "
            "FROM tracking_lifecyclechange l JOIN contacts_contact c ON c.id = l.contact_id"
        )


def opportunities_activities_seed() -> None:
    """Opportunities owned by the bench salespeople, opened over two years with their stage
    history, closed 10 to 150 days after they opened; activities on them by their owners and on
    contacts by everyone, on the timeline too."""
    from django.db import connection, transaction
    from django.utils import timezone

    from opportunities.models import Stage

    rng = random.Random(11)
    now = timezone.now()
    people = salespeople()
    stages = {s.pk: s for s in Stage.objects.all()}
    open_path = sorted(
        (s for s in stages.values() if not (s.is_won or s.is_lost)), key=lambda s: s.position
    )
    kinds = ("call",) * 7 + ("email",) * 7 + ("meeting",) * 3 + ("letter", "note", "note")
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT min(id), max(id) FROM contacts_contact")
        first_contact, last_contact = cursor.fetchone()
        cursor.execute("SELECT id, stage_id FROM opportunities_opportunity ORDER BY id")
        opportunities = cursor.fetchall()
        updates, history, activities = [], [], []
        for opportunity_id, stage_id in opportunities:
            stage = stages[stage_id]
            owner = rng.choice(people)
            opened = now - timedelta(seconds=rng.uniform(0, 730 * DAY))
            closed = None
            if stage.is_won or stage.is_lost:
                closed = min(opened + timedelta(days=rng.uniform(10, 150)), now)
            expected = (closed or opened + timedelta(days=rng.uniform(30, 200))).date()
            updates.append((opportunity_id, owner, opened, closed, expected))
            if stage.is_won:
                path = [*open_path, stage]
            elif stage.is_lost:
                path = [*open_path[: rng.randint(1, len(open_path))], stage]
            else:
                path = open_path[: open_path.index(stage) + 1]
            end = closed or now
            step = (end - opened) / len(path)
            previous = None
            for i, to in enumerate(path):
                history.append((opportunity_id, previous, to.pk, opened + step * i, owner))
                previous = to.pk
            for _ in range(rng.choice((0, 1, 1, 2, 3))):
                at = opened + (end - opened) * rng.random()
                activities.append(
                    (rng.choice(kinds), "Follow-up", at, owner, None, opportunity_id, at)
                )
        for _ in range(ACTIVITIES - len(activities)):
            at = now - timedelta(seconds=rng.uniform(0, 730 * DAY))
            contact = rng.randint(first_contact, last_contact)
            activities.append(
                (rng.choice(kinds), "Customer contact", at, rng.choice(people), contact, None, at)
            )
        cursor.execute(
            "CREATE TEMP TABLE bench_opportunity (id bigint, owner_id bigint, created_at "
            "timestamptz, closed_at timestamptz, expected_close date) ON COMMIT DROP"
        )
        _copy(
            cursor,
            "bench_opportunity",
            "id, owner_id, created_at, closed_at, expected_close",
            updates,
        )
        cursor.execute(
            "UPDATE opportunities_opportunity o SET owner_id = b.owner_id, created_at = "
            "b.created_at, updated_at = coalesce(b.closed_at, b.created_at), closed_at = "
            "b.closed_at, expected_close = b.expected_close FROM bench_opportunity b "
            "WHERE b.id = o.id"
        )
        cursor.execute("DELETE FROM opportunities_stagechange")
        _copy(
            cursor,
            "opportunities_stagechange",
            "opportunity_id, from_stage_id, to_stage_id, changed_at, changed_by_id",
            history,
        )
        _copy(
            cursor,
            "contacts_activity",
            "kind, subject, occurred_at, user_id, contact_id, opportunity_id, created_at, "
            "notes, outcome",
            ((*row, "", "") for row in activities),
        )
        cursor.execute(
            "INSERT INTO tracking_timelineentry (contact_id, account_id, kind, occurred_at, "
            "summary, detail, actor_id, session_key, count) SELECT contact_id, account_id, kind, "
            "occurred_at, subject, '', user_id, '', 1 FROM contacts_activity "
            "WHERE contact_id IS NOT NULL"
        )


def tasks_seed() -> None:
    """Tasks for the bench salespeople over two years, most of them done within days."""
    from django.db import connection, transaction
    from django.utils import timezone

    rng = random.Random(13)
    now = timezone.now()
    people = salespeople()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT min(id), max(id) FROM contacts_contact")
        first_contact, last_contact = cursor.fetchone()
        rows = []
        for _ in range(TASKS):
            created = now - timedelta(seconds=rng.uniform(0, 730 * DAY))
            done = None
            if rng.random() < 0.85:
                done = min(created + timedelta(days=rng.expovariate(1 / 4)), now)
            rows.append(
                (
                    "Follow up",
                    "",
                    rng.choice(people),
                    (created + timedelta(days=7)).date(),
                    2,
                    done,
                    created,
                    rng.randint(first_contact, last_contact),
                )
            )
        _copy(
            cursor,
            "contacts_task",
            "title, notes, assignee_id, due_on, priority, done_at, created_at, contact_id",
            rows,
        )


def audit_seed() -> None:
    """The opportunities' audit trail: half the deals had their next step changed once, and
    one in seven had its expected close date pushed a month later (pipeline movement's
    slips), some time in their first three months."""
    from django.db import connection

    with connection.cursor() as cursor:
        for share, changes in (
            (0.5, "jsonb_build_object('next_step', jsonb_build_array('Call', 'Demo'))"),
            (
                1 / 7,
                "jsonb_build_object('expected_close', "
                "jsonb_build_array(o.expected_close - 30, o.expected_close))",
            ),
        ):
            cursor.execute(
                "INSERT INTO tracking_auditentry (model, object_id, action, changes, actor_id, at) "
                f"SELECT 'opportunities.opportunity', o.id, 'updated', {changes}, o.owner_id, "
                "least(now(), o.created_at + random() * interval '90 days') "
                "FROM opportunities_opportunity o "
                "WHERE o.expected_close IS NOT NULL AND random() < %s",
                [share],
            )


def rollups_bring_up_to_date() -> None:
    """Rebuild the report rollups from scratch (timed), then add a burst of new work and time
    the incremental refresh that Celery beat runs."""
    from django.db import connection
    from django.utils import timezone
    from marketing_seed import recent_activity_seed

    from reports.activity import activity_rollup_refresh
    from reports.attribution import marketing_rollup_refresh
    from reports.deal_rollups import deal_rollups_refresh
    from reports.lifecycle import lifecycle_rollup_refresh

    timed("activity_rollup_rebuild", lambda: activity_rollup_refresh(rebuild=True))
    timed("deal_rollups_rebuild", lambda: deal_rollups_refresh(rebuild=True))
    timed("lifecycle_rollup_rebuild", lambda: lifecycle_rollup_refresh(rebuild=True))
    timed("marketing_rollup_rebuild", lambda: marketing_rollup_refresh(rebuild=True))
    recent_activity_seed()
    rng = random.Random()
    now = timezone.now()
    people = salespeople()
    with connection.cursor() as cursor:
        cursor.execute("SELECT min(id), max(id) FROM contacts_contact")
        first_contact, last_contact = cursor.fetchone()
        contacts = [rng.randint(first_contact, last_contact) for _ in range(2000)]
        _copy(
            cursor,
            "contacts_activity",
            "kind, subject, occurred_at, user_id, contact_id, created_at, notes, outcome",
            (
                (
                    "call",
                    "New call",
                    now - timedelta(hours=rng.uniform(0, 48)),
                    rng.choice(people),
                    c,
                    now,
                    "",
                    "",
                )
                for c in contacts
            ),
        )
        cursor.execute(
            "UPDATE contacts_task SET done_at = now() WHERE id IN (SELECT id FROM contacts_task "
            "WHERE done_at IS NULL LIMIT 300)"
        )
        cursor.execute(
            "INSERT INTO tracking_lifecyclechange (contact_id, from_stage, to_stage, at, cause) "
            "SELECT id, lifecycle_stage, 'evaluation', now(), 'Bench visit' FROM contacts_contact "
            "WHERE id = ANY(%s) AND lifecycle_stage IN ('awareness', 'education')",
            [contacts],
        )
        cursor.execute(
            "UPDATE contacts_contact SET lifecycle_stage = 'evaluation', updated_at = now() "
            "WHERE id = ANY(%s) AND lifecycle_stage IN ('awareness', 'education')",
            [contacts],
        )
        # 500 deals worked on: their amounts changed, 200 of them with a stage-history row.
        cursor.execute(
            "UPDATE opportunities_opportunity SET amount = amount + 100, updated_at = now() "
            "WHERE id IN (SELECT id FROM opportunities_opportunity ORDER BY random() LIMIT 500)"
        )
        cursor.execute(
            "INSERT INTO opportunities_stagechange "
            "(opportunity_id, from_stage_id, to_stage_id, changed_at, changed_by_id) "
            "SELECT o.id, o.stage_id, o.stage_id, now(), o.owner_id "
            "FROM opportunities_opportunity o WHERE o.updated_at >= %s LIMIT 200",
            [now],
        )
    timed("activity_rollup_refresh", activity_rollup_refresh)
    timed("deal_rollups_refresh", deal_rollups_refresh)
    timed("lifecycle_rollup_refresh", lifecycle_rollup_refresh)
    timed("marketing_rollup_refresh", marketing_rollup_refresh)


if __name__ == "__main__":
    main()
