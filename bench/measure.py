"""What the benchmarks that go through the web share: the site served by gunicorn as in
production (started here, stopped when the benchmark exits), the server's own time of an answer
(its Server-Timing header), percentiles, and the raw-SQL timings that a page's or a call's
latency is compared with."""

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
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
            "crm.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "2",
            "--threads",
            "4",
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
