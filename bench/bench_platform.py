"""How long a new workspace makes its founder wait.

Starts its own embedded PostgreSQL and Redis in a temporary folder (unless DATABASE_URL and
REDIS_URL are set), prepares the platform, then times the sign-up form end to end (form
validation, provisioning, the redirect) with a spare schema waiting and without one, and the
parts that bound it: the Argon2 hash of the founder's password and the clone of the template.

Prints `BENCH platform.<metric> <value> <unit>` lines.
"""

import os
import statistics
import time
import uuid

from platform_setup import platform_ready

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "15"))


def main() -> None:
    platform_ready()
    from django.contrib.auth.hashers import make_password
    from django.db import connection, transaction
    from django.test import Client
    from django_tenants.clone import CloneSchema

    from crm.tenants.services import spares_fill

    client = Client(HTTP_HOST="localhost")

    def signup() -> float:
        slug = f"b-{uuid.uuid4().hex[:10]}"
        data = {
            "company": "Bench Co",
            "slug": slug,
            "full_name": "Bench Person",
            "email": f"founder@{slug}.example",
            "password": "a-long-bench-password-1",
        }
        started = time.perf_counter()
        response = client.post("/", data, secure=True)
        elapsed = time.perf_counter() - started
        assert response.status_code == 302, response.content[:500]
        return elapsed * 1000

    signup()  # warm the process: imports, regexes, the common-password list
    with_spare = []
    for _ in range(ROUNDS):
        spares_fill(target=1)
        with_spare.append(signup())
    by_clone = [signup() for _ in range(ROUNDS)]

    hashes = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        make_password("a-long-bench-password-1")
        hashes.append((time.perf_counter() - started) * 1000)

    clones = []
    for i in range(ROUNDS):
        with transaction.atomic():
            started = time.perf_counter()
            CloneSchema().clone_schema("tenant_template", f"bench_clone_{i}", "DATA")
            clones.append((time.perf_counter() - started) * 1000)
            transaction.set_rollback(True)
    connection.close()

    report("signup_spare", with_spare)
    report("signup_clone", by_clone)
    report("password_hash", hashes)
    report("template_clone", clones)
    ratio = statistics.median(with_spare) / statistics.median(hashes)
    print(f"BENCH platform.signup_spare_vs_hash {ratio:.2f} ratio")


def report(name: str, samples_ms: list[float]) -> None:
    ordered = sorted(samples_ms)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    print(f"BENCH platform.{name}_p50 {statistics.median(ordered):.1f} ms")
    print(f"BENCH platform.{name}_p95 {p95:.1f} ms")


if __name__ == "__main__":
    main()
