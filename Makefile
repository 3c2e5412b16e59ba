# make run: the whole system on http://localhost:$(PORT)/   make test: the whole test suite.
PORT ?= 8000
export PORT
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: run test lint bench bench-platform bench-sales bench-import bench-api bench-campaigns bench-reports bench-tracking browser

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $@

run: $(STAMP)
	$(VENV)/bin/python -m crm.run

# Browser tests drive Debian's Chromium; install it when it is missing and we may (root).
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "Installing Debian's chromium for the browser tests..."; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	      || echo "Could not install chromium: browser tests will be skipped."; \
	  else \
	    echo "No /usr/bin/chromium and no root to install it: browser tests will be skipped."; \
	  fi; \
	fi

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: $(STAMP) browser lint
	$(VENV)/bin/python manage.py makemigrations --check --dry-run
	$(VENV)/bin/pytest

bench: $(STAMP)
	@for script in bench/bench_*.py; do $(VENV)/bin/python -W ignore $$script || exit 1; done

bench-platform: $(STAMP)
	$(VENV)/bin/python -W ignore bench/bench_platform.py

# BENCH_CONTACTS (default 1,000,000) and BENCH_REQUESTS (per page, default 200) scale it down.
bench-sales: $(STAMP)
	$(VENV)/bin/python -W ignore bench/bench_sales.py

# BENCH_ROWS (default 1,000,000) scales it down.
bench-import: $(STAMP)
	$(VENV)/bin/python -W ignore bench/bench_import.py

# BENCH_CONTACTS (default 1,000,000), BENCH_REQUESTS (per call, default 320) and
# BENCH_BULK_ROUNDS (1,000-contact batches per client, default 3) scale it down.
bench-api: $(STAMP)
	$(VENV)/bin/python -W ignore bench/bench_api.py

# BENCH_RECIPIENTS (default 100,000) and BENCH_RENDER (messages rendered alone and sent by the
# bare smtplib loop, default 20,000) scale it down; BENCH_WORKER_CONCURRENCY (default 1.5 per
# core, as make run's worker) and BENCH_WORKER_POOL (default prefork) set the Celery worker's
# pool; BENCH_PROFILE=<n> profiles chunk_send in-process on n messages.
bench-campaigns: $(STAMP)
	$(VENV)/bin/python -W ignore bench/bench_campaigns.py

# BENCH_CONTACTS (default 1,000,000) and BENCH_REQUESTS (per page, default 200) scale it down;
# BENCH_REUSE=1 with DATABASE_URL and REDIS_URL reuses a tenant seeded before (adding what it lacks).
bench-reports: $(STAMP)
	$(VENV)/bin/python -W ignore bench/bench_reports.py

# BENCH_RATE (events/s offered, default 10,000) for BENCH_SECONDS (default 25), BENCH_VISITORS
# (default 20,000, BENCH_IDENTIFIED of them identified, default 0.2), BENCH_CONTACTS (default
# 20,000), BENCH_FLAT_SECONDS (default 10) and BENCH_LAG_RATE / BENCH_LAG_SECONDS (default 2,000
# events/s for 20 s) scale it; BENCH_PROFILE=<s> profiles the drain in-process for s seconds.
bench-tracking: $(STAMP)
	$(VENV)/bin/python -W ignore bench/bench_tracking.py
