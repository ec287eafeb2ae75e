"""Switchboard settings. Every value comes from the environment (see .env.example).

With nothing set, development defaults work on a machine of this project (PostgreSQL and
Redis on loopback). With DEBUG off (production), the secrets must be given or we refuse to start.
"""

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# A .env file is optional (development needs none): read it only when there is one, so
# django-environ does not log ".env not found" on every start.
if (BASE_DIR / ".env").is_file():
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=True)

_DEV_SECRET_KEY = "dev-only-insecure-secret-key-change-me-0123456789abcdef"
_DEV_ENCRYPTION_KEY = "dev-only-field-encryption-key"

SECRET_KEY = env.str("SECRET_KEY", default=_DEV_SECRET_KEY if DEBUG else "")
SECRET_KEY_FALLBACKS = env.list("SECRET_KEY_FALLBACKS", default=[])
# Key(s) for secrets stored in the database (django-fernet-encrypted-fields' SALT_KEY).
# The first encrypts; every key decrypts, so a new key goes first to rotate.
FIELD_ENCRYPTION_KEYS = env.list(
    "FIELD_ENCRYPTION_KEYS", default=[_DEV_ENCRYPTION_KEY] if DEBUG else []
)
if not DEBUG:
    missing = [
        name
        for name, value in (
            ("SECRET_KEY", SECRET_KEY),
            ("FIELD_ENCRYPTION_KEYS", FIELD_ENCRYPTION_KEYS),
        )
        if not value
        or value in (_DEV_SECRET_KEY, [_DEV_ENCRYPTION_KEY])
        or "change-me" in str(value)
    ]
    if missing:
        raise ImproperlyConfigured(
            f"Production mode (DEBUG=False) needs real values in these environment variables: {', '.join(missing)}"
        )
SALT_KEY = FIELD_ENCRYPTION_KEYS

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "phonenumber_field",
    "axes",
    "accounts",
    "crm",
    "messaging",
    "channels_integrations",
    "webhook_inbox",
    "deals",
    "reports",
    "inbox_search",
    "canned",
    "notifications",
    "teams",
    "triage",
    "exports",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "accounts.middleware.UserLanguage",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_permissions_policy.PermissionsPolicyMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "crm.middleware.RefuseNulCharacters",
    "axes.middleware.AxesMiddleware",  # last: it answers locked-out log-ins
]
# Log-in throttling (django-axes): after LOGIN_FAILURE_LIMIT wrong passwords for one account,
# or from one address, further attempts are refused for LOGIN_LOCKOUT_MINUTES, the right
# password included; every failure and lockout is logged. API tokens: see
# accounts.authentication (wrong tokens per address).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "accounts.backends.CompanyModelBackend",  # ModelBackend, the user's company joined
]
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = __import__("datetime").timedelta(
    minutes=env.int("LOGIN_LOCKOUT_MINUTES", default=15)
)
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]  # per account, and per address
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "accounts.views.locked_out"
AXES_VERBOSE = False  # no "AXES: BEGIN version ..." banner in every process
AXES_ENABLE_ADMIN = False  # lockouts are lifted with `manage.py axes_reset_username <name>`
API_TOKEN_FAILURES_PER_MINUTE = env.int("API_TOKEN_FAILURES_PER_MINUTE", default=20)

ROOT_URLCONF = "crm.urls"
ASGI_APPLICATION = "crm.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # The project's templates, then each channel folder's own (channels_integrations/*/templates).
        "DIRS": [
            BASE_DIR / "templates",
            *sorted(BASE_DIR.glob("channels_integrations/*/templates")),
        ],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "crm.context_processors.nav_section",
            ],
        },
    },
]

DATABASES = {
    "default": env.db("DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/switchboard")
}
# Our backend adds ON DELETE CASCADE / SET NULL to every foreign key it creates.
DATABASES["default"]["ENGINE"] = "crm.db"
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DB_CONN_MAX_AGE", default=0))
# A connection pool per process (psycopg_pool through Django's "pool" option), for the web
# processes: DB_POOL_MAX_SIZE > 0 turns it on (each in-flight request then borrows one of at
# most that many connections, waiting up to DB_POOL_TIMEOUT seconds, instead of opening its
# own). PostgreSQL sees at most (web processes x DB_POOL_MAX_SIZE) from the web tier.
if DB_POOL_MAX_SIZE := env.int("DB_POOL_MAX_SIZE", default=0):
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # the pool keeps them; Django must not
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": env.int("DB_POOL_MIN_SIZE", default=2),
        "max_size": DB_POOL_MAX_SIZE,
        "timeout": env.float("DB_POOL_TIMEOUT", default=10.0),
    }
# PostgreSQL's JIT compiles a query once its estimated cost passes jit_above_cost: 100-300 ms
# of compiling for our short queries (a search for a common word, saved views' counts), more
# than the query itself. Off for our connections unless DB_JIT=true (behind PgBouncer, which
# refuses the `options` startup parameter unless told to ignore it: DB_JIT=true, and
# `ALTER ROLE ... SET jit = off` instead).
if not env.bool("DB_JIT", default=False):
    _options = DATABASES["default"].setdefault("OPTIONS", {})
    _options["options"] = (_options.get("options", "") + " -c jit=off").strip()
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "switchboard",
    }
}

# Sessions: read from Redis, written to PostgreSQL and Redis (a cache miss falls back to
# PostgreSQL). A WebSocket handshake with a session cookie then costs one query (the user and
# the company, joined); a log-out deletes both copies, and the user row itself is always read
# fresh, so a new password or a deactivation is honoured at the next handshake.
# Threads per daphne process that look up who opens a WebSocket (a reconnect storm's handshakes
# read the database side by side instead of in channels' one ORM thread). With the pool on,
# below DB_POOL_MAX_SIZE (channels' ORM thread and presence need a connection now and then).
WS_AUTH_THREADS = env.int(
    "WS_AUTH_THREADS", default=max(1, min(4, DB_POOL_MAX_SIZE - 1)) if DB_POOL_MAX_SIZE else 4
)
# Threads per web process that answer pages and API (crm.asgi): requests beyond them wait in
# the process's queue. Each holds a PostgreSQL connection while it answers, so keep it at or
# below DB_POOL_MAX_SIZE; more threads mostly contend for the GIL (bench/api_load.py).
WEB_THREADS = env.int("WEB_THREADS", default=4)
SESSION_ENGINE = env.str("SESSION_ENGINE", default="django.contrib.sessions.backends.cached_db")

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [REDIS_URL], "prefix": "switchboard:channels"},
    }
}

# The Redis pub/sub channel realtime events travel on (messaging/realtime.py).
REALTIME_CHANNEL = env.str("REALTIME_CHANNEL", default="switchboard:events")

CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL)
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = "UTC"
# Tasks that send are acknowledged after they run (they are idempotent through their claims),
# so a task lost with its worker is redelivered; one task reserved per process at a time.
# Redis redelivers a task not acknowledged within the visibility timeout: it must exceed every
# countdown we schedule (at most 60 s; longer waits are the sweeper's) and the longest task.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=900)
}
# Objects a worker process allocates before Python's collector looks at its youngest ones
# (Python's default: 700). A webhook batch keeps thousands alive until its commit; at 700 they
# were promoted and set off full collections of the whole heap (~200,000 objects of Django and
# our apps, ~130 ms each): a fifth of the drain's time (bench/webhooks.py, README).
WORKER_GC_THRESHOLD = env.int("WORKER_GC_THRESHOLD", default=10_000)
# The same for the server processes (crm.asgi): a busy web process's young collections, each
# walking the objects of every request waiting for its group's commit, took 4.6% of its samples
# at 700 (bench/webhooks.py, README).
SERVER_GC_THRESHOLD = env.int("SERVER_GC_THRESHOLD", default=10_000)
# Sending (messaging.sending, one policy for every path): attempts before a transient refusal
# fails the send; a claim older than this with no outcome is settled by the sweeper (from the
# record of the send, else "unknown": never re-sent automatically) — keep it above the longest
# channel timeout. A queued message no task took for OUTBOX_REQUEUE_SECONDS is queued again;
# the sweeper runs every OUTBOX_SWEEP_SECONDS.
SEND_MAX_ATTEMPTS = env.int("SEND_MAX_ATTEMPTS", default=5)
SEND_CLAIM_STALE_SECONDS = env.float("SEND_CLAIM_STALE_SECONDS", default=120.0)
OUTBOX_REQUEUE_SECONDS = env.float("OUTBOX_REQUEUE_SECONDS", default=30.0)
OUTBOX_SWEEP_SECONDS = env.float("OUTBOX_SWEEP_SECONDS", default=15.0)
# Long-lived connections: beat's supervisor period; a holder renews its lease every third of
# CONNECTION_LEASE_SECONDS (a dead holder's lease lapses after it) and writes a heartbeat every
# CONNECTION_HEARTBEAT_SECONDS (older than ..._MAX_AGE: unhealthy). Reconnects back off from
# BASE doubling to CAP seconds (with jitter); after MAX attempts the connection waits for an
# admin.
CONNECTION_SUPERVISOR_SECONDS = env.float("CONNECTION_SUPERVISOR_SECONDS", default=30.0)
CONNECTION_LEASE_SECONDS = env.float("CONNECTION_LEASE_SECONDS", default=45.0)
CONNECTION_HEARTBEAT_SECONDS = env.float("CONNECTION_HEARTBEAT_SECONDS", default=10.0)
CONNECTION_HEARTBEAT_MAX_AGE = env.float("CONNECTION_HEARTBEAT_MAX_AGE", default=90.0)
CONNECTION_BACKOFF_BASE = env.float("CONNECTION_BACKOFF_BASE", default=1.0)
CONNECTION_BACKOFF_CAP = env.float("CONNECTION_BACKOFF_CAP", default=300.0)
CONNECTION_MAX_RECONNECT_ATTEMPTS = env.int("CONNECTION_MAX_RECONNECT_ATTEMPTS", default=10)
# The webhook inbox (webhook_inbox/): deliveries per batch (one transaction), attempts before a
# failing delivery is parked, the first retry's wait (doubling), how long one drain task works
# before handing over, and beat's sweep (for a drain that could not be queued).
WEBHOOK_INBOX_BATCH = env.int("WEBHOOK_INBOX_BATCH", default=200)
WEBHOOK_INBOX_MAX_ATTEMPTS = env.int("WEBHOOK_INBOX_MAX_ATTEMPTS", default=5)
WEBHOOK_INBOX_RETRY_SECONDS = env.float("WEBHOOK_INBOX_RETRY_SECONDS", default=2.0)
WEBHOOK_INBOX_DRAIN_SECONDS = env.float("WEBHOOK_INBOX_DRAIN_SECONDS", default=20.0)
WEBHOOK_INBOX_SWEEP_SECONDS = env.float("WEBHOOK_INBOX_SWEEP_SECONDS", default=5.0)
# Connection hosts (manage.py connection_host; channels_integrations.fleet): each holds up to
# CONNECTION_HOST_CAPACITY connections on one event loop and beats every TTL/5 seconds; a host
# silent for CONNECTION_HOST_TTL is dead and its connections move. False: the older Celery
# `connections` queue (one thread per connection).
CONNECTION_HOSTS = env.bool("CONNECTION_HOSTS", default=True)
CONNECTION_HOST_CAPACITY = env.int("CONNECTION_HOST_CAPACITY", default=1000)
# Hosts watch each other's heartbeats and run the supervisor as soon as one dies (its
# connections move within CONNECTION_HOST_TTL instead of at beat's next period).
CONNECTION_HOST_WATCH_PEERS = env.bool("CONNECTION_HOST_WATCH_PEERS", default=True)
# Rebalancing (a new host joins while another is much fuller): connections move only while
# the fullest host's share of its capacity exceeds the emptiest's by more than this, at most
# CONNECTION_REBALANCE_MAX per supervisor run (each through the fenced lease).
CONNECTION_REBALANCE_THRESHOLD = env.float("CONNECTION_REBALANCE_THRESHOLD", default=0.25)
CONNECTION_REBALANCE_MAX = env.int("CONNECTION_REBALANCE_MAX", default=50)
CONNECTION_HOST_TTL = env.float("CONNECTION_HOST_TTL", default=10.0)
CONNECTION_HOST_DB_THREADS = env.int("CONNECTION_HOST_DB_THREADS", default=8)
# Threads where neonize's connect() and IMAP IDLE block, one per QR session or IDLE mailbox
# held (created as needed): keep it at least the host's share of those.
CONNECTION_HOST_IDLE_THREADS = env.int("CONNECTION_HOST_IDLE_THREADS", default=1000)
CONNECTION_HOST_CONN_MAX_AGE = env.int("CONNECTION_HOST_CONN_MAX_AGE", default=300)
# The webhook fast path (webhook_inbox/asgi.py; WhatsApp Cloud, Messenger, Instagram): how
# long a target's secret and state are cached there, how long a request waits for others to
# share its commit (group commit; 0: the requests of one event-loop turn, plus all that arrive
# while the previous commit runs), and how many group INSERTs run at once per process (each
# flusher holds one PostgreSQL connection).
WEBHOOK_FAST_PATH_GROUP_SECONDS = env.float("WEBHOOK_FAST_PATH_GROUP_SECONDS", default=0.0)
WEBHOOK_FAST_PATH_FLUSHERS = env.int("WEBHOOK_FAST_PATH_FLUSHERS", default=1)
WEBHOOK_FAST_PATH_CACHE_SECONDS = env.float("WEBHOOK_FAST_PATH_CACHE_SECONDS", default=30.0)
# Exports (exports/): an archive of a number's, account's or client's conversations is kept
# EXPORT_KEEP_DAYS after it is built (then beat deletes the file); a build writes its progress
# (its heartbeat) every EXPORT_PROGRESS_BATCH conversations or EXPORT_HEARTBEAT_SECONDS, and one
# silent for EXPORT_STALE_SECONDS lost its worker: beat's sweep fails it in words. Builds go to
# EXPORT_QUEUE (empty: the default queue; name one to give exports a worker of their own).
EXPORT_KEEP_DAYS = env.int("EXPORT_KEEP_DAYS", default=7)
EXPORT_PROGRESS_BATCH = env.int("EXPORT_PROGRESS_BATCH", default=50)
EXPORT_HEARTBEAT_SECONDS = env.float("EXPORT_HEARTBEAT_SECONDS", default=5.0)
EXPORT_STALE_SECONDS = env.float("EXPORT_STALE_SECONDS", default=120.0)
EXPORT_QUEUE = env.str("EXPORT_QUEUE", default="")
CELERY_BEAT_SCHEDULE = {
    "drain-webhook-inbox": {
        "task": "webhook_inbox.tasks.drain_inbox",
        "schedule": WEBHOOK_INBOX_SWEEP_SECONDS,
        "options": {"expires": WEBHOOK_INBOX_SWEEP_SECONDS * 0.9},
    },
    "heartbeat": {"task": "crm.tasks.beat_heartbeat", "schedule": 30.0},
    # The outbox: re-queues sends whose task vanished, settles stale claims.
    "sweep-outbox": {
        "task": "messaging.tasks.sweep_outbox",
        "schedule": OUTBOX_SWEEP_SECONDS,
        "options": {"expires": OUTBOX_SWEEP_SECONDS * 0.9},
    },
    # Inbound files whose download task vanished are queued again.
    "sweep-downloads": {
        "task": "messaging.tasks.sweep_downloads",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    # Exports: stale builds failed, lost ones queued again, expired archives deleted.
    "sweep-exports": {
        "task": "exports.tasks.sweep_exports",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    # Snoozed conversations whose time has come are open again.
    "wake-snoozed-conversations": {
        "task": "messaging.tasks.wake_snoozed_conversations",
        "schedule": 30.0,
        "options": {"expires": 25},
    },
    # Starts due scheduled broadcasts and (re)kicks sending ones; expires so a backlog
    # piled up while no worker ran is dropped instead of replayed.
    "dispatch-broadcasts": {
        "task": "channels_integrations.whatsapp.tasks.dispatch_broadcasts",
        "schedule": 5.0,
        "options": {"expires": 10},
    },
    # Reads the message templates of every active WhatsApp Cloud number (Meta approves and
    # pauses them on its side); admins can also sync one number on demand.
    "sync-whatsapp-templates": {
        "task": "channels_integrations.whatsapp.tasks.sync_whatsapp_templates",
        "schedule": 24 * 3600.0,
        "options": {"expires": 3600},
    },
    # Polls every active email account that is due (each at its own interval).
    "dispatch-email-polls": {
        "task": "channels_integrations.email.tasks.dispatch_email_polls",
        "schedule": 10.0,
        "options": {"expires": 9},
    },
    # Starts missing WhatsApp sessions and Telegram listeners, health-checks live ones,
    # restarts dead ones.
    "supervise-connections": {
        "task": "channels_integrations.tasks.supervise_connections",
        "schedule": CONNECTION_SUPERVISOR_SECONDS,
        "options": {"expires": CONNECTION_SUPERVISOR_SECONDS * 0.9},
    },
}
# Long-lived connections (WhatsApp sessions, Telegram listeners) run on a queue of their own,
# served by a worker sized for them (threads: a connection mostly waits), so they never
# starve sending.
CELERY_TASK_ROUTES = {
    # The outbox sweeper has a queue of its own (the sending worker serves both), so a sweep
    # never waits behind a backlog of sends, nor expires there.
    "messaging.tasks.sweep_outbox": {"queue": "outbox"},
    "channels_integrations.whatsapp.tasks.run_whatsapp_session": {"queue": "connections"},
    "channels_integrations.telegram.tasks.run_telegram_listener": {"queue": "connections"},
    "channels_integrations.email.tasks.run_email_idle": {"queue": "connections"},
}
# Broadcast pacing: at most this many messages per WhatsApp number in any 60 seconds.
BROADCAST_RATE_PER_MINUTE = env.int("BROADCAST_RATE_PER_MINUTE", default=30)
# A recipient claimed this long ago without an outcome is `unknown` (never retried).
BROADCAST_LEASE_SECONDS = env.int("BROADCAST_LEASE_SECONDS", default=30)
# Loop guard: at most N bot replies per conversation per S seconds ("N,S").
BOT_REPLY_LIMIT = tuple(env.list("BOT_REPLY_LIMIT", cast=int, default=[5, 60]))
# IMAP/SMTP hosts that admins configure may be private or local addresses (development and the
# tests run the mail servers on loopback); off in production (channels_integrations.outbound).
OUTBOUND_ALLOW_PRIVATE = env.bool("OUTBOUND_ALLOW_PRIVATE", default=DEBUG)
# A bot rule's pattern gets this long per inbound message (the `regex` module's timeout); one
# that runs out counts as no match. Patterns that backtrack for long are refused on save.
BOT_REGEX_TIMEOUT_SECONDS = env.float("BOT_REGEX_TIMEOUT_SECONDS", default=0.05)
BOT_COMPANIES_CACHE_SECONDS = env.int("BOT_COMPANIES_CACHE_SECONDS", default=10)

# WhatsApp: the Cloud API's Graph endpoint, and QR-linked sessions (neonize).
WHATSAPP_GRAPH_URL = env.str("WHATSAPP_GRAPH_URL", default="https://graph.facebook.com/v21.0")
WHATSAPP_GRAPH_TIMEOUT = env.float("WHATSAPP_GRAPH_TIMEOUT", default=10.0)
# Sends per company per minute through the API (429 with Retry-After beyond).
WHATSAPP_SEND_RATE_PER_MINUTE = env.int("WHATSAPP_SEND_RATE_PER_MINUTE", default=30)
# QR codes shown per pairing attempt before the session stops as `qr_timeout`.
WHATSAPP_QR_MAX = env.int("WHATSAPP_QR_MAX", default=6)
WHATSAPP_WEB_ADAPTER = env.str(
    "WHATSAPP_WEB_ADAPTER", default="channels_integrations.whatsapp.web.NeonizeAdapter"
)
# Where neonize keeps device keys (its whatsmeow_* tables): our own database by default.
WHATSAPP_STORE_URL = env.str("WHATSAPP_STORE_URL", default="")
# Telegram: how clients are built (tests swap it), and how long to wait for Telegram.
TELEGRAM_CLIENT_FACTORY = env.str(
    "TELEGRAM_CLIENT_FACTORY", default="channels_integrations.telegram.client.telethon_client"
)
TELEGRAM_CONNECT_TIMEOUT = env.float("TELEGRAM_CONNECT_TIMEOUT", default=15.0)
TELEGRAM_SEND_TIMEOUT = env.float("TELEGRAM_SEND_TIMEOUT", default=20.0)
# Email: IMAP/SMTP timeouts (seconds), and how long one poll may hold its account's lock.
EMAIL_IMAP_TIMEOUT = env.float("EMAIL_IMAP_TIMEOUT", default=30.0)
EMAIL_SMTP_TIMEOUT = env.float("EMAIL_SMTP_TIMEOUT", default=30.0)
EMAIL_POLL_LOCK_SECONDS = env.int("EMAIL_POLL_LOCK_SECONDS", default=600)
# /metrics answers only with this bearer token. With DEBUG off it is required (unset: /metrics
# refuses everyone); with DEBUG on and unset, /metrics is open.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")

# A WhatsApp number carrying more rows than this is deleted by a worker, not in the request.
NUMBER_DELETE_SYNC_LIMIT = env.int("NUMBER_DELETE_SYNC_LIMIT", default=50_000)
# Production: nginx sends attachment files (X-Accel-Redirect to its internal location) after
# Django checked who asks; development: Django streams them.
SERVE_MEDIA_WITH_NGINX = env.bool("SERVE_MEDIA_WITH_NGINX", default=not DEBUG)
PROTECTED_MEDIA_URL = "/protected-media/"
# Attachments up to this size are stored; larger ones are recorded (name, type, size) only.
ATTACHMENT_MAX_BYTES = env.int("ATTACHMENT_MAX_BYTES", default=25 * 1024 * 1024)
# The largest mail our SMTP servers take (their SIZE); the files of an email reply fit in it.
EMAIL_MAX_MESSAGE_BYTES = env.int("EMAIL_MAX_MESSAGE_BYTES", default=25 * 1024 * 1024)

# Mail to people (invitations, password resets): Django's email backend.
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Switchboard <noreply@localhost>")
# Invitation links work this long; presence (a socket's heartbeat) lasts this long unrenewed.
INVITATION_DAYS = env.int("INVITATION_DAYS", default=7)
PRESENCE_TTL_SECONDS = env.int("PRESENCE_TTL_SECONDS", default=75)

AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["accounts.permissions.IsCompanyMember"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "crm.pagination.DefaultCursorPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "crm.api.base.exception_handler",
    "DEFAULT_PARSER_CLASSES": [
        # JSON only (with a depth limit): one body type per operation, so generated clients
        # have one way to call each; an endpoint that takes files declares its own parser.
        "crm.api.parsers.JSONParser",
    ],
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    # DRF's JSON, encoded by orjson (crm.api.renderers); the browsable API as before.
    "DEFAULT_RENDERER_CLASSES": [
        "crm.api.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Switchboard API",
    "DESCRIPTION": "Multi-tenant omnichannel CRM",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Separate request and response components (ClientRequest / Client), so generated
    # clients never ask for read-only fields such as id when creating.
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI from drf-spectacular-sidecar's static files: nothing from a CDN, and no
    # inline script (SpectacularSwaggerSplitView), so /api/docs/ passes the CSP below.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "crm.api.schema.add_error_responses",
    ],
    "ENUM_NAME_OVERRIDES": {
        "NotificationKindEnum": "notifications.models.Kind",
        "DealStatusEnum": "deals.models.Deal.Status",
    },
}

# Content-Security-Policy (django-csp): scripts and styles from our own static files only, no
# inline script, no inline style attribute, nothing from another origin; the socket is
# same-origin ('self' covers ws:/wss: to this host). Pages that need more (the sandboxed
# email frame) set their own policy with csp.decorators.
from csp.constants import NONE, SELF  # noqa: E402

CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "frame-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}
# Permissions-Policy (django-permissions-policy): no page of ours uses these features.
PERMISSIONS_POLICY = {
    feature: []
    for feature in (
        "accelerometer",
        "autoplay",
        "camera",
        "display-capture",
        "encrypted-media",
        "fullscreen",
        "geolocation",
        "gyroscope",
        "magnetometer",
        "microphone",
        "midi",
        "payment",
        "publickey-credentials-get",
        "screen-wake-lock",
        "usb",
        "xr-spatial-tracking",
    )
}

PHONENUMBER_DEFAULT_FORMAT = "E164"
PHONENUMBER_DB_FORMAT = "E164"

LANGUAGE_CODE = "en"
# The languages of the interface (README "Languages"): the browser's choice, or the user's own
# (profile page); catalogues in locale/ (`make messages`).
LANGUAGES = [("en", "English"), ("ru", "Русский"), ("uk", "Українська")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "staticfiles")
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_URL = "/media/"
MEDIA_ROOT = env.path("MEDIA_ROOT", default=BASE_DIR / "media")

# Production hardening (all on when DEBUG is off; each overridable).
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
USE_X_FORWARDED_HOST = env.bool("USE_X_FORWARDED_HOST", default=False)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SECURE_REDIRECT_EXEMPT = [r"^health$"]

# `make run`'s demo logins: generated once, kept here (var/ is git-ignored), printed each run.
DEMO_LOGINS_FILE = env.path("DEMO_LOGINS_FILE", default=BASE_DIR / "var" / "demo-logins.txt")

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "line": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "line"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "daphne": {"level": "WARNING"},
        # Start-up banners, not steps: "AXES: BEGIN ...", "libssl detected".
        "axes": {"level": "WARNING"},
        "telethon": {"level": "WARNING"},
    },
}
