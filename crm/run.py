"""`make run`: the whole system in one terminal.

Starts (or reuses) the embedded PostgreSQL and Redis when `DATABASE_URL` / `REDIS_URL` are not
set, a local mail catcher when `EMAIL_URL` is not set, prepares the platform (migrations, the
template and spare schemas, the demo tenant), then runs gunicorn, a Celery worker and Celery beat
until Ctrl-C. Children run in sessions of their own, so the terminal's Ctrl-C reaches only this
supervisor, which stops them in order and only then stops the embedded servers. Embedded servers
found already running (left by a crashed run, or started by a `manage.py` command) are adopted:
this run uses them and stops them when it ends.
"""

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from crm import embedded
from crm.demo_logins import DEMO_PASSWORD, DEMO_SLUG, DEMO_USERS

PR_SET_PDEATHSIG = 1
ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def say(message: str) -> None:
    print(f"[crm] {message}", flush=True)


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


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


def _die_with_parent() -> None:
    """In the child: ask Linux to send SIGTERM when the supervisor dies, even by SIGKILL, so a
    crashed run leaves no server holding the port."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class Supervisor:
    def __init__(self, port: int):
        self.port = port
        self.env = dict(os.environ)
        self.children: list[tuple[str, subprocess.Popen]] = []
        self.cleanups: list = []
        self.stopping = False

    def start_services(self) -> None:
        root = embedded.data_dir()
        if not self.env.get("DATABASE_URL"):
            say(f"Starting the embedded PostgreSQL (data in {root / 'postgres'})...")
            pg = embedded.start_postgres(root / "postgres")
            self.env["DATABASE_URL"] = pg.url
            self.cleanups.append(lambda: embedded.stop_postgres(root / "postgres"))
        if not self.env.get("REDIS_URL"):
            say(f"Starting the embedded Redis (data in {root / 'redis'})...")
            rd = embedded.start_redis(root / "redis")
            self.env["REDIS_URL"] = rd.url
            self.cleanups.append(lambda: embedded.stop_redis(root / "redis"))
        self.env.setdefault("DEBUG", "1")
        self.env.setdefault("SECRET_KEY", embedded.development_secret_key())
        self.env.setdefault("CRM_BASE_DOMAIN", "localhost")
        self.env["CRM_PUBLIC_PORT"] = str(self.port)
        if not self.env.get("EMAIL_URL"):
            mail_port = embedded.free_port()
            self.spawn(
                "mail",
                [
                    sys.executable,
                    "-m",
                    "crm.mailcatcher",
                    "--port",
                    str(mail_port),
                    "--maildir",
                    str(root / "mail"),
                ],
            )
            self.env["EMAIL_URL"] = f"smtp://127.0.0.1:{mail_port}"
            # The app stamps each message with its tenant and shows it at /mail/ (crm.mailcatcher).
            self.env["CRM_MAILCATCHER_DIR"] = str(root / "mail")

    def spawn(self, name: str, command: list[str]) -> None:
        process = subprocess.Popen(
            command, cwd=ROOT, env=self.env, start_new_session=True, preexec_fn=_die_with_parent
        )
        self.children.append((name, process))

    def prepare(self) -> None:
        say("Migrating and preparing the demo workspace...")
        subprocess.run(
            [sys.executable, "manage.py", "setup_platform"], cwd=ROOT, env=self.env, check=True
        )

    def start_app(self) -> None:
        # Website events have a worker of their own (below; see tracking.tasks).
        self.env.setdefault("CRM_TRACKING_QUEUE", "tracking")
        binds = ["--bind", f"127.0.0.1:{self.port}"]
        if ipv6_loopback() and port_is_free("::1", self.port):
            # Browsers may try ::1 first for *.localhost.
            binds += ["--bind", f"[::1]:{self.port}"]
        self.spawn(
            "web",
            [
                str(BIN / "gunicorn"),
                "--config",
                "python:crm.gunicorn_conf",
                "crm.wsgi:application",
                *binds,
                "--access-logfile",
                "-",
            ],
        )
        # Half again as many processes as cores: a campaign send waits on the mail server and
        # PostgreSQL for about half of each message, so one process per core leaves cores idle
        # (make bench-campaigns, 100,000 messages on 2 cores: 3 processes sent 1,250 msgs/s on an
        # otherwise quiet machine and 990-1,090 beside another session's load, 2 sent 1,140 and
        # 950-1,100; each process holds about 125 MB). docker-compose.yml and the benchmark size
        # the worker alike.
        self.spawn(
            "worker",
            [
                str(BIN / "celery"),
                "-A",
                "crm",
                "worker",
                "--loglevel",
                "INFO",
                "--concurrency",
                str(os.cpu_count() * 3 // 2),
            ],
        )
        # Drains website events into timelines every second, however busy the worker above is
        # with campaign sends; quiet, as it runs a task a second.
        self.spawn(
            "drain",
            [
                str(BIN / "celery"),
                "-A",
                "crm",
                "worker",
                "--queues",
                self.env["CRM_TRACKING_QUEUE"],
                "--hostname",
                "drain@%h",
                "--loglevel",
                "WARNING",
                "--concurrency",
                "2",
            ],
        )
        self.spawn(
            "beat",
            [
                str(BIN / "celery"),
                "-A",
                "crm",
                "beat",
                # Beat sends a task every second (the drain's dispatcher): warnings only.
                "--loglevel",
                "WARNING",
                "--schedule",
                str(embedded.data_dir() / "celerybeat-schedule"),
            ],
        )

    def wait_for_first_page(self, timeout: float = 120) -> None:
        base = self.env["CRM_BASE_DOMAIN"]
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/healthz", headers={"Host": f"{base}:{self.port}"}
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.stopping:
            self.check_children()
            try:
                with urllib.request.urlopen(request, timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)
        if self.stopping:
            return
        raise RuntimeError(f"The web server did not answer within {timeout:.0f}s.")

    def check_children(self) -> None:
        for name, process in self.children:
            if process.poll() is not None:
                raise RuntimeError(f"The {name} process exited (status {process.returncode}).")

    def banner(self, seconds: float) -> None:
        base, port = self.env["CRM_BASE_DOMAIN"], self.port
        logins = "\n".join(f"    {role:<10} {email}" for email, role, _ in DEMO_USERS)
        mail = (
            f"the local catcher; read it at http://{DEMO_SLUG}.{base}:{port}/mail/ "
            "(each workspace at its own /mail/), or: .venv/bin/python manage.py read_mail"
            if self.env.get("CRM_MAILCATCHER_DIR")
            else self.env["EMAIL_URL"]
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
        """Stop the children (newest first), then the servers this run started."""
        for _name, process in reversed(self.children):
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + 15
        for _name, process in reversed(self.children):
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for cleanup in reversed(self.cleanups):
            cleanup()


def main() -> int:
    port = int(os.environ.get("PORT") or 8000)
    if not port_is_free("127.0.0.1", port):
        say(f"Port {port} is in use. Stop the other server, or run `make run PORT=8123`.")
        return 1
    started = time.monotonic()
    supervisor = Supervisor(port)

    def request_stop(signum, frame):
        supervisor.stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        supervisor.start_services()
        supervisor.prepare()
        supervisor.start_app()
        supervisor.wait_for_first_page()
        supervisor.banner(time.monotonic() - started)
        while not supervisor.stopping:
            supervisor.check_children()
            time.sleep(0.5)
    except Exception as exc:
        # Whatever went wrong, leave nothing running behind us.
        say(f"Stopping: {exc}")
        supervisor.stop()
        return 1
    say("Stopping...")
    supervisor.stop()
    say("Stopped.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
