"""What the benchmarks share: the site served by gunicorn as in production (started here, stopped
when the benchmark exits), the server's own time of an answer (its Server-Timing header),
percentiles, the raw-SQL timings that a page's or a call's latency is compared with, and the CPU
time of processes, of this database's PostgreSQL backends and of the whole machine (from /proc)."""

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from platform_setup import ROOT


def server_ms(headers) -> float | None:
    """The milliseconds Django says it took (crm.timing's `Server-Timing: app;dur=`): the
    server's own time, without the wait in the socket queue or for the client threads' CPU."""
    for metric in (headers.get("Server-Timing") or "").split(","):
        name, _, params = metric.strip().partition(";")
        if name == "app" and params.startswith("dur="):
            return float(params.removeprefix("dur="))
    return None


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def start_gunicorn(settings) -> int:
    """Serve the site with production settings on a free port; the port."""
    from crm.embedded import free_port

    db = settings.DATABASES["default"]
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{quote(db['HOST'], safe='')}"
        f"{':' + str(db['PORT']) if db['PORT'] else ''}/{db['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
        "SECRET_KEY": settings.SECRET_KEY,
        "DEBUG": "0",
        "SECURE_SSL_REDIRECT": "0",
        "SESSION_COOKIE_SECURE": "0",
        "CSRF_COOKIE_SECURE": "0",
        "CRM_PUBLIC_PORT": str(port),
        "LOG_LEVEL": "WARNING",
    }
    # Production settings serve the hashed static files that collectstatic writes.
    env["STATIC_ROOT"] = tempfile.mkdtemp(prefix="crm-bench-static-", dir="/tmp")
    atexit.register(shutil.rmtree, env["STATIC_ROOT"], True)
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "--config",
            "python:crm.gunicorn_conf",
            "crm.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
        ],
        cwd=ROOT,
        env=env,
    )
    atexit.register(server.wait, 30)
    atexit.register(server.terminate)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/healthz", headers={"Host": "localhost"}
            )
            urllib.request.urlopen(request, timeout=2).read()
            return port
        except OSError:
            time.sleep(0.2)
    raise SystemExit("gunicorn did not start")


def page_load(
    port: int, host: str, path: str, cookie: str, *, clients: int, requests: int
) -> tuple[list[float], list[float]]:
    """`requests` GETs of a page from `clients` threads, after a warm-up (`warmed_up_load`):
    the milliseconds of each as the clients saw them, and as the server says it took."""
    client_ms: list[float] = []
    server: list[float] = []
    lock = threading.Lock()

    def get() -> tuple[float, float]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}{path}", headers={"Host": host, "Cookie": cookie}
        )
        started = time.perf_counter()
        with urllib.request.urlopen(request, timeout=60) as response:
            response.read()
            assert response.status == 200, (path, response.status)
        elapsed = (time.perf_counter() - started) * 1000
        own = server_ms(response.headers)
        assert own is not None, (path, "no Server-Timing header")
        return elapsed, own

    def one(timed: bool) -> None:
        elapsed, own = get()
        if timed:
            with lock:
                client_ms.append(elapsed)
                server.append(own)

    warmed_up_load(one, clients=clients, calls=requests // clients)
    return client_ms, server


def warmed_up_load(one: Callable[[bool], None], *, clients: int, calls: int) -> None:
    """`one(timed)` from `clients` threads at once: twice each untimed first (a warm-up, so
    that every worker process and thread has its database connection, has imported what it
    needs and compiled its templates), then `calls` times each, timed."""

    def client(count: int, timed: bool) -> None:
        for _ in range(count):
            one(timed)

    for count, timed in ((2, False), (calls, True)):
        threads = [threading.Thread(target=client, args=(count, timed)) for _ in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


def raw_connection(tenant):
    """A psycopg connection of its own, in the tenant's schema: the raw limit to compare with."""
    import psycopg
    from django.conf import settings

    db = settings.DATABASES["default"]
    conn = psycopg.connect(
        host=db["HOST"],
        port=db["PORT"] or None,
        user=db["USER"],
        password=db["PASSWORD"] or None,
        dbname=db["NAME"],
    )
    conn.execute(f'SET search_path = "{tenant.schema_name}", public')
    # As the app's connections (crm.settings): no parallel plans, whose start-up a fresh
    # ANALYZE can make the planner choose for the search, and which the app never gets.
    conn.execute("SET max_parallel_workers_per_gather = 0")
    return conn


def time_sql(tenant, query: tuple[str, list], rounds: int = 50) -> list[float]:
    """Milliseconds of each of `rounds` runs of one query over psycopg."""
    samples = []
    with raw_connection(tenant) as conn:
        sql, params = query
        for _ in range(rounds):
            started = time.perf_counter()
            conn.execute(sql, params).fetchall()
            samples.append((time.perf_counter() - started) * 1000)
    return samples


# --- CPU time, from /proc ------------------------------------------------------------------------


def child_pids(parent: int) -> list[int]:
    """The processes whose parent is `parent` (a Celery worker's pool)."""
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The parent pid is the second field after the command, which is in parentheses.
        if int(stat.rpartition(")")[2].split()[1]) == parent:
            children.append(int(entry.name))
    return children


def cpu_seconds(pids) -> float:
    """User and system CPU time the processes have used so far."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        # utime and stime: fields 14 and 15 of stat, counted from the state after the command.
        total += int(fields[11]) + int(fields[12])
    return total / ticks


class DatabaseCpu:
    """CPU time of the PostgreSQL backends connected to this database (the worker's and this
    process's), when the server runs on this machine: sampled about once a second, since a
    backend may end (and take its count with it) when a worker reconnects."""

    def __init__(self):
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.sampled = 0.0
        self.sample(force=True)
        self.first = dict(self.last)

    def sample(self, *, force: bool = False) -> None:
        from django.db import connection

        if not force and time.monotonic() - self.sampled < 1:
            return
        self.sampled = time.monotonic()
        with connection.cursor() as cursor:
            cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
            pids = [pid for (pid,) in cursor.fetchall()]
        for pid in pids:
            if Path(f"/proc/{pid}").exists():
                self.last[pid] = cpu_seconds([pid])

    def used(self) -> float:
        return sum(seconds - self.first.get(pid, 0.0) for pid, seconds in self.last.items())


def machine_cpu_seconds() -> float:
    """Busy CPU time of the whole machine so far (every process, other users' included)."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")
