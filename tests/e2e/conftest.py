"""Browser tests: a real gunicorn serving the test database, driven by headless Chromium.

The live server is a separate process, so it sees only committed rows: these tests make their
own tenants (`committed_tenant`, or the sign-up form) instead of using the `db` fixture.
"""

import functools
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection
from django_tenants.utils import schema_context

from crm.embedded import free_port
from tests.conftest import PASSWORD

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parent.parent.parent
BIN = Path(sys.executable).parent


@dataclass
class LiveApp:
    port: int

    @property
    def public_url(self) -> str:
        return f"http://localhost:{self.port}/"

    def url_for(self, slug: str, path: str = "/") -> str:
        return f"http://{slug}.localhost:{self.port}{path}"


def database_url(name: str | None = None) -> str:
    """The URL of the test database (or of another database on the same server)."""
    db = settings.DATABASES["default"]
    port = f":{db['PORT']}" if db["PORT"] else ""
    password = f":{quote(db['PASSWORD'], safe='')}" if db["PASSWORD"] else ""
    host = quote(db["HOST"], safe="")
    return f"postgres://{db['USER']}{password}@{host}{port}/{name or db['NAME']}"


@contextmanager
def app_server(**env):
    """A gunicorn serving the test database on a free port, configured as in production, with
    `env` on top of the test settings; stopped on exit."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "SECRET_KEY": settings.SECRET_KEY,
        "DEBUG": "1",
        "CRM_BASE_DOMAIN": "localhost",
        "CRM_PUBLIC_PORT": str(port),
        "CRM_PUBLIC_SCHEME": "http",
        **env,
    }
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    server = subprocess.Popen(
        [
            str(BIN / "gunicorn"),
            "--config",
            "python:crm.gunicorn_conf",
            "crm.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
        ],
        cwd=ROOT,
        env=env,
    )
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/healthz", headers={"Host": f"localhost:{port}"}
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(request, timeout=2):
                break
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            # A busy machine answers slowly while gunicorn boots: keep waiting.
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                pytest.fail("the live app server did not start")
            time.sleep(0.2)
    try:
        yield LiveApp(port)
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture(scope="session")
def live_app(django_db_setup, smtp_server):
    controller, _mailbox = smtp_server
    with app_server(
        EMAIL_URL=f"smtp://127.0.0.1:{controller.port}",
        # Browser tests register webhook receivers on loopback.
        CRM_WEBHOOKS_ALLOW_PRIVATE="1",
    ) as app:
        yield app


@pytest.fixture(scope="session")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (make test installs it as root)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def context(browser):
    context = browser.new_context()
    context.set_default_timeout(10_000)
    yield context
    context.close()


@pytest.fixture
def page(context):
    return context.new_page()


@pytest.fixture
def add_user(django_db_setup, django_db_blocker):
    """Create a committed user in a tenant: `add_user(tenant, role)` returns its e-mail."""
    from crm.users.services import user_create

    def add(tenant, role: str, **extra) -> str:
        email = f"{role}@{tenant.slug}.test"
        with django_db_blocker.unblock(), schema_context(tenant.schema_name):
            user_create(
                email=email,
                password=PASSWORD,
                full_name=f"{role.title()} Person",
                role=role,
                **extra,
            )
        connection.set_schema_to_public()
        return email

    return add


def log_in(page, live_app, slug: str, email: str, password: str = PASSWORD) -> None:
    page.goto(live_app.url_for(slug, "/login/"))
    page.fill("#id_username", email)
    page.fill("#id_password", password)
    page.click("button[type=submit]")


# --- the tenant's own website, with the tracking snippet ------------------------------------

SNIPPET_PAGE = """<!doctype html><html><head><title>{title}</title>
<script>window.crm=window.crm||function(){{(crm.q=crm.q||[]).push(arguments)}};</script>
<script async src="{crm}/static/tracking/crm.js"></script></head>
<body><h1>{title}</h1>{body}</body></html>"""


@pytest.fixture
def website(tmp_path):
    """The tenant's own website: static pages served from another origin (another port);
    returns the folder to write them into and the site's origin."""
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield tmp_path, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def eventually(check, timeout=30) -> bool:
    """Whether `check()` comes true within `timeout` seconds (polled every 0.2 s)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def ingest_counters(tenant) -> dict[str, int]:
    """What the ingest endpoint has counted for the tenant: accepted events and requests, and
    refusals by reason (a failing test shows them, to tell a lost beacon from a refused one)."""
    from tracking import buffer

    counters = buffer.client().hgetall(buffer.counters_key(tenant.schema_name))
    return {name.decode(): int(value) for name, value in counters.items()}


def accepted_events(tenant) -> int:
    """How many website events the ingest endpoint has accepted for the tenant."""
    return ingest_counters(tenant).get("accepted_events", 0)
