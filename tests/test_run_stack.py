"""`make run` for real: the supervisor, embedded PostgreSQL and Redis in a fresh data folder,
gunicorn, Celery worker and beat, and the mail catcher. Slow by nature (a fresh PostgreSQL
cluster, every migration, the demo data), so the whole lifecycle shares one data folder."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import psutil
import pytest

from crm.embedded import free_port
from crm.run import port_is_free

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.stack


def stack_env(data_dir: str, port: int) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in {
            "DATABASE_URL",
            "REDIS_URL",
            "EMAIL_URL",
            "DEBUG",
            "SECRET_KEY",
            "DJANGO_ALLOW_ASYNC_UNSAFE",
            "TEST_DATABASE_NAME",
            "TEST_REDIS_DB",
        }
    }
    return {**env, "CRM_DATA_DIR": data_dir, "PORT": str(port)}


def start(env) -> tuple[subprocess.Popen, float]:
    """Start `make run`'s supervisor; return it and the seconds until its banner."""
    log = Path(env["CRM_DATA_DIR"], f"run-{time.monotonic_ns()}.log")
    started = time.monotonic()
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "crm.run"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    while time.monotonic() - started < 300 and process.poll() is None:
        if "CRM is running" in log.read_text(errors="replace"):
            return process, time.monotonic() - started
        time.sleep(0.2)
    process.kill()
    pytest.fail(f"make run did not come up:\n{log.read_text(errors='replace')[-3000:]}")


def get(port: int, host: str, path: str = "/") -> tuple[int, str]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", headers={"Host": f"{host}:{port}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, response.read().decode()


def manage(env, *args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def stack_processes(data_dir: str) -> list[psutil.Process]:
    """Processes of a run on `data_dir`: anything whose command line names the folder (PostgreSQL,
    Celery beat, the mail catcher) or whose environment does (the supervisor and its children),
    and the Redis server of its pid file."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            in_env = proc.environ().get("CRM_DATA_DIR") == data_dir
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            in_env = False
        if in_env or data_dir in " ".join(proc.info["cmdline"] or []):
            found.append(proc)
    redis_pid = Path(data_dir, "redis", "redis.pid")
    if redis_pid.exists() and psutil.pid_exists(int(redis_pid.read_text())):
        found.append(psutil.Process(int(redis_pid.read_text())))
    return found


@pytest.fixture
def data_dir():
    # A short path: PostgreSQL's unix socket path must stay under 108 bytes.
    folder = tempfile.mkdtemp(prefix="crm-stack-", dir="/tmp")
    yield folder
    for proc in stack_processes(folder):
        proc.kill()
    shutil.rmtree(folder, ignore_errors=True)


def test_make_run_starts_serves_stops_restarts_and_survives_a_crash(data_dir):
    port = free_port()
    env = stack_env(data_dir, port)

    # Fresh machine: everything is created.
    process, first_start = start(env)
    status, page = get(port, "localhost")
    assert status == 200 and "Create your workspace" in page
    status, page = get(port, "demo.localhost", "/login/")
    assert status == 200 and "Log in to Demo Company" in page

    # Another terminal: manage.py works against the same embedded servers.
    made = manage(
        env,
        "provision_tenant",
        "second",
        "--name",
        "Second Co",
        "--admin-email",
        "boss@second.example",
        "--admin-password",
        "a-long-password-1",
    )
    assert made.returncode == 0, made.stderr
    assert get(port, "second.localhost", "/login/")[0] == 200
    taken = manage(
        env,
        "provision_tenant",
        "second",
        "--name",
        "Again",
        "--admin-email",
        "x@again.example",
        "--admin-password",
        "a-long-password-1",
    )
    assert taken.returncode == 1
    assert "This address is taken" in taken.stderr

    # Ctrl-C stops everything it started.
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 0
    assert stack_processes(data_dir) == []

    # Again: the data is reused, and it is quicker.
    process, second_start = start(env)
    assert get(port, "second.localhost", "/login/")[0] == 200
    assert second_start < first_start

    # A crash (SIGKILL of the supervisor): the servers it leaves are adopted by the next run.
    process.kill()
    process.wait()
    # The kernel sends each child SIGTERM as its parent dies; they let go of the port.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not port_is_free("127.0.0.1", port):
        time.sleep(0.2)
    process, _ = start(env)
    assert get(port, "demo.localhost", "/login/")[0] == 200
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 0
    assert stack_processes(data_dir) == []
    print(f"first start {first_start:.1f}s, second start {second_start:.1f}s")


def test_make_run_on_a_taken_port_says_so_and_starts_nothing(data_dir):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        result = subprocess.run(
            [sys.executable, "-m", "crm.run"],
            cwd=ROOT,
            env=stack_env(data_dir, port),
            capture_output=True,
            text=True,
            timeout=60,
        )

    assert result.returncode == 1
    assert f"Port {port} is in use" in result.stdout
    assert not Path(data_dir, "postgres").exists()


def test_make_run_with_database_and_redis_urls_starts_no_embedded_server(data_dir, settings):
    """The servers of this test session stand in for external ones (a database and a Redis
    database of the stack's own, so its worker never takes this session's tasks)."""
    import psycopg

    from tests.e2e.conftest import database_url

    db = settings.DATABASES["default"]
    name = f"crm_external_{uuid.uuid4().hex[:8]}"
    admin = dict(
        host=db["HOST"],
        port=db["PORT"] or None,
        user=db["USER"],
        password=db["PASSWORD"] or None,
        dbname="postgres",
        autocommit=True,
    )
    with psycopg.connect(**admin) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    port = free_port()
    env = {
        **stack_env(data_dir, port),
        "DATABASE_URL": database_url(name),
        "REDIS_URL": settings.REDIS_URL.rsplit("/", 1)[0] + "/15",
    }
    try:
        process, _ = start(env)
        assert get(port, "demo.localhost", "/login/")[0] == 200
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0
        assert not Path(data_dir, "postgres").exists()
        assert not Path(data_dir, "redis").exists()
    finally:
        with psycopg.connect(**admin) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
