"""`make run` for real: the supervisor, embedded PostgreSQL and Redis in a fresh data folder,
gunicorn, Celery worker and beat, and the mail catcher. Slow by nature (a fresh PostgreSQL
cluster, every migration, the demo data), so the whole lifecycle shares one data folder."""

import http.client
import mailbox
import os
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from email.message import EmailMessage
from pathlib import Path

import psutil
import pytest

from crm.embedded import free_port
from crm.run import loopback_hosts, port_is_free

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.stack


def stack_env(data_dir: str, port: int) -> dict[str, str]:
    """This test session's environment without what points it at its own servers."""
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


def launch(env) -> tuple[subprocess.Popen, Path]:
    """Start `make run`'s supervisor as a terminal would: leading a process group of its own,
    so that `ctrl_c` can signal the whole group. Its output goes to a log in the data folder."""
    log = Path(env["CRM_DATA_DIR"], f"run-{time.monotonic_ns()}.log")
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "crm.run"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return process, log


def wait_for_output(process, log: Path, text: str, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if text in log.read_text(errors="replace"):
            return
        time.sleep(0.1)
    process.kill()
    pytest.fail(f"make run never printed {text!r}:\n{log.read_text(errors='replace')[-3000:]}")


def start(env) -> tuple[subprocess.Popen, Path, float]:
    """Start the supervisor; return it, its log and the seconds until its banner."""
    started = time.monotonic()
    process, log = launch(env)
    wait_for_output(process, log, "CRM is running")
    return process, log, time.monotonic() - started


def ctrl_c(process) -> None:
    os.killpg(process.pid, signal.SIGINT)


def get(port: int, host: str, path: str = "/") -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path, headers={"Host": f"{host}:{port}"})
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


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


def named(processes: list[psutil.Process], word: str) -> list[psutil.Process]:
    return [p for p in processes if word in " ".join(p.cmdline())]


def wait_until(condition, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


@pytest.fixture
def data_dir():
    # A short path: PostgreSQL's unix socket path must stay under 108 bytes.
    folder = tempfile.mkdtemp(prefix="crm-stack-", dir="/tmp")
    yield folder
    for proc in stack_processes(folder):
        proc.kill()
    shutil.rmtree(folder, ignore_errors=True)


def test_make_run_starts_serves_stops_restarts_and_survives_crashes(data_dir):
    port = free_port()
    env = stack_env(data_dir, port)

    # Fresh machine: everything is created.
    process, log, first_start = start(env)
    status, page = get(port, "localhost")
    assert status == 200 and "create your workspace" in page.lower()
    status, page = get(port, "demo.localhost", "/login/")
    assert status == 200 and "Log in to Demo Company" in page
    banner = log.read_text()
    assert f"http://demo.localhost:{port}/" in banner
    assert "admin@demo.example" in banner and "demo-pass-2026" in banner
    assert f"{data_dir}/mail" in banner and "manage.py read_mail" in banner

    # Every child runs in development mode on the run's port and sends mail to the catcher.
    (web,) = [p for p in named(stack_processes(data_dir), "gunicorn") if p.ppid() == process.pid]
    child_env = web.environ()
    assert child_env["DEBUG"] == "1" and child_env["CRM_PUBLIC_PORT"] == str(port)
    assert child_env["EMAIL_URL"].startswith("smtp://127.0.0.1:")

    # Another terminal: manage.py works against the same embedded servers, and caught mail can
    # be read back.
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
    sent = manage(
        {**env, "EMAIL_URL": child_env["EMAIL_URL"]}, "sendtestemail", "someone@example.com"
    )
    assert sent.returncode == 0, sent.stderr
    read = manage(env, "read_mail", "--to", "someone@example.com")
    assert "Subject: Test email from" in read.stdout, read.stderr

    # Ctrl-C stops everything it started.
    ctrl_c(process)
    assert process.wait(timeout=60) == 0
    assert stack_processes(data_dir) == []

    # Again: the data is reused, and it is quicker.
    process, log, second_start = start(env)
    assert get(port, "second.localhost", "/login/")[0] == 200

    # A child that dies takes the whole run down, with a message and a failing status.
    (web,) = [p for p in named(stack_processes(data_dir), "gunicorn") if p.ppid() == process.pid]
    web.kill()
    assert process.wait(timeout=60) == 1
    assert "The web process exited" in log.read_text()
    assert wait_until(lambda: stack_processes(data_dir) == [])

    # A crash of the supervisor alone: Linux stops its children, the embedded servers stay up
    # and the next run adopts them.
    process, _log, _ = start(env)
    process.kill()
    process.wait()
    assert wait_until(lambda: all(port_is_free(h, port) for h in loopback_hosts()))
    assert named(stack_processes(data_dir), f"{data_dir}/postgres")
    process, _log, _ = start(env)
    assert get(port, "demo.localhost", "/login/")[0] == 200

    # A crash of everything (a machine that lost power): stale pid files for both servers.
    process.kill()
    process.wait()
    crashed = stack_processes(data_dir)
    for proc in crashed:
        proc.kill()
    # Until init reaps them, killed servers linger as zombies that look alive; after a real
    # power cut there are none.
    _, alive = psutil.wait_procs(crashed, timeout=30)
    assert alive == []
    assert Path(data_dir, "postgres", "postmaster.pid").exists()
    assert wait_until(lambda: all(port_is_free(h, port) for h in loopback_hosts()))
    process, _log, _ = start(env)
    assert get(port, "demo.localhost", "/login/")[0] == 200
    ctrl_c(process)
    assert process.wait(timeout=60) == 0
    assert stack_processes(data_dir) == []
    print(f"first start {first_start:.1f}s, second start {second_start:.1f}s")
    assert second_start < first_start


def test_ctrl_c_while_starting_stops_cleanly(data_dir):
    process, log = launch(stack_env(data_dir, free_port()))
    wait_for_output(process, log, "Migrating")

    ctrl_c(process)

    assert process.wait(timeout=30) == 0
    assert "CRM is running" not in log.read_text()
    assert wait_until(lambda: stack_processes(data_dir) == [])


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
    assert f"port {port} is in use" in result.stdout.lower()
    assert "make run PORT=" in result.stdout
    assert os.listdir(data_dir) == []


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
        process, _log, _ = start(env)
        assert get(port, "demo.localhost", "/login/")[0] == 200
        ctrl_c(process)
        assert process.wait(timeout=60) == 0
        assert not Path(data_dir, "postgres").exists()
        assert not Path(data_dir, "redis").exists()
    finally:
        with psycopg.connect(**admin) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_mail_catcher_keeps_each_message_in_a_maildir(tmp_path):
    port = free_port()
    catcher = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "crm.mailcatcher",
            "--port",
            str(port),
            "--maildir",
            str(tmp_path / "mail"),
        ],
        cwd=ROOT,
    )
    try:
        assert wait_until(lambda: not port_is_free("127.0.0.1", port), timeout=15)
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = "a@x.example", "b@y.example", "Hi"
        message.set_content("Hello from the test.")
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
            smtp.send_message(message)

        (caught,) = mailbox.Maildir(tmp_path / "mail", create=False)
        assert caught["Subject"] == "Hi"
        assert "Hello from the test." in caught.get_payload()
    finally:
        catcher.send_signal(signal.SIGTERM)
        assert catcher.wait(timeout=15) == 0
