"""Settings come from the environment (12-factor).

With nothing set the gateway runs on an embedded default: a SQLite file and a
local-memory cache. Production sets DATABASE_URL (PostgreSQL) and REDIS_URL, and then
refuses to start on a default secret (docs/decisions/0052-threat-model.md).

Any variable may instead be read from a file named by <NAME>_FILE (compose secrets).
"""

import os
import secrets
import tempfile
from pathlib import Path
from urllib.parse import urlparse

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.FileAwareEnv()
env.read_env(BASE_DIR / ".env")  # optional; real environment variables win


def _secret(name: str) -> str:
    # A secret read from a file usually ends with a newline that is not part of it.
    return env.str(name, default="").strip()


# The embedded default: SQLite and no Redis. Anything else is a deployment, which must not
# start on defaults that are unsafe to expose.
GATEWAY_EMBEDDED = not _secret("REDIS_URL") and (_secret("DATABASE_URL") or "sqlite:").startswith("sqlite:")

# --- Django core: apps, middleware, templates, auth, i18n, static files, security ---

DEBUG = env.bool("DEBUG", default=False)


def _secret_key() -> str:
    """SECRET_KEY, which a deployment must set; the embedded default makes one per install,
    once, in a file that git and the image leave out."""
    key = _secret("SECRET_KEY")
    if key:
        if not GATEWAY_EMBEDDED and (len(key) < 50 or len(set(key)) < 5 or key.startswith("django-insecure")):
            raise ImproperlyConfigured("SECRET_KEY is too weak: use 50 or more random characters.")
        return key
    if not GATEWAY_EMBEDDED:
        raise ImproperlyConfigured("Set SECRET_KEY (or SECRET_KEY_FILE): 50 or more random characters.")
    path = Path(env("GATEWAY_EMBEDDED_KEY_FILE", default=str(BASE_DIR / ".secret_key")))
    if path.exists():
        return path.read_text().strip()
    try:
        # Written whole, then linked into place: of processes starting together (gunicorn's
        # workers), one key wins and every process reads that one.
        fd, written = tempfile.mkstemp(dir=path.parent, prefix=".secret_key-")
        with os.fdopen(fd, "w") as file:  # mkstemp's mode is 0600
            file.write(secrets.token_urlsafe(50))
        try:
            os.link(written, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(written)
    except OSError as exc:
        raise ImproperlyConfigured(f"Set SECRET_KEY: no key file could be written at {path} ({exc}).") from exc
    return path.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and ReDoc served offline
    "django_prometheus",
    "gateway",
    "inference",
    "inference.batches",
    "experiments",
    "observability",
]

MIDDLEWARE = [
    "gateway.record.middleware.RequestLogMiddleware",
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "gateway.api.browser_middleware.BrowserSessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "gateway.api.browser_middleware.BrowserAuthenticationMiddleware",
    "gateway.api.browser_middleware.BrowserMessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

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
            ],
        },
    },
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "staticfiles")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Behind a proxy that terminates TLS, says so in X-Forwarded-Proto and drops a client's own
# X-Forwarded-Proto. Explicit, never guessed: the header is trusted only when this is set, and
# with it the gateway insists on HTTPS (redirect, HSTS, cookies sent over HTTPS only).
BEHIND_TLS_PROXY = env.bool("BEHIND_TLS_PROXY", default=False)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if BEHIND_TLS_PROXY else None
SECURE_SSL_REDIRECT = BEHIND_TLS_PROXY
# Probes and the Prometheus scrape come from inside the deployment, over plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^health$", r"^ready$", r"^metrics$"]
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000 if BEHIND_TLS_PROXY else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=BEHIND_TLS_PROXY)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=BEHIND_TLS_PROXY)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = BEHIND_TLS_PROXY
SESSION_COOKIE_HTTPONLY = CSRF_COOKIE_HTTPONLY = True

# --- Database and cache ---

DATABASES = {"default": env.db_url_config(_secret("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Django's own psycopg 3 pool: threads borrow a connection per request instead of
    # each of gunicorn's threads holding one open. Size it so that
    # workers x DB_POOL_MAX_SIZE stays under PostgreSQL's max_connections.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": env.int("DB_POOL_MIN_SIZE", default=2),
        "max_size": env.int("DB_POOL_MAX_SIZE", default=16),
        "timeout": env.float("DB_POOL_TIMEOUT", default=10.0),
        # A connection that failed is retried with a doubling backoff for this long, then left
        # to demand: after an outage the pool reconnects on the next request, not up to a
        # backoff step (16 s after 20 s down, a minute after two) later (docs/reliability.md).
        "reconnect_timeout": env.float("DB_POOL_RECONNECT_TIMEOUT", default=5.0),
    }
    # A connection attempt to a host that does not answer gives up after this long (libpq waits
    # for the OS otherwise, minutes); a request that needs the database then answers 503
    # within DB_POOL_TIMEOUT (docs/reliability.md).
    DATABASES["default"]["OPTIONS"].setdefault("connect_timeout", env.int("DB_CONNECT_TIMEOUT", default=3))
elif DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Concurrent writers from server threads wait for the lock instead of failing.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
    )

REDIS_URL = _secret("REDIS_URL")


def _redis_cache(url: str) -> dict:
    return {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": url,
        "OPTIONS": {
            "CLIENT_CLASS": "django_redis.client.DefaultClient",
            # JSON, not pickle: whoever can write to Redis must not be able to run code here.
            "SERIALIZER": "django_redis.serializers.json.JSONSerializer",
            "SOCKET_CONNECT_TIMEOUT": env.float("REDIS_CONNECT_TIMEOUT", default=0.5),
            "SOCKET_TIMEOUT": env.float("REDIS_TIMEOUT", default=0.5),
        },
    }


# "default" holds counters, breakers and the configuration generation, which must never be
# evicted; "responses" holds the response cache, which may be, on a Redis of its own
# (RESPONSE_CACHE_URL, with an LRU policy and maxmemory). Unset, it is the default cache.
RESPONSE_CACHE_URL = _secret("RESPONSE_CACHE_URL") or REDIS_URL
if REDIS_URL:
    CACHES = {"default": _redis_cache(REDIS_URL), "responses": _redis_cache(RESPONSE_CACHE_URL)}
else:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "responses": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    }

# --- Celery: broker, worker, beat schedule, task routes ---

# Redis in production; with no broker configured tasks run eagerly in-process.
CELERY_BROKER_URL = _secret("CELERY_BROKER_URL") or REDIS_URL or "memory://"
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=not REDIS_URL)
# JSON only: a worker never unpickles what it finds in the broker.
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = CELERY_RESULT_SERIALIZER = "json"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Job state and results live in PostgreSQL; Celery's own result store would be a second copy.
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # Redis hands a task that was taken but never acknowledged (its worker died) to another
    # worker after this long; a task still running past it is handed out twice, which chunk
    # processing tolerates (an item is stored once), so keep it above the slowest chunk.
    "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT_S", default=300),
    # How often a worker looks for such tasks (kombu's default amounts to every 100 s).
    "unacked_restore_interval": env.int("CELERY_UNACKED_RESTORE_INTERVAL_S", default=10),
    "unacked_restore_throttle": 1,
}

# Child processes, each with its own model copy and micro-batcher, loaded after the fork on
# first use; one per core beats threads in one process (docs/decisions/0010-batch-jobs.md).
CELERY_WORKER_POOL = env("WORKER_POOL", default="prefork")
CELERY_WORKER_CONCURRENCY = env.int("WORKER_CONCURRENCY", default=2)

# An active batch job with no progress for this long has its pending chunks queued again
# (their messages may have been lost); keep it well above CELERY_VISIBILITY_TIMEOUT_S, which
# recovers the usual case. Beat sends that check every GATEWAY_BATCH_STALL_CHECK_S.
GATEWAY_BATCH_STALLED_AFTER_S = env.int("GATEWAY_BATCH_STALLED_AFTER_S", default=900)
GATEWAY_BATCH_STALL_CHECK_S = env.int("GATEWAY_BATCH_STALL_CHECK_S", default=60)
# Every periodic task. One beat per deployment; extra ones only repeat the work.
CELERY_BEAT_SCHEDULE = {
    "requeue-stalled-batch-jobs": {
        "task": "inference.batches.tasks.requeue_stalled_batch_jobs",
        "schedule": GATEWAY_BATCH_STALL_CHECK_S,
        "options": {"expires": GATEWAY_BATCH_STALL_CHECK_S},
    },
    "refresh-rollups": {"task": "observability.tasks.refresh_rollups", "schedule": 60.0},
    "prune-request-log": {"task": "observability.tasks.prune_request_log", "schedule": 3600.0},
}
# Beat's state file: the image's working directory is read-only for its user.
CELERY_BEAT_SCHEDULE_FILENAME = env(
    "CELERY_BEAT_SCHEDULE_FILENAME", default=os.path.join(tempfile.gettempdir(), "gateway-celerybeat-schedule")
)
# Maintenance has its own queue (a `-Q maintenance` worker), so a backlog of batch jobs never delays it.
CELERY_TASK_ROUTES = {"observability.tasks.*": {"queue": "maintenance"}}

# --- API: DRF, OpenAPI schema, body and batch limits, keys ---

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["gateway.keys.authentication.APIKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["gateway.keys.permissions.HasEndpointScope"],
    "DEFAULT_THROTTLE_CLASSES": ["gateway.limits.rate_limits.KeyRequestRateThrottle"],
    # JSON bodies nested deeper than GATEWAY_MAX_JSON_DEPTH are a 400 (gateway/api/parsers.py).
    "DEFAULT_PARSER_CLASSES": [
        "gateway.api.parsers.JSONParser",
        "gateway.api.parsers.FormEncodedJSONParser",
    ],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "EXCEPTION_HANDLER": "gateway.api.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "AI Gateway API",
    "DESCRIPTION": "Predictions and embeddings on local models behind API keys.",
    "VERSION": "1.0.0",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Its deploy check lints the OpenAPI document (views it cannot describe), which says
    # nothing about whether a deployment is safe; `check --deploy` is kept for that.
    "ENABLE_DJANGO_DEPLOY_CHECK": False,
    # Every operation's error answers in the schema (gateway/api/schema.py).
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "gateway.api.schema.document_errors"],
}

# Larger requests get a JSON 413 before anything parses them.
GATEWAY_MAX_BODY_BYTES = env.int("GATEWAY_MAX_BODY_BYTES", default=1_048_576)
# Batch submissions carry thousands of inputs: their paths get a limit of their own.
GATEWAY_BATCH_MAX_BODY_BYTES = env.int("GATEWAY_BATCH_MAX_BODY_BYTES", default=16 * 1_048_576)
GATEWAY_BATCH_SUBMIT_PATHS = ("/api/v1/batches", "/batch_predict")
# Django's own check comes after the middleware's per-path one, so it allows the larger.
DATA_UPLOAD_MAX_MEMORY_SIZE = max(GATEWAY_MAX_BODY_BYTES, GATEWAY_BATCH_MAX_BODY_BYTES)
# Most items in one batch job, and items per Celery task (small enough that progress moves
# and a crashed worker redoes little; big enough to fill a forward pass).
GATEWAY_BATCH_MAX_ITEMS = env.int("GATEWAY_BATCH_MAX_ITEMS", default=10_000)
GATEWAY_BATCH_CHUNK_SIZE = env.int("GATEWAY_BATCH_CHUNK_SIZE", default=32)
GATEWAY_MAX_EMBEDDING_INPUTS = env.int("GATEWAY_MAX_EMBEDDING_INPUTS", default=256)
# Skip the last-used write when the stored value is this recent (one UPDATE a minute per key).
GATEWAY_KEY_LAST_USED_RESOLUTION_S = 60

# --- Models and inference: defaults, timeouts, queue, model store, threads, upstreams ---

# Models load from local files only; set HF_HUB_OFFLINE=0 to let hub ids download.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

GATEWAY_DEFAULT_CLASSIFIER = env("GATEWAY_DEFAULT_CLASSIFIER", default="sentiment")
GATEWAY_DEFAULT_EMBEDDINGS = env("GATEWAY_DEFAULT_EMBEDDINGS", default="embeddings")
GATEWAY_DEFAULT_CHAT = env("GATEWAY_DEFAULT_CHAT", default="smollm2")
# How long a request may wait for the model before it is answered 503.
GATEWAY_INFERENCE_TIMEOUT_S = env.float("GATEWAY_INFERENCE_TIMEOUT_S", default=10.0)
# Requests queued per model before new ones are refused with 503.
GATEWAY_INFERENCE_QUEUE_SIZE = env.int("GATEWAY_INFERENCE_QUEUE_SIZE", default=1024)
# Response cache master switch (TTLs are per model version).
GATEWAY_RESPONSE_CACHE = env.bool("GATEWAY_RESPONSE_CACHE", default=True)
# Where trainclassifier saves model artifacts (versions refer to them as store:<path>) and
# where ONNX exports of local encoders are kept (docs/decisions/0075-onnx-runtime.md).
MODEL_STORE = Path(env("MODEL_STORE", default=str(BASE_DIR / "model_store")))
# PyTorch and ONNX Runtime threads per process (0: their defaults, one per core); gunicorn.conf.py sets
# C / W for W web workers on C cores unless this is set.
TORCH_THREADS = env.int("TORCH_THREADS", default=0)

# Upstream calls: pooled keep-alive connections per upstream host (size it like WEB_THREADS).
UPSTREAM_POOL_SIZE = env.int("UPSTREAM_POOL_SIZE", default=256)
UPSTREAM_BACKOFF_INITIAL_S = env.float("UPSTREAM_BACKOFF_INITIAL_S", default=0.25)
UPSTREAM_BACKOFF_MAX_S = env.float("UPSTREAM_BACKOFF_MAX_S", default=8.0)
# A Retry-After longer than this is not waited for: the next version in the chain is tried.
UPSTREAM_MAX_RETRY_AFTER_S = env.float("UPSTREAM_MAX_RETRY_AFTER_S", default=20.0)
# Circuit breaker per upstream version, shared by all processes through the cache (Redis).
BREAKER_FAILURE_THRESHOLD = env.int("BREAKER_FAILURE_THRESHOLD", default=5)
BREAKER_WINDOW_S = env.int("BREAKER_WINDOW_S", default=60)
BREAKER_COOLDOWN_S = env.float("BREAKER_COOLDOWN_S", default=30.0)
# A process that found a breaker closed and clean trusts that for this long without asking
# Redis again (its own failures end the trust at once): one round trip fewer per upstream call.
BREAKER_CLOSED_REUSE_S = env.float("BREAKER_CLOSED_REUSE_S", default=1.0)
# The local LLM engine (llama.cpp's OpenAI-compatible server) that `bootstrap` registers.
LOCAL_LLM_URL = env("LOCAL_LLM_URL", default="http://127.0.0.1:8081/v1")
# The OpenAI provider that `bootstrap --openai` registers (inference/openai_setup.py).
OPENAI_BASE_URL = env("OPENAI_BASE_URL", default="https://api.openai.com/v1")
# Providers are where the gateway sends provider keys (inference/models/providers.py): their
# "API key variable" must match this pattern, and their base URL must be https unless its
# host is listed here (the local LLM's host always is).
GATEWAY_PROVIDER_KEY_ENV_PATTERN = env("GATEWAY_PROVIDER_KEY_ENV_PATTERN", default=r"^[A-Z][A-Z0-9_]*_API_KEY$")
GATEWAY_PROVIDER_HTTP_HOSTS = [
    *env.list("GATEWAY_PROVIDER_HTTP_HOSTS", default=["127.0.0.1", "localhost", "::1"]),
    urlparse(LOCAL_LLM_URL).hostname,
]

# Experiments: threads per process that run shadow copies and guardrail checks off the
# request path, and how many may wait before new shadow copies are dropped rather than slow
# anything down (docs/decisions/0021-shadow-traffic.md).
EXPERIMENT_BACKGROUND_WORKERS = env.int("EXPERIMENT_BACKGROUND_WORKERS", default=1)
EXPERIMENT_BACKGROUND_QUEUE = env.int("EXPERIMENT_BACKGROUND_QUEUE", default=64)
# Each process checks a running experiment's guardrail at most this often.
EXPERIMENT_GUARDRAIL_INTERVAL_S = env.float("EXPERIMENT_GUARDRAIL_INTERVAL_S", default=10.0)

# --- Limits and budgets: defaults, Redis-down policy, rate limits, configuration snapshot ---

# Rate limits for keys whose key and team set none; 0 means no limit (gateway/limits/rate_limits.py).
# 100 requests a minute is the original service's limit; the tokens default is explained in
# docs/decisions/0044-limits-by-default.md.
GATEWAY_DEFAULT_LIMITS = {
    "requests_per_minute": env.int("GATEWAY_DEFAULT_REQUESTS_PER_MINUTE", default=100),
    "tokens_per_minute": env.int("GATEWAY_DEFAULT_TOKENS_PER_MINUTE", default=100_000),
}
# When Redis cannot be reached: serve without the check (open) or refuse with 503 (closed).
# Open by default: an outage of the counter store should not take the gateway down, and spend
# made meanwhile is still in the request log, from which budget counters are rebuilt.
GATEWAY_RATE_LIMITS_FAIL_OPEN = env.bool("GATEWAY_RATE_LIMITS_FAIL_OPEN", default=True)
GATEWAY_BUDGETS_FAIL_OPEN = env.bool("GATEWAY_BUDGETS_FAIL_OPEN", default=True)
# django-ratelimit counts on the default cache. Its app is not installed: its system check
# refuses the local-memory cache of the embedded mode, where counts are per process anyway.
RATELIMIT_USE_CACHE = "default"
# Where the cache answers nothing (rather than raising), follow the same policy.
RATELIMIT_FAIL_OPEN = GATEWAY_RATE_LIMITS_FAIL_OPEN
# Keys, versions, routing rules, fallbacks and experiments are kept per process between
# configuration changes (gateway/caching/snapshot.py); that needs the shared cache to say when.
GATEWAY_SNAPSHOT_ENABLED = env.bool("GATEWAY_SNAPSHOT_ENABLED", default=bool(REDIS_URL))
# A bound on staleness for changes made around the ORM (SQL, queryset .update()).
GATEWAY_SNAPSHOT_MAX_AGE_S = env.float("GATEWAY_SNAPSHOT_MAX_AGE_S", default=30.0)

# Abuse limits (README "Limits by default", docs/decisions/0044-0046). 0 turns a limit off.
# Requests a key may have in flight at once, unless its key or team sets its own.
GATEWAY_DEFAULT_LIMITS["max_in_flight"] = env.int("GATEWAY_DEFAULT_MAX_IN_FLIGHT", default=64)
# Per client address, before any database work: failed authentications, and all API requests.
GATEWAY_AUTH_FAILURES_PER_MINUTE_PER_ADDRESS = env.int("GATEWAY_AUTH_FAILURES_PER_MINUTE_PER_ADDRESS", default=60)
GATEWAY_REQUESTS_PER_MINUTE_PER_ADDRESS = env.int("GATEWAY_REQUESTS_PER_MINUTE_PER_ADDRESS", default=6000)
# A refused address's answers wait this long, on at most this many threads per process at once.
GATEWAY_REFUSAL_DELAY_S = env.float("GATEWAY_REFUSAL_DELAY_S", default=1.0)
GATEWAY_REFUSAL_DELAY_SLOTS = env.int("GATEWAY_REFUSAL_DELAY_SLOTS", default=64)
# With GATEWAY_TRUST_X_FORWARDED_FOR, X-Forwarded-For is read only from senders in these networks.
GATEWAY_TRUSTED_PROXIES = env.list(
    "GATEWAY_TRUSTED_PROXIES",
    default=["127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"],
)
# Total time for one upstream call (attempts, retries and fallbacks) and for one stream.
GATEWAY_UPSTREAM_DEADLINE_S = env.float("GATEWAY_UPSTREAM_DEADLINE_S", default=120.0)
GATEWAY_STREAM_DEADLINE_S = env.float("GATEWAY_STREAM_DEADLINE_S", default=300.0)
# Chat request bounds: messages per request, characters per message.
GATEWAY_CHAT_MAX_MESSAGES = env.int("GATEWAY_CHAT_MAX_MESSAGES", default=256)
GATEWAY_CHAT_MAX_MESSAGE_CHARS = env.int("GATEWAY_CHAT_MAX_MESSAGE_CHARS", default=65_536)
# JSON bodies nested deeper than this are a 400 (gateway/api/parsers.py).
GATEWAY_MAX_JSON_DEPTH = env.int("GATEWAY_MAX_JSON_DEPTH", default=32)

# --- Request log and observability: log rows, retention, /metrics, logging ---

# Paths whose every request leaves one RequestLog row.
GATEWAY_LOGGED_PATH_PREFIXES = ("/api/", "/v1/", "/predict", "/batch_predict", "/batch_result")
# Off only to measure what the log rows cost (make bench); metrics and the access log stay on.
GATEWAY_REQUEST_LOG_ENABLED = env.bool("GATEWAY_REQUEST_LOG_ENABLED", default=True)
# Rows gathered this long are written together by a writer thread per process; 0 writes each
# on its request's thread (gateway/record/log_writer.py).
GATEWAY_REQUEST_LOG_BUFFER_S = env.float("GATEWAY_REQUEST_LOG_BUFFER_S", default=0.05)
# Every log row is appended to a spool file on local disk before its answer leaves; rows the
# database cannot take yet wait there and are written, once each, when it answers again
# (docs/decisions/0070-durable-request-record.md). One subdirectory per database.
GATEWAY_REQUEST_SPOOL_DIR = env(
    "GATEWAY_REQUEST_SPOOL_DIR", default=os.path.join(tempfile.gettempdir(), "gateway-request-spool")
)
# Rows waiting for the database, in bytes across the directory; past it the spool is full.
GATEWAY_REQUEST_SPOOL_MAX_BYTES = env.int("GATEWAY_REQUEST_SPOOL_MAX_BYTES", default=1024 * 1_048_576)
# The spool is fsync'd at most this often (a killed process loses nothing; a lost machine this window).
GATEWAY_REQUEST_SPOOL_FSYNC_S = env.float("GATEWAY_REQUEST_SPOOL_FSYNC_S", default=1.0)
# Spool full: refuse billable requests with 503 (default: no unrecorded answer), or serve them
# with their rows in memory only (availability over the bill).
GATEWAY_REQUEST_SPOOL_FULL_SERVES = env.bool("GATEWAY_REQUEST_SPOOL_FULL_SERVES", default=False)
# Retry-After of a 503 whose cause sets none (the database or the spool unavailable, and the rest).
GATEWAY_UNAVAILABLE_RETRY_AFTER_S = env.int("GATEWAY_UNAVAILABLE_RETRY_AFTER_S", default=5)
# Raw input text is personal data: stored on the log row only when enabled.
GATEWAY_LOG_REQUEST_TEXT = env.bool("GATEWAY_LOG_REQUEST_TEXT", default=False)
# Take the client IP from X-Forwarded-For only behind a proxy that sets it.
GATEWAY_TRUST_X_FORWARDED_FOR = env.bool("GATEWAY_TRUST_X_FORWARDED_FOR", default=False)

# Raw RequestLog rows older than this are deleted once rolled up (0 keeps them forever);
# the rollups, a few rows per hour, are kept.
GATEWAY_REQUEST_LOG_RETENTION_DAYS = env.int("GATEWAY_REQUEST_LOG_RETENTION_DAYS", default=90)
# Rows per DELETE: each batch is its own short transaction, so pruning never holds long locks.
GATEWAY_REQUEST_LOG_PRUNE_BATCH = env.int("GATEWAY_REQUEST_LOG_PRUNE_BATCH", default=5000)
# With no scheduler running (the embedded default runs tasks eagerly), opening a dashboard
# refreshes the rollups first, at most once a minute.
GATEWAY_REFRESH_ROLLUPS_ON_VIEW = env.bool("GATEWAY_REFRESH_ROLLUPS_ON_VIEW", default=CELERY_TASK_ALWAYS_EAGER)

# Bearer token Prometheus must send to /metrics. Without one, /metrics is open on the embedded
# default and answers 401 to everyone elsewhere (`check --deploy` warns).
GATEWAY_METRICS_TOKEN = _secret("GATEWAY_METRICS_TOKEN")
# Values read at scrape time (queue depth, budget use) are read again at most this often per
# process, so frequent or concurrent scrapes do not each query the broker and the database.
GATEWAY_METRICS_READ_EVERY_S = env.float("GATEWAY_METRICS_READ_EVERY_S", default=5.0)
# Celery queues whose backlog /metrics reports as gateway_batch_queue_depth.
GATEWAY_METRICS_CELERY_QUEUES = env.list("GATEWAY_METRICS_CELERY_QUEUES", default=["celery", "maintenance"])

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "gateway.record.access_log.JsonFormatter"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler"},
        "json_console": {"class": "logging.StreamHandler", "formatter": "json"},
    },
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {
        # One JSON line per API request (gateway/record/access_log.py); GATEWAY_ACCESS_LOG=false silences it.
        "gateway.access": {
            "handlers": ["json_console"],
            "level": "INFO" if env.bool("GATEWAY_ACCESS_LOG", default=True) else "WARNING",
            "propagate": False,
        },
    },
}
