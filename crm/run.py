"""`make run`: the whole system in one terminal.

Starts (or reuses) the embedded PostgreSQL and Redis when `DATABASE_URL` / `REDIS_URL` are not
set, a local mail catcher when `EMAIL_URL` is not set, prepares the platform (migrations, the
template and spare schemas, the demo tenant), then runs gunicorn, a Celery worker and Celery beat
until Ctrl-C. Children run in sessions of their own, so the terminal's Ctrl-C reaches only this
supervisor, which stops them all and only then stops the embedded servers. Embedded servers
found already running (left by a crashed run, or started by a `manage.py` command) are adopted:
this run uses them and stops them when it ends, so a crash never leaves them running for good.
"""

import ctypes
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from crm import embedded
from crm.demo_logins import DEMO_PASSWORD, DEMO_SLUG, DEMO_USERS

PR_SET_PDEATHSIG = 1
ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
# Long enough for a Celery worker's warm shutdown to finish the task in hand.
STOP_TIMEOUT = 10


def say(message: str) -> None:
    print(f"[crm] {message}", flush=True)


class StopRequested(Exception):
    """Ctrl-C or SIGTERM arrived; not an error."""


def port_is_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # As servers do, so that connections lingering in TIME_WAIT do not count as "in use".
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def loopback_hosts() -> list[str]:
    """Where to serve: browsers may try ::1 first for `localhost` and `*.localhost`, so serve
    there too when the machine has IPv6."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return ["127.0.0.1"]
    return ["127.0.0.1", "::1"]


def _die_with_parent() -> None:
    """In the child: ask Linux to send SIGTERM when the supervisor dies, even by SIGKILL, so a
    crashed run leaves no server holding the port."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _end(processes: list[subprocess.Popen]) -> None:
    """Ask every process to stop at once (they shut down in parallel), then kill stragglers."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + STOP_TIMEOUT
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Supervisor:
    def __init__(self, port: int):
        self.port = port
        self.hosts = loopback_hosts()
        self.env = dict(os.environ)
        self.children: list[tuple[str, subprocess.Popen]] = []
        self.cleanups: list[tuple[str, Callable[[], None]]] = []
        self.maildir: Path | None = None
        self.stopping = False

    def request_stop(self, signum, frame) -> None:
        self.stopping = True

    def checkpoint(self) -> None:
        """Between and during start-up steps: give up when asked to stop or a child died."""
        if self.stopping:
            raise StopRequested
        for name, process in self.children:
            if process.poll() is not None:
                raise RuntimeError(f"The {name} process exited (status {process.returncode}).")

    def spawn(self, command: list[str]) -> subprocess.Popen:
        return subprocess.Popen(
            command, cwd=ROOT, env=self.env, start_new_session=True, preexec_fn=_die_with_parent
        )

    def supervise(self, name: str, command: list[str]) -> None:
        self.children.append((name, self.spawn(command)))

    def start_services(self) -> None:
        root = embedded.data_dir()
        if not self.env.get("DATABASE_URL"):
            say(f"Starting the embedded PostgreSQL (data in {root / 'postgres'})...")
            self.env["DATABASE_URL"] = embedded.start_postgres(root / "postgres").url
            self.cleanups.append(("PostgreSQL", lambda: embedded.stop_postgres(root / "postgres")))
            self.checkpoint()
        if not self.env.get("REDIS_URL"):
            say(f"Starting the embedded Redis (data in {root / 'redis'})...")
            self.env["REDIS_URL"] = embedded.start_redis(root / "redis").url
            self.cleanups.append(("Redis", lambda: embedded.stop_redis(root / "redis")))
            self.checkpoint()
        # Children see the servers through the URLs, so settings no longer fall back to the data
        # folder's development key: pass it on.
        self.env.setdefault("SECRET_KEY", embedded.development_secret_key())
        # Plain HTTP on loopback: without DEBUG the production settings would redirect to HTTPS.
        self.env["DEBUG"] = "1"
        self.env.setdefault("CRM_BASE_DOMAIN", "localhost")
        self.env["CRM_PUBLIC_PORT"] = str(self.port)
        if not self.env.get("EMAIL_URL"):
            mail_port = embedded.free_port()
            self.maildir = root / "mail"
            self.supervise(
                "mail catcher",
                [
                    sys.executable,
                    "-m",
                    "crm.mailcatcher",
                    "--port",
                    str(mail_port),
                    "--maildir",
                    str(self.maildir),
                ],
            )
            self.env["EMAIL_URL"] = f"smtp://127.0.0.1:{mail_port}"

    def prepare(self) -> None:
        say("Migrating and preparing the demo workspace...")
        # In a session of its own like every child, so that Ctrl-C stops it here, cleanly,
        # rather than as a traceback in the middle of a migration.
        setup = self.spawn([sys.executable, "manage.py", "setup_platform"])
        try:
            while setup.poll() is None:
                self.checkpoint()
                time.sleep(0.1)
        finally:
            _end([setup])
        if setup.returncode != 0:
            raise RuntimeError(f"manage.py setup_platform failed (status {setup.returncode}).")

    def start_app(self) -> None:
        binds = []
        for host in self.hosts:
            binds += ["--bind", f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"]
        self.supervise(
            "web",
            [
                str(BIN / "gunicorn"),
                "crm.wsgi:application",
                *binds,
                "--workers",
                "2",
                "--threads",
                "4",
                "--access-logfile",
                "-",
            ],
        )
        self.supervise(
            "worker",
            [
                str(BIN / "celery"),
                "-A",
                "crm",
                "worker",
                "--loglevel",
                "INFO",
                "--concurrency",
                "2",
            ],
        )
        self.supervise(
            "beat",
            [
                str(BIN / "celery"),
                "-A",
                "crm",
                "beat",
                "--loglevel",
                "INFO",
                "--schedule",
                str(embedded.data_dir() / "celerybeat-schedule"),
            ],
        )

    def wait_for_first_page(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.checkpoint()
            if self.healthy():
                return
            time.sleep(0.2)
        raise RuntimeError(f"The web server did not answer /healthz within {timeout:.0f}s.")

    def healthy(self) -> bool:
        # http.client rather than urllib: urllib would send a loopback request through the
        # proxy of an `http_proxy` variable.
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
        try:
            connection.request(
                "GET", "/healthz", headers={"Host": f"{self.env['CRM_BASE_DOMAIN']}:{self.port}"}
            )
            return connection.getresponse().status == 200
        except OSError:
            return False
        finally:
            connection.close()

    def watch(self) -> None:
        while True:
            self.checkpoint()
            time.sleep(0.5)

    def banner(self, seconds: float) -> None:
        base, port = self.env["CRM_BASE_DOMAIN"], self.port
        logins = "\n".join(f"    {role:<10} {email}" for email, role, _name in DEMO_USERS)
        mail = (
            f"{self.maildir} (read it: .venv/bin/python manage.py read_mail)"
            if self.maildir
            else "the server in EMAIL_URL"
        )
        print(
            f"\n  CRM is running (first page after {seconds:.1f}s).\n\n"
            f"  Public site (create a workspace): http://{base}:{port}/\n"
            f"  Demo workspace:                   http://{DEMO_SLUG}.{base}:{port}/\n"
            f"  Demo logins (password {DEMO_PASSWORD}):\n{logins}\n"
            f"  Mail goes to: {mail}\n\n"
            "  Press Ctrl-C to stop.\n",
            flush=True,
        )

    def stop(self) -> None:
        """Stop the children, then the servers this run started or adopted."""
        _end([process for _name, process in reversed(self.children)])
        for name, cleanup in reversed(self.cleanups):
            try:
                cleanup()
            except Exception as exc:
                say(f"Could not stop the embedded {name}: {exc}")


def main() -> int:
    port = int(os.environ.get("PORT") or 8000)
    supervisor = Supervisor(port)
    if not all(port_is_free(host, port) for host in supervisor.hosts):
        say(f"Port {port} is in use; stop the other server or run `make run PORT=8123`.")
        return 1
    started = time.monotonic()
    # SIGHUP too: closing the terminal should stop the servers, not orphan them.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, supervisor.request_stop)
    try:
        supervisor.start_services()
        supervisor.prepare()
        supervisor.start_app()
        supervisor.wait_for_first_page()
        supervisor.banner(time.monotonic() - started)
        supervisor.watch()
    except Exception as exc:
        # A step that fails after Ctrl-C (initdb, say, which gets the terminal's SIGINT too)
        # failed because of it: that is the stop that was asked for, not an error.
        if supervisor.stopping:
            say("Stopping...")
            supervisor.stop()
            say("Stopped.")
            return 0
        # Whatever went wrong, leave nothing running behind us.
        say(f"Stopping: {exc}")
        supervisor.stop()
        return 1


if __name__ == "__main__":
    sys.exit(main())
