"""Website tracking: events through the real ingest endpoint under gunicorn, the drain onto
timelines and scores, a raw COPY of the same rows, and the time from acceptance to the timeline.

Starts its own embedded PostgreSQL and Redis in a temporary folder (unless DATABASE_URL and
REDIS_URL are set), provisions a tenant with BENCH_CONTACTS demo contacts (default 20,000),
registers its website's origin, and serves the site with gunicorn as `make run` does
(crm/gunicorn_conf.py, production settings). The load generator is this file run as a process of
its own (`--load`): plain sockets with keep-alive (reopened when the server closes them) and one
selector loop, so it needs nothing but Python and takes little of the CPU the server needs. It
posts what the snippet (static/tracking/crm.js) posts: batches of 20 events of BENCH_VISITORS
visitors (default 20,000), with the site's Origin header, as text/plain. Visits of 5 to 60 pages;
page views with URL, title and referrer, UTM parameters on a third of the landing pages, 12%
product views, some pricing-page views, custom events and purchases. BENCH_IDENTIFIED of the
visitors (default 20%) are identified (a signed `identify` with a contact's e-mail, sent and
drained before anything is measured, each crossing the tenant's threshold then), so the drain rolls
their events onto timelines and scores as it would on a live site. The per-address rate limit of
the endpoint is off (CRM_TRACKING_IP_LIMIT=0): the load generator stands for many browsers on one
address.

Measured, in this order:
- flat out (`max_rate`): BENCH_FLAT_CONNECTIONS connections (default 16) posting back to back
  for BENCH_FLAT_SECONDS (default 10); those events are then thrown away;
- at a fixed offered rate, BENCH_RATE events/s (default 10,000, i.e. 500 requests/s) for
  BENCH_SECONDS (default 25), open loop (a request is due at its time whether or not the
  server has answered the one before): `accepted_rate` is the events answered 202 over the time
  from the first request due to the last answer; `accept_p50/p95/p99` are from the moment each
  request was due (so a server that falls behind is charged for the wait) to its answer
  (`accept_sent_p99` from the moment it was sent); the server's own time comes from its
  Server-Timing header (`accept_server_p99`);
- the drain alone of what that phase accepted (no load): the drain worker of `make run`
  (`celery -A crm worker --queues tracking --concurrency 2`, with beat running its dispatch
  every second) from the moment a drain is queued until the tenant's stream is empty, i.e.
  every event committed with its timelines and scores (`drain_rate`);
- a raw COPY of the same rows into the same table (tracking_event, its indexes and all) over
  one psycopg connection, the rows as PostgreSQL's own text format, with new ids, then deleted
  again (`copy_rate`, the storage limit); `vs_copy` is drain_rate over copy_rate;
- the rollup lag: with the worker and beat running, BENCH_LAG_RATE events/s (default 2,000)
  for BENCH_LAG_SECONDS (default 20), and every 0.1 s one batch of an identified visitor ends with
  a marker event; the benchmark polls the contacts' timelines every 50 ms, and the lag is from
  the marker's 202 until its timeline entry is there (`rollup_lag_p50/p95`). The same follows
  at the full offered rate (`rollup_lag_full_p95`), where the drain shares the two cores with the
  endpoint.

Where the CPU goes (`_cpu_us` per request, event or row): gunicorn's processes, Redis (its whole
server, from INFO: a shared Redis counts others' work too), the load generator, the drain
worker, the PostgreSQL backends of this database and the COPY's backend (when the server runs on
this machine), and the whole machine (other users' work included). `drain_cpu_ceiling_rate` is
one over the drain's own CPU per event (worker and backends): about the rate it would reach with
a core to itself, whatever else the machine is doing.

BENCH_PROFILE=<seconds> drains that long in this process under cProfile before the worker starts
(`drain_inprocess_rate`), and prints the top functions to stderr.

With BENCH_REUSE=1 and DATABASE_URL/REDIS_URL set, a tenant made by an earlier run is used again
(its identified visitors too); its earlier runs' events, score changes and website timeline
entries are deleted first. Without it, such a tenant is deleted and made afresh.

Prints `BENCH tracking.<metric> <value> <unit>` lines (and `#` lines saying what was run);
leaves nothing running.
"""

import atexit
import json
import os
import random
import resource
import selectors
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, deque
from pathlib import Path

from measure import (
    DatabaseCpu,
    child_pids,
    cpu_seconds,
    machine_cpu_seconds,
    percentile,
    raw_connection,
    start_gunicorn,
)
from platform_setup import ROOT, platform_ready

CONTACTS = int(os.environ.get("BENCH_CONTACTS", "20000"))
VISITORS = int(os.environ.get("BENCH_VISITORS", "20000"))
IDENTIFIED = min(CONTACTS, round(VISITORS * float(os.environ.get("BENCH_IDENTIFIED", "0.2"))))
RATE = int(os.environ.get("BENCH_RATE", "10000"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "25"))
FLAT_SECONDS = float(os.environ.get("BENCH_FLAT_SECONDS", "10"))
FLAT_CONNECTIONS = int(os.environ.get("BENCH_FLAT_CONNECTIONS", "16"))
LAG_RATE = int(os.environ.get("BENCH_LAG_RATE", "2000"))
LAG_SECONDS = float(os.environ.get("BENCH_LAG_SECONDS", "20"))
PROFILE = float(os.environ.get("BENCH_PROFILE", "0"))
REUSE = os.environ.get("BENCH_REUSE") == "1"
BATCH = 20  # events per request, as the snippet batches them
CONNECTIONS = 64  # at the fixed rates
MARKER_EVERY = 0.1
MARKER_VISITORS = 200
SLUG = "bench-track"
ADMIN = "admin@bench-track.example"
SITE = "https://www.bench-shop.example"
QUEUE = "tracking"  # make run's CRM_TRACKING_QUEUE
WEBSITE_KINDS = ["page_view", "product_view", "purchase", "custom"]


def main() -> None:
    os.environ["DEBUG"] = "0"
    # As make run: the drain's tasks on a queue of their own, for a worker of their own.
    os.environ["CRM_TRACKING_QUEUE"] = QUEUE
    # Owners are told of threshold crossings by e-mail: none leaves the benchmark.
    os.environ["EMAIL_URL"] = "dummymail://"
    # The load generator is one address standing for many browsers.
    os.environ["CRM_TRACKING_IP_LIMIT"] = "0"
    platform_ready()
    load("start")
    from django.conf import settings

    tenant, secret = prepare()
    port = start_gunicorn(settings)
    server = Server(port)
    plan = {
        "port": port,
        "host": f"{tenant.slug}.localhost:{port}",
        "visitors": VISITORS,
        "seed": int(time.time()),
    }
    say(
        f"{VISITORS} visitors, {IDENTIFIED} of them identified; {CONTACTS} contacts; "
        f"gunicorn on port {port}"
    )
    identify(tenant, plan, secret)
    markers = marker_contacts(tenant)
    warm_up(tenant, plan)
    flat_out(tenant, plan, server)
    since = fixed_rate(tenant, plan, server)
    if PROFILE:
        profile_drain(tenant)
    worker = DrainWorker()
    try:
        drained, window = drain_backlog(tenant, worker, since)
        copy_rate = copy_same_rows(tenant, window)
        print(f"BENCH tracking.vs_copy {drained / copy_rate:.2f} ratio", flush=True)
        rollup_lag(tenant, plan, markers, LAG_RATE, "")
        rollup_lag(tenant, plan, markers, RATE, "full_")
    finally:
        worker.stop()
    load("end")


def say(line: str) -> None:
    print(f"# {line}", flush=True)


def load(when: str) -> None:
    one, five, fifteen = os.getloadavg()
    say(f"load average at the {when}: {one:.2f} {five:.2f} {fifteen:.2f}")


def bench(metric: str, value: float, unit: str, digits: int = 0) -> None:
    print(f"BENCH tracking.{metric} {value:.{digits}f} {unit}", flush=True)


def visitor_id(n: int) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{SITE}/bench-visitor/{n}"))


# --- the tenant -----------------------------------------------------------------------------------


def prepare():
    """The tenant (made and seeded unless reused), its site registered; and its identify
    secret."""
    from django.db import connection
    from django_tenants.utils import schema_context

    from crm.demo import demo_seed
    from crm.tenants.models import Tenant
    from crm.tenants.services import tenant_provision
    from crm.users.models import User
    from tracking.selectors import tracking_settings
    from tracking.sites import site_origins_set

    tenant = Tenant.objects.filter(slug=SLUG).first()
    if tenant is not None and not REUSE:
        tenant.delete(force_drop=True)
        tenant = None
    if tenant is None:
        tenant = tenant_provision(
            slug=SLUG,
            name="Bench Shop",
            admin_email=ADMIN,
            admin_password="a-long-bench-password-1",
        )
        with schema_context(tenant.schema_name):
            started = time.monotonic()
            demo_seed(contacts=CONTACTS)
            bench(f"seed_{CONTACTS}_contacts_s", time.monotonic() - started, "s", 1)
    with schema_context(tenant.schema_name):
        found = tracking_settings()
        if found.site_origins != [SITE]:
            site_origins_set(actor=User.objects.get(email=ADMIN), origins=[SITE])
        secret = found.identify_secret
        with connection.cursor() as cursor:
            forget_earlier_runs(cursor)
            cursor.execute("VACUUM ANALYZE")
    connection.set_schema_to_public()
    buffer_clear(tenant)
    return tenant, secret


def marker_contacts(tenant) -> dict[str, int]:
    """The identified visitors among the first MARKER_VISITORS, with their contacts."""
    from django.db import connection
    from django_tenants.utils import schema_context

    from tracking.models import Visitor

    with schema_context(tenant.schema_name):
        found = Visitor.objects.filter(
            id__in=[visitor_id(n) for n in range(min(MARKER_VISITORS, IDENTIFIED))],
            contact__isnull=False,
        ).values_list("id", "contact_id")
        markers = {str(visitor): contact for visitor, contact in found}
    connection.set_schema_to_public()
    return markers


def forget_earlier_runs(cursor) -> None:
    """A reused tenant measures like a fresh one: its visitors and their identities stay, the
    events, score changes and website timeline entries of earlier runs go."""
    cursor.execute("TRUNCATE tracking_scorechange, tracking_event")
    cursor.execute("DELETE FROM tracking_timelineentry WHERE kind = ANY(%s)", [WEBSITE_KINDS])


def buffer_clear(tenant) -> None:
    """An empty stream (what an interrupted earlier run left is thrown away) and no drain
    queued."""
    from tracking import buffer

    client = buffer.client()
    stream = buffer.stream_key(tenant.schema_name)
    schema = tenant.schema_name
    client.delete(stream, buffer.queued_key(schema), buffer.lock_key(schema))
    client.srem(buffer.DIRTY, tenant.schema_name)


def drain_here(tenant, seconds: float = 3600) -> int:
    """Drain the tenant's stream in this process until it is empty; the events inserted."""
    from django.db import connection
    from django_tenants.utils import schema_context

    from tracking import buffer
    from tracking.drain import drain

    inserted = 0
    client = buffer.client()
    with schema_context(tenant.schema_name):
        while client.xlen(buffer.stream_key(tenant.schema_name)):
            result = drain(seconds=seconds)
            inserted += result.inserted if result is not None else 0
    connection.set_schema_to_public()
    return inserted


def identify(tenant, plan: dict, secret: str) -> None:
    """Identify the first IDENTIFIED visitors (signed `identify` calls through the endpoint,
    each with pricing-page views enough to cross the threshold), and drain them here, so that
    the measured drain rolls up, scores and moves stages but makes no first crossings. A reused
    tenant's visitors are identified already."""
    from django.db import connection
    from django_tenants.utils import schema_context

    from contacts.models import Contact
    from tracking.ingest import identify_signature
    from tracking.models import Visitor

    with schema_context(tenant.schema_name):
        known = Visitor.objects.filter(contact__isnull=False).count()
        emails = list(
            Contact.objects.exclude(email="")
            .order_by("id")
            .values_list("email", flat=True)[:IDENTIFIED]
        )
    connection.set_schema_to_public()
    if known >= IDENTIFIED:
        return
    identities = [[n, email, identify_signature(secret, email)] for n, email in enumerate(emails)]
    started = time.monotonic()
    result = run_load({**plan, "mode": "identify", "connections": 8, "identities": identities})
    assert result["statuses"] == {"202": len(identities)}, result["statuses"]
    drain_here(tenant)
    say(f"identified {len(identities)} visitors in {time.monotonic() - started:.0f} s")


def warm_up(tenant, plan: dict) -> None:
    """A few seconds of traffic (both gunicorn workers load their map of hosts, the database
    its pages), drained here."""
    run_load({**plan, "mode": "rate", "rate": 100, "seconds": 3, "connections": CONNECTIONS})
    drain_here(tenant)


# --- the load generator's process, seen from here -------------------------------------------------


def run_load(plan: dict, wait: bool = True):
    """Start the load generator on `plan`; its results (or the process, when not waiting:
    `load_results` reads them when it has ended). The plan and the results go through files,
    which the results (every answer's time) would overfill a pipe."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, dir="/tmp") as file:
        json.dump(plan, file)
    process = subprocess.Popen([sys.executable, "-W", "ignore", __file__, "--load", file.name])
    process.results = file.name
    return load_results(process) if wait else process


def load_results(process: subprocess.Popen) -> dict:
    """The results of a load generator that has ended (waits for it)."""
    path = Path(process.results)
    try:
        if process.wait() != 0:
            raise SystemExit(f"the load generator failed ({process.returncode})")
        return json.loads(path.read_text())
    finally:
        path.unlink(missing_ok=True)


class Server:
    """The CPU of gunicorn's processes (found by the port they listen on) and of Redis."""

    def __init__(self, port: int):
        self.needle = f"127.0.0.1:{port}".encode()

    def pids(self) -> list[int]:
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"gunicorn" in command and self.needle in command:
                found.append(int(entry.name))
        return found

    def cpu(self) -> tuple[float, float, float]:
        """Seconds of CPU so far: gunicorn, Redis, the whole machine."""
        from tracking import buffer

        info = buffer.client().info("cpu")
        redis_cpu = float(info["used_cpu_sys"]) + float(info["used_cpu_user"])
        return cpu_seconds(self.pids()), redis_cpu, machine_cpu_seconds()


def stream_length(tenant) -> int:
    from tracking import buffer

    return buffer.client().xlen(buffer.stream_key(tenant.schema_name))


def report_cpu(prefix: str, before, after, result: dict) -> None:
    """CPU per request of each part during a phase of load."""
    requests = max(1, sum(result["statuses"].values()))
    used = [b - a for a, b in zip(before, after, strict=True)]
    for name, seconds in (
        ("gunicorn", used[0]),
        ("redis", used[1]),
        ("loadgen", result["cpu"]),
        ("machine", used[2]),
    ):
        bench(f"{prefix}{name}_cpu_us", seconds / requests * 1e6, "us/request")


def statuses_line(result: dict) -> str:
    return ", ".join(f"{count} x {status}" for status, count in sorted(result["statuses"].items()))


def flat_out(tenant, plan: dict, server: Server) -> None:
    """FLAT_CONNECTIONS connections posting back to back; the events go nowhere after."""
    before = server.cpu()
    result = run_load(
        {**plan, "mode": "flat", "seconds": FLAT_SECONDS, "connections": FLAT_CONNECTIONS}
    )
    after = server.cpu()
    elapsed = result["finished"] - result["started"]
    bench("max_rate", result["accepted"] / elapsed, "events/s")
    bench("max_rate_p99", percentile(result["sent_ms"], 0.99), "ms", 1)
    report_cpu("max_", before, after, result)
    say(
        f"flat out: {FLAT_CONNECTIONS} connections for {FLAT_SECONDS:.0f} s, "
        f"{statuses_line(result)}; {result['accepted']} events thrown away after"
    )
    buffer_clear(tenant)


def fixed_rate(tenant, plan: dict, server: Server) -> float:
    """RATE events/s offered for SECONDS; what was accepted stays for the drain. Returns
    when the phase began (epoch seconds)."""
    assert stream_length(tenant) == 0
    before = server.cpu()
    result = run_load(
        {
            **plan,
            "mode": "rate",
            "rate": RATE / BATCH,
            "seconds": SECONDS,
            "connections": CONNECTIONS,
        }
    )
    after = server.cpu()
    elapsed = result["finished"] - result["started"]
    bench("offered_rate", RATE, "events/s")
    bench("accepted_rate", result["accepted"] / elapsed, "events/s")
    due = result["due_ms"]
    for name, fraction in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
        bench(f"accept_{name}", percentile(due, fraction), "ms", 1)
    bench("accept_max", max(due), "ms", 1)
    # From the moment each was sent: without the wait of a load generator short of CPU.
    bench("accept_sent_p99", percentile(result["sent_ms"], 0.99), "ms", 1)
    bench("accept_server_p99", percentile(result["server_ms"], 0.99), "ms", 1)
    report_cpu("", before, after, result)
    say(
        f"fixed rate: {RATE / BATCH:.0f} requests/s of {BATCH} events for {SECONDS:.0f} s over "
        f"{CONNECTIONS} connections, {statuses_line(result)}; {stream_length(tenant)} "
        "entries left for the drain"
    )
    return result["started"]


# --- the drain ------------------------------------------------------------------------------------


class DrainWorker:
    """`make run`'s drain worker and beat, processes of their own."""

    def __init__(self):
        from django.conf import settings

        from crm.celery import app

        self.app = app
        self.name = f"bench-drain-{os.getpid()}@localhost"
        # Tasks an interrupted earlier run left in this Redis database would run first.
        app.control.purge()
        with app.connection_for_write() as conn:
            conn.default_channel.queue_purge(QUEUE)
        self.folder = tempfile.mkdtemp(prefix="crm-bench-beat-", dir="/tmp")
        atexit.register(shutil.rmtree, self.folder, True)
        env = {
            **os.environ,
            "SECRET_KEY": settings.SECRET_KEY,
            "PYTHONWARNINGS": "ignore",
        }
        celery = str(Path(sys.executable).parent / "celery")
        self.worker = subprocess.Popen(
            [
                celery,
                "--quiet",
                "-A",
                "crm",
                "worker",
                "--queues",
                QUEUE,
                "--hostname",
                self.name,
                "--loglevel",
                "WARNING",
                "--concurrency",
                "2",
                "--without-gossip",
                "--without-mingle",
            ],
            cwd=ROOT,
            env=env,
        )
        self.beat = None
        deadline = time.monotonic() + 60
        while not app.control.ping(destination=[self.name], timeout=0.5):
            self.check()
            if time.monotonic() > deadline:
                self.stop()
                raise SystemExit("the drain worker did not start")
        self.beat = subprocess.Popen(
            [
                celery,
                "--quiet",
                "-A",
                "crm",
                "beat",
                "--loglevel",
                "WARNING",
                "--schedule",
                str(Path(self.folder) / "celerybeat-schedule"),
            ],
            cwd=ROOT,
            env=env,
        )

    def check(self) -> None:
        for name, process in (("drain worker", self.worker), ("beat", self.beat)):
            if process is not None and process.poll() is not None:
                raise SystemExit(f"the {name} exited ({process.returncode})")

    def processes(self) -> list[int]:
        """The worker and its pool's processes."""
        return [self.worker.pid, *child_pids(self.worker.pid)]

    def cpu(self) -> float:
        return cpu_seconds(self.processes())

    def stop(self) -> None:
        for process in (self.beat, self.worker):
            if process is None or process.poll() is not None:
                continue
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        # The default queue's tasks beat sent (no worker here takes them).
        self.app.control.purge()


def events_count(tenant, since: float | None = None) -> int:
    with raw_connection(tenant) as conn:
        if since is None:
            return conn.execute("SELECT count(*) FROM tracking_event").fetchone()[0]
        return conn.execute(
            "SELECT count(*) FROM tracking_event WHERE received_at >= to_timestamp(%s)", [since]
        ).fetchone()[0]


def drain_backlog(tenant, worker: DrainWorker, since: float) -> tuple[float, tuple[float, float]]:
    """The worker drains the fixed-rate phase's backlog (accepted from `since` on), timed from
    the drain's queueing to an empty stream; the rate, and the window of received_at of what
    it drained."""
    from django.db import connection
    from django_tenants.utils import schema_context

    from tracking import buffer
    from tracking.tasks import tracking_drain

    client = buffer.client()
    schema = tenant.schema_name
    entries = stream_length(tenant)
    window = (since - 1, time.time() + 1)
    before = events_count(tenant)
    # Beat would dispatch on its own within a second; the benchmark queues the drain itself to
    # know when it began (beat dispatches the next one should a drain's 20 s run out).
    client.srem(buffer.DIRTY, schema)
    database = DatabaseCpu()
    cpu_before = worker.cpu(), machine_cpu_seconds()
    started = time.perf_counter()
    with schema_context(schema):
        tracking_drain.delay()
    connection.set_schema_to_public()
    deadline = time.monotonic() + 1800
    polls = 0
    while client.xlen(buffer.stream_key(schema)):
        worker.check()
        polls += 1
        # Often: a backend's CPU goes with it when the worker's task ends and disconnects.
        database.sample(force=polls % 10 == 0)
        if time.monotonic() > deadline:
            raise SystemExit("the drain stalled")
        time.sleep(0.02)
    elapsed = time.perf_counter() - started
    database.sample(force=True)
    worker_cpu = worker.cpu() - cpu_before[0]
    machine = machine_cpu_seconds() - cpu_before[1]
    inserted = events_count(tenant) - before
    rate = inserted / elapsed
    bench("drain_rate", rate, "events/s")
    bench("drain_events", inserted, "events")
    bench("drain_s", elapsed, "s", 1)
    for name, seconds in (
        ("worker", worker_cpu),
        ("postgres", database.used()),
        ("machine", machine),
    ):
        bench(f"drain_{name}_cpu_us", seconds / max(inserted, 1) * 1e6, "us/event", 1)
    # One tenant's drain is one process and its backend, mostly taking turns (they overlap
    # while a COPY streams): about its rate on a machine of its own.
    own = (worker_cpu + database.used()) / max(inserted, 1)
    bench("drain_cpu_ceiling_rate", 1 / own, "events/s")
    with raw_connection(tenant) as conn:
        phase, rolled = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE rolled_up_at IS NOT NULL) "
            "FROM tracking_event WHERE received_at >= to_timestamp(%s)",
            [window[0]],
        ).fetchone()
    dead = int(client.hget(buffer.counters_key(schema), "drain_dead_lettered") or 0)
    say(
        f"drain: {entries} entries, {inserted} events; of the phase's {phase} events {rolled} "
        f"(identified visitors') rolled up; {dead} entries set aside; worker --concurrency 2, "
        "one tenant (one drain at a time)"
    )
    return rate, window


def profile_drain(tenant) -> None:
    """Drain PROFILE seconds in this process under cProfile (top functions to stderr)."""
    import cProfile
    import pstats

    before = events_count(tenant)
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    drain_here_once(tenant, PROFILE)
    profiler.disable()
    elapsed = time.perf_counter() - started
    bench("drain_inprocess_rate", (events_count(tenant) - before) / elapsed, "events/s")
    stats = pstats.Stats(profiler, stream=sys.stderr)
    stats.sort_stats("tottime").print_stats(30)
    stats.sort_stats("cumulative").print_stats(50)


def drain_here_once(tenant, seconds: float) -> None:
    from django.db import connection
    from django_tenants.utils import schema_context

    from tracking.drain import drain

    with schema_context(tenant.schema_name):
        drain(seconds=seconds)
    connection.set_schema_to_public()


EVENT_COLUMNS = (
    "id, visitor_id, contact_id, session_key, kind, name, occurred_at, received_at, url, title, "
    "referrer, utm, properties, rolled_up_at"
)


def copy_same_rows(tenant, window: tuple[float, float]) -> float:
    """COPY the rows the drain wrote (new ids) into tracking_event over one connection, timed
    with its commit; then delete them. Rows a second."""
    with raw_connection(tenant) as conn:
        chunks, block = [], []
        with conn.cursor().copy(
            f"COPY (SELECT {EVENT_COLUMNS} FROM tracking_event WHERE received_at "
            "BETWEEN to_timestamp(%s) AND to_timestamp(%s)) TO STDOUT",
            window,
        ) as copy:
            text = b"".join(bytes(data) for data in copy)
        lines = text.split(b"\n")[:-1]
        ids = []
        for line in lines:
            new = str(uuid.uuid4())
            ids.append(new)
            # The id is the first column: 36 characters.
            block.append(new.encode() + line[36:])
            if len(block) == 2000:
                chunks.append(b"\n".join(block) + b"\n")
                block = []
        if block:
            chunks.append(b"\n".join(block) + b"\n")
        conn.commit()
        backend = [conn.info.backend_pid]
        cpu_before = cpu_seconds(backend)
        started = time.perf_counter()
        with (
            conn.transaction(),
            conn.cursor().copy(f"COPY tracking_event ({EVENT_COLUMNS}) FROM STDIN") as copy,
        ):
            for chunk in chunks:
                copy.write(chunk)
        elapsed = time.perf_counter() - started
        backend_cpu = cpu_seconds(backend) - cpu_before
        conn.execute("DELETE FROM tracking_event WHERE id = ANY(%s::uuid[])", [ids])
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE tracking_event")
    rate = len(lines) / elapsed
    bench("copy_rate", rate, "rows/s")
    if backend_cpu:
        # Zero when the server runs elsewhere (its backend is not in this machine's /proc).
        bench("copy_postgres_cpu_us", backend_cpu / len(lines) * 1e6, "us/row", 1)
    say(f"COPY of the drain's {len(lines)} event rows into tracking_event in {elapsed:.1f} s")
    return rate


# --- rollup lag -----------------------------------------------------------------------------------


def rollup_lag(tenant, plan: dict, markers: dict, rate: int, prefix: str) -> None:
    """`rate` events/s for LAG_SECONDS with the worker and beat running; markers of identified
    visitors polled for on their contacts' timelines."""
    tag = f"{int(time.time())}{prefix}"
    visitors = [n for n in range(MARKER_VISITORS) if visitor_id(n) in markers]
    assert visitors, "no identified visitor to carry the markers"
    contacts = sorted(set(markers.values()))
    started = time.time()
    process = run_load(
        {
            **plan,
            "mode": "rate",
            "rate": rate / BATCH,
            "seconds": LAG_SECONDS,
            "connections": CONNECTIONS,
            "marker_visitors": visitors,
            "marker_every": MARKER_EVERY,
            "marker_tag": tag,
        },
        wait=False,
    )
    seen: dict[str, float] = {}
    query = (
        "SELECT summary FROM tracking_timelineentry WHERE contact_id = ANY(%s) "
        "AND kind = 'custom' AND occurred_at >= to_timestamp(%s) AND summary LIKE %s"
    )
    like = f"Website event: bench-marker-{tag}-%"
    result = None
    deadline = None
    try:
        with raw_connection(tenant) as conn:
            conn.commit()
            conn.autocommit = True
            while True:
                for (summary,) in conn.execute(query, [contacts, started - 120, like]):
                    seen.setdefault(summary.removeprefix("Website event: "), time.time())
                if result is None and process.poll() is not None:
                    result = load_results(process)
                    deadline = time.monotonic() + 60
                if result is not None and (
                    len(seen) >= len(result["markers"]) or time.monotonic() > deadline
                ):
                    break
                time.sleep(0.05)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
            Path(process.results).unlink(missing_ok=True)
    lags = [seen[name] - at for name, at in result["markers"].items() if name in seen]
    missing = len(result["markers"]) - len(lags)
    if lags:
        bench(f"rollup_lag_{prefix}p50", statistics.median(lags), "s", 2)
        bench(f"rollup_lag_{prefix}p95", percentile(lags, 0.95), "s", 2)
        bench(f"rollup_lag_{prefix}max", max(lags), "s", 2)
    bench(f"rollup_lag_{prefix}missing", missing, "markers")
    elapsed = result["finished"] - result["started"]
    say(
        f"rollup lag: {rate} events/s offered ({result['accepted'] / elapsed:.0f} accepted) for "
        f"{LAG_SECONDS:.0f} s with the drain worker and beat running, {len(result['markers'])} "
        f"markers, polled every 50 ms; {statuses_line(result)}; {stream_length(tenant)} "
        "entries left in the stream at the end"
    )


# --- the load generator ---------------------------------------------------------------------------

# The tenant's website, as the snippet reports it: (path, title) of its pages, its products.
SECTIONS = ("blog", "docs", "solutions", "customers", "company")
PAGES = [("/", "Bench Shop: tools for teams"), ("/features", "Features")] + [
    (f"/{section}/{section}-article-{n}", f"{section.title()} article {n}: getting more done")
    for section in SECTIONS
    for n in range(40)
]
CATEGORIES = ("Cables", "Desks", "Chairs", "Lamps", "Monitors", "Headsets", "Software")
PRODUCTS = [
    (f"SKU-{n:04d}", CATEGORIES[n % len(CATEGORIES)], f"Bench product {n}", 9.5 + n % 90)
    for n in range(300)
]
REFERRERS = (
    "https://www.google.com/",
    "https://www.bing.com/",
    "https://duckduckgo.com/",
    "https://www.linkedin.com/",
    "",
    "",
)
CAMPAIGNS = (
    ("newsletter", "email", "spring-launch"),
    ("google", "cpc", "brand-search"),
    ("linkedin", "social", "webinar-q2"),
)


class Traffic:
    """Request bodies as the snippet sends them: visits of a few dozen pages, 20 events a
    batch, built as JSON text directly (json.dumps costs more than the server's decoding)."""

    def __init__(self, plan: dict):
        self.rng = random.Random(plan["seed"])
        self.visitors = [visitor_id(n) for n in range(plan["visitors"])]
        # Visitor number -> [session key, pages left in the visit, the page it is on].
        self.visits: dict[int, list] = {}
        self.orders = 0

    def body(self, n: int, *, identity=None, marker: str = "", pricing: int = 0) -> bytes:
        rng = self.rng
        now = int(time.time() * 1000)
        visit = self.visits.get(n)
        events = []
        ids = os.urandom(16 * BATCH).hex()
        for i in range(BATCH):
            eid = ids[32 * i : 32 * i + 32]
            eid = f"{eid[:8]}-{eid[8:12]}-4{eid[13:16]}-a{eid[17:20]}-{eid[20:]}"
            ts = now - (BATCH - 1 - i) * 2000
            utm = ""
            if visit is None or visit[1] <= 0:
                visit = [os.urandom(16).hex(), rng.randint(5, 60), None]
                self.visits[n] = visit
                referrer = rng.choice(REFERRERS)
                query = ""
                if rng.random() < 0.33:
                    source, medium, campaign = rng.choice(CAMPAIGNS)
                    query = f"?utm_source={source}&utm_medium={medium}&utm_campaign={campaign}"
                    utm = (
                        f',"utm":{{"source":"{source}","medium":"{medium}",'
                        f'"campaign":"{campaign}"}}'
                    )
            else:
                referrer = visit[2]
                query = ""
            visit[1] -= 1
            last = i == BATCH - 1
            r = rng.random()
            if i < pricing or (not marker and r < 0.015):
                path, title, extra, kind = "/pricing", "Plans and pricing", "", "page_view"
            elif marker and last:
                path, title, kind = "/features", "Features", "custom"
                extra = f',"name":"bench-marker-{marker}","props":{{"bench":true}}'
            elif r < 0.135:
                sku, category, name, price = rng.choice(PRODUCTS)
                path, title, kind = (
                    f"/products/{sku.lower()}",
                    f"{name} | Bench Shop",
                    "product_view",
                )
                extra = f',"sku":"{sku}","category":"{category}","name":"{name}","price":{price}'
            elif r < 0.155:
                path, title, kind = visit[2] or "/", "Video", "custom"
                path = path.removeprefix(SITE)
                seconds = rng.randint(5, 300)
                extra = f',"name":"video_play","props":{{"video":"intro","seconds":{seconds}}}'
            elif r < 0.16:
                self.orders += 1
                sku, _category, name, price = rng.choice(PRODUCTS)
                quantity = rng.randint(1, 3)
                path, title, kind = "/checkout/done", "Thank you for your order", "purchase"
                extra = (
                    f',"order_id":"B-{os.getpid()}-{self.orders}","amount":{price * quantity:.2f},'
                    f'"currency":"EUR","items":[{{"sku":"{sku}","name":"{name}",'
                    f'"quantity":{quantity},"price":{price}}}]'
                )
            else:
                path, title = rng.choice(PAGES)
                extra, kind = "", "page_view"
            url = f"{SITE}{path}{query}"
            events.append(
                f'{{"kind":"{kind}","id":"{eid}","ts":{ts},"url":"{url}","title":"{title}",'
                f'"referrer":"{referrer}"{utm}{extra}}}'
            )
            visit[2] = url
        identify = ""
        if identity is not None:
            identify = (
                f',"identify":{{"email":{json.dumps(identity[0])},"signature":"{identity[1]}"}}'
            )
        return (
            f'{{"v":"{self.visitors[n]}","s":"{visit[0]}","sent_at":{now},'
            f'"events":[{",".join(events)}]{identify}}}'
        ).encode()


class Job:
    __slots__ = ("due", "marker", "request", "sent")

    def __init__(self, due: float, request: bytes, marker: str = ""):
        self.due, self.request, self.marker, self.sent = due, request, marker, 0.0


class Connection:
    """One keep-alive connection to gunicorn, one request at a time."""

    def __init__(self, port: int, selector):
        self.port, self.selector = port, selector
        self.sock = None
        self.job: Job | None = None
        self.buffer = b""

    def open(self) -> None:
        self.sock = socket.create_connection(("127.0.0.1", self.port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""
        self.selector.register(self.sock, selectors.EVENT_READ, self)

    def close(self) -> None:
        if self.sock is not None:
            self.selector.unregister(self.sock)
            self.sock.close()
            self.sock = None

    def send(self, job: Job) -> None:
        self.job = job
        for attempt in range(2):
            if self.sock is None:
                self.open()
            try:
                job.sent = time.perf_counter()
                self.sock.sendall(job.request)
                return
            except OSError:
                # Closed by the server while idle (keep-alive timeout): once more, anew.
                self.close()
                if attempt:
                    raise

    def read(self) -> tuple[int, dict, bytes] | None:
        """The answer when it is complete; (0, {}, b"") when the connection closed."""
        data = self.sock.recv(65536)
        if not data:
            self.close()
            return (0, {}, b"") if self.job is not None else None
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return None
        lines = self.buffer[:end].decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        if len(self.buffer) < end + 4 + length:
            return None
        body = self.buffer[end + 4 : end + 4 + length]
        self.buffer = self.buffer[end + 4 + length :]
        if headers.get("connection", "").lower() == "close":
            self.close()
        return int(lines[0].split()[1]), headers, body


def load_main(plan_file: str) -> None:
    """The load generator's process: runs the plan, prints its results as JSON."""
    plan = json.loads(Path(plan_file).read_text())
    traffic = Traffic(plan)
    head = (
        f"POST /t/collect HTTP/1.1\r\nHost: {plan['host']}\r\nOrigin: {SITE}\r\n"
        "User-Agent: crm-bench-tracking\r\nContent-Type: text/plain;charset=UTF-8\r\n"
    )

    def request(body: bytes) -> bytes:
        return f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body

    mode = plan["mode"]
    selector = selectors.DefaultSelector()
    connections = [Connection(plan["port"], selector) for _ in range(plan["connections"])]
    idle = deque(connections)
    pending: deque[Job] = deque()
    statuses: Counter = Counter()
    due_ms, sent_ms, server_ms = [], [], []
    accepted = 0
    markers: dict[str, float] = {}
    rng = random.Random(plan["seed"] + 1)
    marker_visitors = plan.get("marker_visitors") or []
    marker_every = plan.get("marker_every", 0)
    identities = deque(plan.get("identities") or [])
    visitors = plan["visitors"]
    marker_count = 0

    def next_job(due: float) -> Job:
        nonlocal marker_count
        if identities:
            n, email, signature = identities.popleft()
            return Job(due, request(traffic.body(n, identity=(email, signature), pricing=10)))
        if marker_visitors and due >= next_marker[0]:
            next_marker[0] += marker_every
            marker_count += 1
            name = f"{plan['marker_tag']}-{marker_count}"
            n = rng.choice(marker_visitors)
            return Job(due, request(traffic.body(n, marker=name)), f"bench-marker-{name}")
        return Job(due, request(traffic.body(rng.randrange(visitors))))

    started = time.perf_counter()
    wall_started = time.time()
    next_marker = [started + marker_every]
    end = started + plan.get("seconds", 0)
    interval = 1 / plan["rate"] if mode == "rate" else 0
    due = started
    busy = 0
    while True:
        now = time.perf_counter()
        if mode == "rate":
            while due <= now and due < end:
                pending.append(next_job(due))
                due += interval
        elif (mode == "flat" and now < end) or identities:
            while len(pending) < len(idle) and (mode == "flat" or identities):
                pending.append(next_job(now))
        while pending and idle:
            idle.popleft().send(pending.popleft())
            busy += 1
        if (now >= end or mode == "identify") and not identities and not pending and not busy:
            break
        timeout = max(0.0, min(due - now, 0.05)) if mode == "rate" and due < end else 0.05
        for key, _mask in selector.select(timeout):
            connection = key.data
            answer = connection.read()
            if answer is None:
                continue
            job = connection.job
            if job is None:
                continue
            connection.job = None
            idle.append(connection)
            busy -= 1
            status, headers, body = answer
            done = time.perf_counter()
            statuses[str(status)] += 1
            due_ms.append(round((done - job.due) * 1000, 2))
            sent_ms.append(round((done - job.sent) * 1000, 2))
            timing = headers.get("server-timing", "")
            if timing.startswith("app;dur="):
                server_ms.append(float(timing.removeprefix("app;dur=")))
            if status == 202:
                accepted += json.loads(body)["accepted"]
                if job.marker:
                    markers[job.marker] = time.time()
    finished_at = time.perf_counter()
    for connection in connections:
        connection.close()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    # The plan's file takes the results back.
    Path(plan_file).write_text(
        json.dumps(
            {
                "statuses": statuses,
                "accepted": accepted,
                "due_ms": due_ms,
                "sent_ms": sent_ms,
                "server_ms": server_ms,
                "markers": markers,
                "started": wall_started,
                "finished": wall_started + (finished_at - started),
                "cpu": usage.ru_utime + usage.ru_stime,
            }
        )
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--load"]:
        load_main(sys.argv[2])
    else:
        main()
