"""Fixtures for website tracking: posting to the ingest endpoint through the site's real WSGI
application (crm.wsgi, which answers /t/collect before Django), and a clean buffer."""

import io
import json
import time
import uuid
from dataclasses import dataclass

import pytest
from django_tenants.utils import schema_context

from tracking import buffer, ingest

SITE = "https://www.alpha-site.test"


@pytest.fixture(autouse=True)
def clean_buffer():
    """Each test starts with empty tracking keys in the test Redis and a fresh host map (the
    database is rolled back between tests; Redis is not)."""
    client = buffer.client()
    keys = client.keys("tracking:*")
    if keys:
        client.delete(*keys)
    ingest.sites_forget()
    yield
    ingest.sites_forget()


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def json(self):
        return json.loads(self.body)


def post(
    host: str,
    body: bytes | str | dict,
    *,
    method: str = "POST",
    content_type: str = "text/plain;charset=UTF-8",
    origin: str | None = SITE,
    ip: str = "127.0.0.1",
    path: str = ingest.PATH,
) -> Answer:
    """Call the site's WSGI application as gunicorn would, and return its answer."""
    from crm.wsgi import application

    if isinstance(body, dict):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode()
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": host,
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": host,
        "REMOTE_ADDR": ip,
        "CONTENT_TYPE": content_type,
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": io.StringIO(),
        "wsgi.url_scheme": "http",
        "wsgi.version": (1, 0),
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    if origin is not None:
        environ["HTTP_ORIGIN"] = origin
    started: dict = {}

    def start_response(status, headers, exc_info=None):
        started["status"] = int(status.split()[0])
        started["headers"] = dict(headers)

    chunks = application(environ, start_response)
    content = b"".join(chunks)
    if hasattr(chunks, "close"):
        chunks.close()
    return Answer(started["status"], started["headers"], content)


def now_ms() -> int:
    return int(time.time() * 1000)


def page_view(url: str = f"{SITE}/", title: str = "Home", **extra) -> dict:
    event = {"kind": "page_view", "id": str(uuid.uuid4()), "ts": now_ms(), "url": url}
    return {**event, "title": title, **extra}


def batch(visitor, events=(), session: str = "s1", **extra) -> dict:
    return {"v": str(visitor), "s": session, "sent_at": now_ms(), "events": list(events), **extra}


def site_origins_set(tenant, origins=(SITE,)) -> None:
    from tracking.selectors import tracking_settings

    with schema_context(tenant.schema_name):
        found = tracking_settings()
        found.site_origins = list(origins)
        found.save(update_fields=["site_origins"])
    ingest.sites_forget()


def stream_length(tenant) -> int:
    return buffer.client().xlen(buffer.stream_key(tenant.schema_name))


def host(tenant) -> str:
    return f"{tenant.slug}.localhost"


@pytest.fixture
def alpha_site(alpha):
    """Alpha with its website registered."""
    site_origins_set(alpha)
    return alpha
