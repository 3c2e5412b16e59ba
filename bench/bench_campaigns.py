"""Campaign e-mail to a large audience: the audience freeze, rendering alone, a bare smtplib
loop, and the whole send through a real Celery worker to a local SMTP sink.

Starts its own embedded PostgreSQL and Redis in a temporary folder (unless DATABASE_URL and
REDIS_URL are set), seeds a tenant with BENCH_RECIPIENTS contacts (default 100,000; the demo
seeder's accounts and opportunities come with them; a third of the contacts get an interest, a
tenth no first name), a segment of all of them, and an e-mail template with merge fields,
fallbacks, if-blocks, a content block, a <style> sheet (inlined when the template is compiled)
and five links (three of them in any one message, tracked, besides the unsubscribe link). The
SMTP sink is aiosmtpd in a process of its own (so it does not share a GIL with the driver); it
counts messages by Message-ID and reports duplicates.

Measured, in this order:
- rendering alone, in this process, on BENCH_RENDER contacts (default 20,000), as
  `campaigns.sending.chunk_send` does it per message: the signed unsubscribe link, the compiled
  template's render, `EmailTracker.track` (signed click links, the open pixel) and the message's
  headers; the contacts are loaded per chunk of 500 as chunk_send loads them (`render_rate`
  leaves those loads out, `render_with_loads_rate` counts them). Turning the messages into bytes
  (campaigns.mime, as chunk_send does for SMTP) is timed apart (`mime_rate`);
- the bare loop: those messages, already bytes, sent with smtplib over one connection
  (`bare_smtplib_rate`), the limit on this machine;
- the whole send: `campaign_send` (the freeze, the members, the dispatch) in this process, then a
  `celery -A crm worker` process (pool BENCH_WORKER_POOL, default prefork, concurrency
  BENCH_WORKER_CONCURRENCY, default half again as many processes as cores, as `make run` and
  docker-compose run the worker: 3 on 2 cores) sends every message to the sink. `send_rate` is the
  audience over the time from the call of campaign_send until the sink has every message and the
  campaign is `sent`; `delivery_rate` the same from the moment campaign_send returned.
  `freeze_<n>k_s` times `audience_freeze` alone (the one INSERT ... SELECT), `campaign_send_s`
  the whole call. `vs_bare` is send_rate over bare_smtplib_rate.

The sending governor must not be what is measured: the tenant's `email_send_rate` is set to
100,000 a second and the worker runs with CRM_EMAIL_DOMAIN_RATE at 1,000,000 a second (the demo
contacts use only a few free-mail domains); both are printed.

Per chunk (500 messages) p50/p95 come from the outbox rows: from a chunk's claim to its last
row's `sent_at`; per message, the gap between two `sent_at` in the same chunk. The worker's pool
processes' resident memory is read from /proc before the send, when a tenth of it has reached
the sink, and at the end, with each process's peak (VmHWM).

Where the CPU goes during the send, in milliseconds per message (`send_*_cpu_ms`): the worker's
processes, the sink, the PostgreSQL backends of this database (when the server runs on this
machine), this process, and the whole machine (other users' work included, which is how a shared
machine's load shows). `send_cpu_ceiling_rate` is the machine's cores over the send's own CPU per
message: the rate the send could reach with the cores to itself, whatever else is running.

BENCH_PROFILE=<n> also sends the first n contacts with chunk_send in this process (before the
worker starts): half timed (`chunk_send_inprocess_rate`), half under cProfile, whose top
functions go to stderr.

With BENCH_REUSE=1 and DATABASE_URL/REDIS_URL set, a tenant seeded by an earlier run on that
database is used again as it is (its earlier benchmark campaigns are deleted first); without it,
such a tenant is deleted and seeded afresh.

Prints `BENCH campaigns.<metric> <value> <unit>` lines (and `#` lines saying what was run);
leaves nothing running.
"""

import asyncio
import os
import re
import signal
import smtplib
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from measure import DatabaseCpu, child_pids, cpu_seconds, machine_cpu_seconds, percentile
from platform_setup import ROOT, platform_ready

RECIPIENTS = int(os.environ.get("BENCH_RECIPIENTS", "100000"))
RENDER = min(RECIPIENTS, int(os.environ.get("BENCH_RENDER", "20000")))
POOL = os.environ.get("BENCH_WORKER_POOL", "prefork")
# As crm.run and docker-compose.yml size the worker: a sending process waits on the SMTP server
# and PostgreSQL for about half of each message, so one process per core leaves cores idle.
CONCURRENCY = int(os.environ.get("BENCH_WORKER_CONCURRENCY", str(os.cpu_count() * 3 // 2)))
REUSE = os.environ.get("BENCH_REUSE") == "1"
PROFILE = int(os.environ.get("BENCH_PROFILE", "0"))
SLUG = "bench-mail"
ADMIN = "admin@bench-mail.example"
TENANT_RATE = 100_000
DOMAIN_RATE = 1_000_000
CHUNK = 500  # as campaigns.sending.CHUNK_SIZE
PREFIX = "Bench "

STYLE = """
body { margin: 0; padding: 0; background: #f4f4f7; font-family: Helvetica, Arial, sans-serif; }
.wrapper { width: 100%; background: #f4f4f7; }
.main { width: 600px; margin: 0 auto; background: #ffffff; border-radius: 6px; }
.header { padding: 24px; background: #1d3557; color: #ffffff; font-size: 22px; }
.content { padding: 24px; color: #333333; font-size: 15px; line-height: 1.5; }
.lead { font-size: 18px; color: #1d3557; }
.button { display: inline-block; padding: 12px 20px; background: #e63946; color: #ffffff;
          text-decoration: none; border-radius: 4px; font-weight: bold; }
.offer { border: 1px solid #a8dadc; padding: 12px; background: #f1faee; }
.footer { padding: 16px 24px; color: #888888; font-size: 12px; }
a { color: #457b9d; }
"""
HTML = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Spring update</title>
<style>STYLE</style></head>
<body>
<table class="wrapper" role="presentation"><tr><td>
<table class="main" role="presentation">
<tr><td class="header">{{ company.name }}: what is new this spring</td></tr>
<tr><td class="content">
<p class="lead">Hi {{ contact.first_name|default("there") }},</p>
<p>As {{ contact.title|default("a customer") }} at {{ account.name|default("your company") }}
you asked us to keep you posted. Here is what changed this quarter, and what it means for the
{{ contact.territory|default("whole") }} region.</p>
{% if "analytics" in contact.interests %}
<div class="offer"><p>Our analytics webinar is next Tuesday:
<a href="https://events.example.com/webinars/analytics?utm_source=mail">save your seat</a>.
</p></div>
{% elif contact.lifecycle_stage == "evaluation" %}
<div class="offer"><p>Still comparing? <a href="https://www.example.com/demo">Book a demo</a>
with {{ company.name }} and see it on your own data.</p></div>
{% else %}
<p>Read the <a href="https://www.example.com/blog/spring-release">release notes</a>.</p>
{% endif %}
<p><a class="button" href="https://www.example.com/pricing?plan=team">See the new plans</a></p>
<p>Our customers in {{ account.city|default("your city") }} get local support:
<a href="https://www.example.com/support">talk to us</a>.</p>
</td></tr>
<tr><td class="footer">{{ block("bench-footer") }}</td></tr>
</table></td></tr></table>
</body></html>""".replace("STYLE", STYLE)
FOOTER_HTML = (
    "<p>{{ company.name }}, 1 Example Street, Springfield. You get this because "
    "{{ contact.email }} signed up for news.</p>"
)
SUBJECT = (
    "{{ contact.first_name|default('Hello') }}, spring news for {{ account.name|default('you') }}"
)
PREHEADER = "Plans, webinars and support for {{ contact.territory|default('your region') }}"


def main() -> None:
    os.environ["DEBUG"] = "0"
    platform_ready()
    load("start")
    tenant, admin, template, segment = prepare()
    sink = Sink()
    try:
        messages = render_alone(tenant, admin, template, segment)
        bare = bare_loop(sink, messages)
        del messages
        if PROFILE:
            profile_chunks(tenant, admin, template, segment, sink)
        worker = Worker(sink.port)
        try:
            send_rate = send(tenant, admin, template, segment, sink, worker)
        finally:
            worker.stop()
    finally:
        sink.stop()
    print(f"BENCH campaigns.vs_bare {send_rate / bare:.2f} ratio", flush=True)
    load("end")


def say(line: str) -> None:
    print(f"# {line}", flush=True)


def load(when: str) -> None:
    one, five, fifteen = os.getloadavg()
    say(f"load average at the {when}: {one:.2f} {five:.2f} {fifteen:.2f}")


# --- the tenant -----------------------------------------------------------------------------------


def prepare():
    """The tenant (seeded, timed, unless reused), its admin, the template and the segment."""
    from django.db import connection
    from django_tenants.utils import schema_context

    from campaigns.models import ContentBlock, EmailTemplate, Segment
    from campaigns.segments import segment_create
    from campaigns.templating import content_block_create, email_template_create
    from crm.demo import demo_seed
    from crm.tenants.models import Tenant
    from crm.tenants.services import tenant_provision
    from crm.users.models import User

    tenant = Tenant.objects.filter(slug=SLUG).first()
    if tenant is not None and not REUSE:
        # Left by an earlier run on this database: start afresh (its schema goes with it).
        tenant.delete(force_drop=True)
        tenant = None
    seeding = tenant is None
    if seeding:
        tenant = tenant_provision(
            slug=SLUG,
            name="Bench Mail Co",
            admin_email=ADMIN,
            admin_password="a-long-bench-password-1",
        )
    # The governor's tenant bucket out of the way (the domain rate is the worker's setting).
    Tenant.objects.filter(pk=tenant.pk).update(email_send_rate=TENANT_RATE)
    with schema_context(tenant.schema_name):
        admin = User.objects.get(email=ADMIN)
        with connection.cursor() as cursor:
            if seeding:
                started = time.monotonic()
                demo_seed(contacts=RECIPIENTS)
                cursor.execute(
                    "UPDATE contacts_contact SET interests = ARRAY['analytics'] WHERE id % 3 = 0"
                )
                cursor.execute("UPDATE contacts_contact SET first_name = '' WHERE id % 10 = 0")
                print(
                    f"BENCH campaigns.seed_{RECIPIENTS}_contacts_s "
                    f"{time.monotonic() - started:.1f} s",
                    flush=True,
                )
            else:
                forget_earlier_runs(cursor)
            cursor.execute("VACUUM ANALYZE")
        if not ContentBlock.objects.filter(name="bench-footer").exists():
            content_block_create(actor=admin, name="bench-footer", html=FOOTER_HTML)
        template = EmailTemplate.objects.filter(name=f"{PREFIX}newsletter").first()
        if template is None:
            template = email_template_create(
                actor=admin,
                name=f"{PREFIX}newsletter",
                subject=SUBJECT,
                preheader=PREHEADER,
                html_body=HTML,
            )
        segment = Segment.objects.filter(name=f"{PREFIX}everyone").first()
        if segment is None:
            # No conditions: every contact.
            segment = segment_create(
                actor=admin, name=f"{PREFIX}everyone", rules={"op": "and", "rules": []}
            )
    connection.set_schema_to_public()
    return tenant, admin, template, segment


def forget_earlier_runs(cursor) -> None:
    """Delete the campaigns an earlier run made, with their rows, so a reused tenant measures
    like a fresh one (set-wise: Django's cascade would load every row)."""
    cursor.execute("SELECT id, name FROM campaigns_campaign WHERE name LIKE %s", [f"{PREFIX}%"])
    campaigns = cursor.fetchall()
    if not campaigns:
        return
    ids = [pk for pk, _ in campaigns]
    for table in ("campaigns_outboxmessage", "campaigns_campaignmember", "campaigns_campaignlink"):
        cursor.execute(f"DELETE FROM {table} WHERE campaign_id = ANY(%s)", [ids])
    cursor.execute(
        "DELETE FROM tracking_timelineentry WHERE summary = ANY(%s)",
        [[f"Added to the campaign {name}" for _, name in campaigns]],
    )
    from campaigns.models import Campaign

    Campaign.objects.filter(pk__in=ids).delete()


def new_campaign(admin, template, segment, what: str):
    from campaigns.services import campaign_create

    campaign = campaign_create(
        actor=admin,
        name=f"{PREFIX}{what} {time.strftime('%Y-%m-%d %H:%M:%S')}",
        kind="email",
        email_template=template,
    )
    campaign.segments.add(segment)
    return campaign


# --- rendering alone ------------------------------------------------------------------------------


def render_alone(tenant, admin, template, segment) -> list[tuple[str, list[str], bytes]]:
    """Render RENDER messages as chunk_send does (without SMTP and outbox writes); the messages
    as (sender, recipients, bytes) for the bare loop."""
    from django.db import connection
    from django_tenants.utils import schema_context

    from campaigns.engagement import EmailTracker
    from campaigns.mime import CampaignMime
    from campaigns.templating import (
        contact_segment_names,
        email_contacts,
        email_context,
        email_template_compile,
    )
    from campaigns.unsubscribe import UnsubscribeLinks, message_headers
    from contacts.models import Contact

    steps = dict.fromkeys(("unsubscribe_link", "template", "tracking", "message"), 0.0)
    built = []
    loads: list[float] = []
    chunks: list[float] = []
    clock = time.perf_counter
    with schema_context(tenant.schema_name):
        campaign = new_campaign(admin, template, segment, "render")
        compiles = []
        for _ in range(5):
            started = clock()
            compiled = email_template_compile(template)
            compiles.append(clock() - started)
        links = UnsubscribeLinks()
        tracker = EmailTracker(campaign)
        ids = list(Contact.objects.order_by("id").values_list("id", flat=True)[:RENDER])
        for first in range(0, len(ids), CHUNK):
            chunk = ids[first : first + CHUNK]
            started = clock()
            contacts = email_contacts(chunk)
            segments = contact_segment_names(chunk)
            loads.append(clock() - started)
            for n, contact_id in enumerate(chunk, start=first):
                contact = contacts[contact_id]
                t0 = clock()
                url = links.url(contact_id=contact_id, email=contact.email)
                t1 = clock()
                rendered = compiled.render(
                    email_context(
                        contact, segments=segments.get(contact_id, ()), unsubscribe_url=url
                    )
                )
                t2 = clock()
                rendered = tracker.track(rendered, outbox_id=n, unsubscribe_url=url)
                t3 = clock()
                message = (
                    rendered,
                    contact.email,
                    {
                        **message_headers(url=url),
                        "Message-ID": f"<render.{campaign.pk}.{n}@{SLUG}.example>",
                    },
                )
                t4 = clock()
                steps["unsubscribe_link"] += t1 - t0
                steps["template"] += t2 - t1
                steps["tracking"] += t3 - t2
                steps["message"] += t4 - t3
                built.append(message)
            chunks.append(clock() - started)
        started = clock()
        writer = CampaignMime()
        messages = [
            (
                writer.envelope_from,
                [writer.envelope_to(to)],
                writer.message(rendered, to=to, headers=headers),
            )
            for rendered, to, headers in built
        ]
        mime = clock() - started
    connection.set_schema_to_public()

    n = len(built)
    rendering = sum(steps.values())
    print(f"BENCH campaigns.compile_ms {statistics.median(compiles) * 1000:.1f} ms", flush=True)
    print(f"BENCH campaigns.render_rate {n / rendering:.0f} msgs/s", flush=True)
    rate = n / (rendering + sum(loads))
    print(f"BENCH campaigns.render_with_loads_rate {rate:.0f} msgs/s", flush=True)
    for name, seconds in steps.items():
        print(f"BENCH campaigns.render_{name}_us {seconds / n * 1e6:.0f} us", flush=True)
    print(f"BENCH campaigns.render_load_chunk_ms {statistics.median(loads) * 1000:.1f} ms")
    print(f"BENCH campaigns.render_chunk_p50 {statistics.median(chunks) * 1000:.1f} ms")
    print(f"BENCH campaigns.render_chunk_p95 {percentile(chunks, 0.95) * 1000:.1f} ms")
    print(f"BENCH campaigns.mime_rate {n / mime:.0f} msgs/s", flush=True)
    size = statistics.mean(len(data) for _, _, data in messages)
    print(f"BENCH campaigns.message_kb {size / 1024:.1f} KiB", flush=True)
    say(f"rendered {n} messages in this process (one core), no SMTP")
    return messages


# --- the bare loop --------------------------------------------------------------------------------


def bare_loop(sink: "Sink", messages) -> float:
    """Send pre-rendered messages over one smtplib connection; messages a second."""
    sink.reset()
    sink_cpu, own_cpu, machine = sink.cpu(), time.process_time(), machine_cpu_seconds()
    started = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", sink.port) as smtp:
        for sender, recipients, data in messages:
            smtp.sendmail(sender, recipients, data)
    elapsed = time.perf_counter() - started
    sink_cpu, own_cpu = sink.cpu() - sink_cpu, time.process_time() - own_cpu
    machine = machine_cpu_seconds() - machine
    unique, duplicates, _ = sink.count()
    assert unique == len(messages), f"the sink has {unique} of {len(messages)} messages"
    rate = len(messages) / elapsed
    print(f"BENCH campaigns.bare_smtplib_rate {rate:.0f} msgs/s", flush=True)
    print(f"BENCH campaigns.bare_duplicates {duplicates} messages", flush=True)
    n = len(messages)
    print(f"BENCH campaigns.bare_sink_cpu_ms {sink_cpu / n * 1000:.2f} ms/msg", flush=True)
    print(f"BENCH campaigns.bare_client_cpu_ms {own_cpu / n * 1000:.2f} ms/msg", flush=True)
    print(f"BENCH campaigns.bare_machine_cpu_ms {machine / n * 1000:.2f} ms/msg", flush=True)
    return rate


# --- the whole send -------------------------------------------------------------------------------


def send(tenant, admin, template, segment, sink: "Sink", worker: "Worker") -> float:
    """campaign_send, then the worker sends every message to the sink; messages a second."""
    from django.db import connection
    from django_tenants.utils import schema_context

    from campaigns import sending
    from campaigns.models import Campaign

    freezes: list[float] = []
    freeze = sending.audience_freeze

    def timed_freeze(**kwargs):
        started = time.perf_counter()
        try:
            return freeze(**kwargs)
        finally:
            freezes.append(time.perf_counter() - started)

    say(
        f"governor: tenant email_send_rate {TENANT_RATE}/s, the worker's "
        f"CRM_EMAIL_DOMAIN_RATE {DOMAIN_RATE}/s"
    )
    say(f"worker: celery -A crm worker --pool {POOL} --concurrency {CONCURRENCY}")
    sink.reset()
    with schema_context(tenant.schema_name):
        campaign = new_campaign(admin, template, segment, "send")
        domains = count_domains()
        say(f"{domains} recipient domains")
        rss_before = worker.memory()
        cpu_before = worker.cpu(), sink.cpu(), time.process_time(), machine_cpu_seconds()
        database = DatabaseCpu()
        sending.audience_freeze = timed_freeze
        try:
            started = time.perf_counter()
            count = sending.campaign_send(actor=admin, campaign=campaign)
            committed = time.perf_counter()
        finally:
            sending.audience_freeze = freeze
        rss_tenth = None
        deadline = committed + max(600, count / 20)
        while True:
            unique, duplicates, without_id = sink.count()
            if rss_tenth is None and unique >= count / 10:
                rss_tenth = worker.memory()
            if unique >= count:
                state = Campaign.objects.values_list("send_state", flat=True).get(pk=campaign.pk)
                if state == Campaign.SendState.SENT:
                    break
            worker.check()
            database.sample()
            if time.perf_counter() > deadline:
                raise SystemExit(f"the send stalled: {unique} of {count} messages at the sink")
            time.sleep(0.05)
        finished = time.perf_counter()
        cpu_after = worker.cpu(), sink.cpu(), time.process_time(), machine_cpu_seconds()
        cpu = [after - before for before, after in zip(cpu_before, cpu_after, strict=True)]
        database.sample(force=True)
        cpu.insert(2, database.used())
        rss_after = worker.memory()
        chunk_ms, gap_ms = outbox_timings(campaign.pk)
        counts = sending.send_progress(campaign)["counts"]
    connection.set_schema_to_public()

    size = f"{round(count / 1000)}k"
    print(f"BENCH campaigns.freeze_{size}_s {freezes[0]:.2f} s", flush=True)
    print(f"BENCH campaigns.campaign_send_s {committed - started:.2f} s", flush=True)
    rate = count / (finished - started)
    print(f"BENCH campaigns.send_rate {rate:.0f} msgs/s", flush=True)
    print(f"BENCH campaigns.delivery_rate {count / (finished - committed):.0f} msgs/s", flush=True)
    print(f"BENCH campaigns.send_total_s {finished - started:.1f} s", flush=True)
    print(f"BENCH campaigns.sink_messages {unique} messages", flush=True)
    print(f"BENCH campaigns.sink_duplicates {duplicates} messages", flush=True)
    print(f"BENCH campaigns.sink_without_message_id {without_id} messages", flush=True)
    print(f"BENCH campaigns.outbox_failed {counts['failed']} rows", flush=True)
    parts = ("worker", "sink", "postgres", "driver", "machine")
    for name, seconds in zip(parts, cpu, strict=True):
        print(f"BENCH campaigns.send_{name}_cpu_ms {seconds / count * 1000:.2f} ms/msg", flush=True)
    own = sum(cpu[:4]) / count
    print(f"BENCH campaigns.send_own_cpu_ms {own * 1000:.2f} ms/msg", flush=True)
    ceiling = os.cpu_count() / own
    print(f"BENCH campaigns.send_cpu_ceiling_rate {ceiling:.0f} msgs/s", flush=True)
    print(f"BENCH campaigns.chunk_p50 {statistics.median(chunk_ms):.0f} ms", flush=True)
    print(f"BENCH campaigns.chunk_p95 {percentile(chunk_ms, 0.95):.0f} ms", flush=True)
    print(f"BENCH campaigns.message_p50 {statistics.median(gap_ms):.2f} ms", flush=True)
    print(f"BENCH campaigns.message_p95 {percentile(gap_ms, 0.95):.2f} ms", flush=True)
    for name, rss in (("start", rss_before), ("tenth", rss_tenth), ("end", rss_after)):
        print(f"BENCH campaigns.worker_rss_{name}_mb {rss[0]:.1f} MB", flush=True)
    print(f"BENCH campaigns.worker_rss_peak_mb {rss_after[1]:.1f} MB", flush=True)
    say(
        f"{count} recipients, {counts['sent']} sent; worker RSS is the largest pool process's, "
        "peak its VmHWM"
    )
    return rate


def count_domains() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(DISTINCT split_part(email, '@', 2)) FROM contacts_contact")
        return cursor.fetchone()[0]


def outbox_timings(campaign_id: int) -> tuple[list[float], list[float]]:
    """Milliseconds of each chunk (its claim to its last row's sent_at; rows claimed together
    share claimed_at) and between two messages of a chunk."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT extract(epoch FROM max(sent_at) - claimed_at) * 1000 "
            "FROM campaigns_outboxmessage WHERE campaign_id = %s AND sent_at IS NOT NULL "
            "GROUP BY claimed_at",
            [campaign_id],
        )
        chunks = [float(ms) for (ms,) in cursor.fetchall()]
        cursor.execute(
            "SELECT gap FROM (SELECT extract(epoch FROM sent_at - lag(sent_at) OVER "
            "(PARTITION BY claimed_at ORDER BY sent_at)) * 1000 AS gap "
            "FROM campaigns_outboxmessage WHERE campaign_id = %s AND sent_at IS NOT NULL) g "
            "WHERE gap IS NOT NULL",
            [campaign_id],
        )
        gaps = [float(ms) for (ms,) in cursor.fetchall()]
    return chunks, gaps


# --- chunk_send profiled -------------------------------------------------------------------------


def profile_chunks(tenant, admin, template, segment, sink: "Sink") -> None:
    """chunk_send in this process on the first PROFILE contacts, to the sink: half of them timed,
    the other half under cProfile (the top functions go to stderr)."""
    import cProfile
    import pstats

    from django.db import connection
    from django.test.utils import override_settings
    from django_tenants.utils import schema_context

    from campaigns import sending
    from campaigns.models import Campaign
    from contacts.models import Contact

    with schema_context(tenant.schema_name):
        campaign = new_campaign(admin, template, segment, "profile")
        cutoff = Contact.objects.order_by("id").values_list("id", flat=True)[PROFILE - 1]
        audience = sending.audience(segments=[segment]).filter(pk__lte=cutoff)
        # Frozen without campaign_send: its dispatch would reach the worker of the next part.
        count = sending.audience_freeze(campaign=campaign, contacts=audience)
        Campaign.objects.filter(pk=campaign.pk).update(send_state=Campaign.SendState.SENDING)
        ranges = list(sending.dispatch_ranges(campaign_id=campaign.pk))
        half = len(ranges) // 2
        sink.reset()
        profiler = cProfile.Profile()
        with override_settings(
            EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
            EMAIL_HOST="127.0.0.1",
            EMAIL_PORT=sink.port,
            EMAIL_USE_TLS=False,
            EMAIL_USE_SSL=False,
            CRM_EMAIL_DOMAIN_RATE=DOMAIN_RATE,
        ):
            started = time.perf_counter()
            sent = sum(
                sending.chunk_send(campaign_id=campaign.pk, first_id=first, last_id=last)
                for first, last in ranges[:half]
            )
            elapsed = time.perf_counter() - started
            profiler.enable()
            for first, last in ranges[half:]:
                sending.chunk_send(campaign_id=campaign.pk, first_id=first, last_id=last)
            profiler.disable()
    connection.set_schema_to_public()
    assert sink.count()[0] == count, "the sink did not get every profiled message"
    print(f"BENCH campaigns.chunk_send_inprocess_rate {sent / elapsed:.0f} msgs/s", flush=True)
    stats = pstats.Stats(profiler, stream=sys.stderr)
    stats.sort_stats("tottime").print_stats(30)
    stats.sort_stats("cumulative").print_stats(40)


# --- the worker -----------------------------------------------------------------------------------


class Worker:
    """A `celery -A crm worker` process of its own, its mail going to the sink."""

    def __init__(self, mail_port: int):
        from django.conf import settings

        from crm.celery import app

        self.app = app
        self.name = f"bench-campaigns-{os.getpid()}@localhost"
        # Tasks an interrupted earlier run left in this Redis database would be sent first.
        app.control.purge()
        env = {
            **os.environ,
            "SECRET_KEY": settings.SECRET_KEY,
            "EMAIL_URL": f"smtp://127.0.0.1:{mail_port}",
            "CRM_EMAIL_DOMAIN_RATE": str(DOMAIN_RATE),
            "DEBUG": "0",
            "PYTHONWARNINGS": "ignore",
        }
        self.process = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "celery"),
                "--quiet",
                "-A",
                "crm",
                "worker",
                "--pool",
                POOL,
                "--concurrency",
                str(CONCURRENCY),
                "--loglevel",
                "WARNING",
                "--without-gossip",
                "--without-mingle",
                "--hostname",
                self.name,
            ],
            cwd=ROOT,
            env=env,
        )
        deadline = time.monotonic() + 60
        while not app.control.ping(destination=[self.name], timeout=0.5):
            self.check()
            if time.monotonic() > deadline:
                self.stop()
                raise SystemExit("the Celery worker did not start")

    def check(self) -> None:
        if self.process.poll() is not None:
            raise SystemExit(f"the Celery worker exited ({self.process.returncode})")

    def pool(self) -> list[int]:
        """The processes that run tasks: the prefork children, or the worker itself."""
        return child_pids(self.process.pid) or [self.process.pid]

    def cpu(self) -> float:
        return cpu_seconds([self.process.pid, *self.pool()])

    def memory(self) -> tuple[float, float]:
        """The largest resident set of the pool's processes, and the largest peak, in MB."""
        now = peak = 0.0
        for pid in self.pool():
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
            now = max(now, int(fields["VmRSS"].split()[0]) / 1024)
            peak = max(peak, int(fields["VmHWM"].split()[0]) / 1024)
        return now, peak

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# --- the SMTP sink --------------------------------------------------------------------------------

MESSAGE_ID = re.compile(rb"^message-id:[ \t]*(\S+)", re.IGNORECASE | re.MULTILINE)


class Sink:
    """The sink process, asked over its stdin and stdout."""

    def __init__(self):
        from crm.embedded import free_port

        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-W", "ignore", __file__, "--sink", str(self.port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout.readline().strip() == "ready", "the SMTP sink did not start"

    def cpu(self) -> float:
        return cpu_seconds([self.process.pid])

    def _ask(self, command: str) -> str:
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return self.process.stdout.readline().strip()

    def reset(self) -> None:
        assert self._ask("reset") == "ok"

    def count(self) -> tuple[int, int, int]:
        """Messages with distinct Message-IDs, repeats, and messages without one."""
        unique, duplicates, without_id = self._ask("count").split()
        return int(unique), int(duplicates), int(without_id)

    def stop(self) -> None:
        self.process.stdin.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class Counter:
    """aiosmtpd handler: accepts every message and counts it by Message-ID."""

    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.seen: set[bytes] = set()
            self.duplicates = self.without_id = 0

    async def handle_DATA(self, server, session, envelope):
        content = envelope.original_content
        end = content.find(b"\r\n\r\n")
        match = MESSAGE_ID.search(content, 0, end if end >= 0 else len(content))
        with self.lock:
            if match is None:
                self.without_id += 1
            elif match.group(1) in self.seen:
                self.duplicates += 1
            else:
                self.seen.add(match.group(1))
        return "250 OK"

    def report(self) -> str:
        with self.lock:
            return f"{len(self.seen)} {self.duplicates} {self.without_id}"


def sink_main(port: int) -> None:
    """The sink process: aiosmtpd on `port`; answers `reset` and `count` on stdin until it
    closes."""
    from aiosmtpd.controller import Controller

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    counter = Counter()
    controller = Controller(counter, hostname="127.0.0.1", port=port, loop=asyncio.new_event_loop())
    controller.start()
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() == "reset":
            counter.reset()
            print("ok", flush=True)
        elif line.strip() == "count":
            print(counter.report(), flush=True)
    controller.stop()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--sink"]:
        sink_main(int(sys.argv[2]))
    else:
        main()
