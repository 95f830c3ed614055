"""Settings, read from the environment (twelve-factor, django-environ).

Required in production: SECRET_KEY, DATABASE_URL, ALLOWED_HOSTS; REDIS_URL for Celery and the
shared cache. With DEBUG=1 and nothing else set, the app runs on an embedded SQLite database and
runs Celery tasks inline, which is what `make run` does.
"""

import datetime as dt
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set unless DEBUG=1.")
    SECRET_KEY = "insecure-development-key-never-use-in-production"  # noqa: S105

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
CSRF_FAILURE_VIEW = "config.views.csrf_failure"  # JSON under /api/, the friendly page elsewhere

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "djmoney",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "simple_history",
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "outbox",
    "eligibility",
    "providers",
    "vouchers",
    "billing",
    "carevisits",
    "demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "config.middleware.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Django's session, CSRF, authentication and messages, skipped for a device's API requests
    # (config.middleware.is_device_api_request: each scan of a phone).
    "config.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "config.middleware.CsrfViewMiddleware",
    "config.middleware.AuthenticationMiddleware",
    "config.middleware.MessageMiddleware",
    # The second factor (config.second_factor): who gave it this session, and who still owes it.
    "django_otp.middleware.OTPMiddleware",
    "config.middleware.SecondFactorMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
    "config.middleware.FriendlyNotFoundMiddleware",
    "config.middleware.DatabaseUnavailableMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last: flags a locked-out sign-in (config.signin), whose view has already refused it.
    "axes.middleware.AxesMiddleware",
]

# Django looks for its CSRF middleware by name; ours is that class, skipped only for a device's
# token-signed API requests (config.middleware, tests/test_deploy_check.py checks it stays so).
SILENCED_SYSTEM_CHECKS = ["security.W003"]

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
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "config.views.account_context",
            ],
        },
    },
]

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Wait for a writer instead of failing at once: the dev server and a command may overlap.
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 20
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    # A kept connection is checked before a request reuses it: after a PostgreSQL restart the
    # first request of each worker reconnects instead of failing on the dead connection.
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# The scanner's hot statements are prepared once per database connection (config.orm). Behind a
# connection pooler in transaction mode (PgBouncer) set 0.
DATABASE_PREPARED_STATEMENTS = env.bool("DATABASE_PREPARED_STATEMENTS", default=True)

REDIS_URL = env("REDIS_URL", default="")
# Every Redis client (the cache, the rate limits, Celery's enqueueing) gives up within these: Redis
# is a helper, and a hung one must not hang a scan or a page.
REDIS_CONNECT_TIMEOUT = env.float("REDIS_CONNECT_TIMEOUT", default=0.3)
REDIS_TIMEOUT = env.float("REDIS_TIMEOUT", default=0.3)
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env("CACHE_KEY_PREFIX", default="homecare"),
            # Redis is a helper (rate limits, counters): a hung one must not hang a scan. Its
            # users fail open when a call fails, which these make happen within a fraction of a second.
            "OPTIONS": {"socket_connect_timeout": REDIS_CONNECT_TIMEOUT, "socket_timeout": REDIS_TIMEOUT},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# After a cache failure this process leaves the cache alone this many seconds (its users fail open
# at once instead of each waiting for a timeout), and logs a kind of failure once per interval.
REDIS_RETRY_SECONDS = env.float("REDIS_RETRY_SECONDS", default=5)
REDIS_LOG_INTERVAL_SECONDS = env.float("REDIS_LOG_INTERVAL_SECONDS", default=60)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# One lockout for the web, the admin and device sign-in, per username and per address
# (config.signin, django-axes; kept in the database, so it holds with Redis down).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("SIGN_IN_FAILURE_LIMIT", default=10)
AXES_COOLOFF_TIME = dt.timedelta(minutes=env.int("SIGN_IN_LOCKOUT_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "config.signin.client_address"
AXES_USERNAME_CALLABLE = "config.signin.username_of"
AXES_LOCKOUT_CALLABLE = "config.signin.lockout_response"
AXES_VERBOSE = False
# A second factor (TOTP, django-otp) for finance, bureau and superusers (config.second_factor).
OTP_TOTP_ISSUER = env("OTP_TOTP_ISSUER", default="居家养老服务券")
SECOND_FACTOR_SESSION_IDLE_HOURS = env.float("SECOND_FACTOR_SESSION_IDLE_HOURS", default=8)
# The demo's logins (make run) skip it, and only with DEBUG on.
SECOND_FACTOR_SKIP_USERNAMES = ["bureau", "finance", "finance2"] if DEBUG else []
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# zh-Hans first; English second. A month is a calendar month in Asia/Shanghai.
LANGUAGE_CODE = "zh-hans"
LANGUAGES = [("zh-hans", "简体中文"), ("en", "English")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "Asia/Shanghai"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # The settlement workbooks finance downloads (billing.SettlementExport). Web and workers must
    # share it: one machine's folder, a shared mount, or another storage backend.
    "exports": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": env("EXPORT_ROOT", default=str(BASE_DIR / "var" / "exports"))},
    },
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEBUG

# Money: CNY only, through django-money.
CURRENCIES = ("CNY",)
DEFAULT_CURRENCY = "CNY"

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
# Behind the TLS proxy (which must send X-Forwarded-Proto): redirect plain HTTP to HTTPS, and
# HSTS once the site is known to work over HTTPS (browsers remember it for SECURE_HSTS_SECONDS).
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if env.bool("SECURE_PROXY_SSL_HEADER", default=True) else None
)
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "providers.authentication.DeviceTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["config.parsers.BoundedJSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "config.api.exception_handler",
    # Behind the TLS proxy set NUM_PROXIES=1, so throttles key on the client's address and a
    # client cannot choose its own key with a forged X-Forwarded-For.
    "NUM_PROXIES": env.int("NUM_PROXIES", default=0),
    "DEFAULT_THROTTLE_RATES": {
        "auth_token": env("THROTTLE_AUTH_TOKEN", default="10/min"),
        "auth_username": env("THROTTLE_AUTH_USERNAME", default="10/min"),
        "scan": env("THROTTLE_SCAN", default="120/min"),
        # A phone's queue of services scanned offline, sent when it is back online: its own,
        # larger budget, so a flush is never refused (each still needs a genuine card).
        "scan_replay": env("THROTTLE_SCAN_REPLAY", default="1200/hour"),
        "void": env("THROTTLE_VOID", default="30/min"),
    },
}
# Services scanned offline are accepted this long after their time (never once the month is
# settled), and a phone's clock may run this far ahead of the server's.
SCAN_OFFLINE_GRACE_HOURS = env.int("SCAN_OFFLINE_GRACE_HOURS", default=72)
SCAN_CLOCK_SKEW_SECONDS = env.int("SCAN_CLOCK_SKEW_SECONDS", default=300)
# Request bodies of the API: larger or more deeply nested JSON is refused before it is parsed.
API_MAX_BODY_BYTES = env.int("API_MAX_BODY_BYTES", default=64 * 1024)
API_MAX_JSON_DEPTH = env.int("API_MAX_JSON_DEPTH", default=6)
SPECTACULAR_SETTINGS = {
    "TITLE": "居家养老服务券 API / Home-care voucher API",
    "DESCRIPTION": "Scanner and integration API. Errors are JSON {code, detail}.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Served from the app itself (sidecar): government intranets have no internet.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# Celery. Without a broker (make run) tasks run inline, in the caller's process.
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = REDIS_URL or "cache+memory://"
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=not REDIS_URL)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TIMEZONE = TIME_ZONE
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_DEFAULT_QUEUE = env("CELERY_QUEUE", default="homecare")
# Workers log through LOGGING below, so their tracebacks are redacted like the web's.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# The senior's page is PUBLIC_BASE_URL/v/<token>/; its QR code encodes that URL.
PUBLIC_BASE_URL = env("PUBLIC_BASE_URL", default="http://127.0.0.1:8000")
# The printed voucher cards embed this Chinese TrueType font (the first face of a .ttc): Debian's
# fonts-wqy-microhei by default.
CARD_FONT_PATH = env("CARD_FONT_PATH", default="/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")
# Voucher QR tokens are Ed25519-signed (vouchers/tokens.py). The private key: PEM (PKCS #8) or
# base64 of its raw 32 bytes, in VOUCHER_SIGNING_KEY or in the file VOUCHER_SIGNING_KEY_FILE;
# required unless DEBUG=1. Its id (1-255) is printed in every token. After a rotation, the
# previous keys' cards stay valid: VOUCHER_PREVIOUS_KEYS="1:<public key, base64url>:2027-01-31,...".
VOUCHER_SIGNING_KEY = env("VOUCHER_SIGNING_KEY", default="")
VOUCHER_SIGNING_KEY_FILE = env("VOUCHER_SIGNING_KEY_FILE", default="")
VOUCHER_SIGNING_KEY_ID = env.int("VOUCHER_SIGNING_KEY_ID", default=1)
VOUCHER_PREVIOUS_KEYS = env.list("VOUCHER_PREVIOUS_KEYS", default=[])
# The last month whose vouchers still accept the earlier HMAC codes (the cards printed before the
# switch to Ed25519, in this release's month); later vouchers refuse them. Empty: none at all.
VOUCHER_LEGACY_CODES_UNTIL = env("VOUCHER_LEGACY_CODES_UNTIL", default="2026-12")
if not DEBUG and not (VOUCHER_SIGNING_KEY or VOUCHER_SIGNING_KEY_FILE):
    raise ImproperlyConfigured("VOUCHER_SIGNING_KEY or VOUCHER_SIGNING_KEY_FILE must be set unless DEBUG=1.")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact_id_cards": {"()": "config.logging.RedactIdCardNumbers"}},
    "formatters": {
        "plain": {
            "()": "config.logging.RedactingFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s",
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "filters": ["redact_id_cards"],
            "formatter": "plain",
        },
    },
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.db.backends": {"level": "INFO", "handlers": ["console"], "propagate": False},
        # runserver's request lines carry query strings (an admin search by ID number): filter them too.
        "django.server": {"level": "INFO", "handlers": ["console"], "propagate": False},
    },
}

# Settlement: a statement is due for payment this many days after its approval.
STATEMENT_PAYMENT_DAYS = env.int("STATEMENT_PAYMENT_DAYS", default=30)

# The bureau's name in the title of the settlement workbook.
SETTLEMENT_BUREAU_NAME = env("SETTLEMENT_BUREAU_NAME", default="民政局")
# A workbook of up to this many services is written in the request; a larger one by a worker.
EXPORT_INLINE_ROWS = env.int("EXPORT_INLINE_ROWS", default=20_000)
