"""What every benchmark does first: its own embedded servers in a throw-away folder (unless
DATABASE_URL and REDIS_URL are set), Django set up, and the platform migrated. Nothing is left
running: the servers stop when the benchmark exits, and the folder goes after them."""

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def platform_ready() -> None:
    if not (os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL")):
        folder = tempfile.mkdtemp(prefix="crm-bench-", dir="/tmp")
        # Registered first, so it runs last: after the servers stopped at exit.
        atexit.register(shutil.rmtree, folder, True)
        os.environ["CRM_DATA_DIR"] = folder
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crm.settings")
    # Benchmarks measure sign-up with and without spares themselves.
    os.environ["CRM_SPARE_SCHEMAS"] = "0"
    sys.path.insert(0, str(ROOT))

    import django
    from django.core.management import call_command

    django.setup()
    call_command("setup_platform", no_demo=True, verbosity=0)
