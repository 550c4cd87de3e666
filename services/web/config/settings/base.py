"""Settings shared by every environment; the environment modules override a few.

Everything that differs between deployments comes from environment variables
read through ``inference_common.settings``, which refuses malformed values at
start-up and names the variable at fault.
"""

from __future__ import annotations

from pathlib import Path

from config.database import database_config
from config.security import DEFAULT_POLICY
from inference_common.logs import LEVELS, logging_config
from inference_common.settings import database_url, env_bool, env_choice, env_int, env_str, model_store

# services/web/
BASE_DIR = Path(__file__).resolve().parents[2]

# GENERAL
# ------------------------------------------------------------------------------
# https://docs.djangoproject.com/en/5.2/ref/settings/#debug
DEBUG = env_bool("DJANGO_DEBUG", False)
# Times are stored and compared in UTC; the api and worker write UTC too.
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en-us"
USE_I18N = True
USE_TZ = True
# https://docs.djangoproject.com/en/5.2/ref/settings/#allowed-hosts
ALLOWED_HOSTS = [
    host.strip()
    for host in env_str("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",")
    if host.strip()
]

# DATABASES
# ------------------------------------------------------------------------------
# https://docs.djangoproject.com/en/5.2/ref/settings/#databases
DATABASES = {
    "default": database_config(
        database_url(),
        conn_max_age=env_int("DJANGO_CONN_MAX_AGE", 60, minimum=0),
    )
}
# https://docs.djangoproject.com/en/5.2/ref/settings/#default-auto-field
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# URLS
# ------------------------------------------------------------------------------
ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

# APPS
# ------------------------------------------------------------------------------
DJANGO_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
]
THIRD_PARTY_APPS = [
    # Request, response and latency metrics (middleware below, /metrics in config.metrics).
    "django_prometheus",
]
LOCAL_APPS = [
    # First, so its base templates and login page take precedence.
    "accounts",
    "audit",
    "registry",
    "apikeys",
    "predictions",
    "jobs",
    "reviews",
    "responsecache",
    "training",
    "dashboard",
]
INSTALLED_APPS = DJANGO_APPS + THIRD_PARTY_APPS + LOCAL_APPS

# AUTHENTICATION
# ------------------------------------------------------------------------------
AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend"]
# Every page needs a login (LoginRequiredMiddleware) unless marked login_not_required.
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# PASSWORDS
# ------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# MIDDLEWARE
# ------------------------------------------------------------------------------
MIDDLEWARE = [
    # First, so that kubelet probes (Host: <pod ip>, plain http) are answered
    # before host validation and the HTTPS redirect could turn them away.
    "config.health.HealthCheckMiddleware",
    # Second, for the same reason: Prometheus scrapes the pod by IP over plain http.
    "config.metrics.MetricsMiddleware",
    # django-prometheus: "before" as early as possible and "after" last, so
    # the latency it measures covers the whole middleware stack.
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "config.security.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

# STATIC
# ------------------------------------------------------------------------------
# https://docs.djangoproject.com/en/5.2/ref/settings/#static-root
STATIC_ROOT = Path(env_str("DJANGO_STATIC_ROOT", str(BASE_DIR / "staticfiles")))
STATIC_URL = "/static/"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# TEMPLATES
# ------------------------------------------------------------------------------
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "accounts.context.navigation",
            ],
        },
    },
]

# SECURITY
# ------------------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
# Pages load scripts and styles only from our own static files (config/security.py).
CONTENT_SECURITY_POLICY = env_str("DJANGO_CSP", DEFAULT_POLICY)
CSRF_TRUSTED_ORIGINS = [
    origin.strip() for origin in env_str("DJANGO_CSRF_TRUSTED_ORIGINS", "").split(",") if origin.strip()
]

# UPLOADS
# ------------------------------------------------------------------------------
# Uploaded CSV files (training data, batch inputs). In a cluster this must be a
# volume every web and trainer pod mounts; by default it sits in the model store.
MEDIA_ROOT = Path(env_str("DJANGO_MEDIA_ROOT", str(model_store() / "uploads")))
MEDIA_URL = "/media/"
# Largest CSV accepted by the upload forms, in MiB.
UPLOAD_MAX_MB = env_int("WEB_UPLOAD_MAX_MB", 50, minimum=1)
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024

# PRODUCT
# ------------------------------------------------------------------------------
# Link from a prediction to its trace, e.g. http://jaeger:16686/trace/{trace_id}
# or a Grafana Explore URL; empty hides the link.
TRACE_UI_URL = env_str("TRACE_UI_URL", "")
# Rows per page in the audit log and the review queue.
PAGE_SIZE = env_int("WEB_PAGE_SIZE", 50, minimum=1)

# ADMIN
# ------------------------------------------------------------------------------
# Configurable so a public deployment can move the admin off the guessable default.
ADMIN_URL = env_str("DJANGO_ADMIN_URL", "admin/")

# LOGGING
# ------------------------------------------------------------------------------
# One JSON object per line on stdout, with the current trace and span id, in the
# format every tier shares (inference_common.logs); LOG_FORMAT=text for people.
# LOG_LEVEL sets the level; DJANGO_LOG_LEVEL is still read when LOG_LEVEL is unset.
LOGGING = logging_config(
    "web", level=env_choice("LOG_LEVEL", env_choice("DJANGO_LOG_LEVEL", "info", LEVELS), LEVELS)
)
