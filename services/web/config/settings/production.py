"""Settings for a deployment behind a TLS-terminating ingress or load balancer.

Nothing here has an insecure default: the secret key and the allowed hosts
must be provided, and ``manage.py check --deploy`` passes without warnings.
"""

from __future__ import annotations

from inference_common.settings import env_bool, env_int, env_secret, env_str

from .base import *

# GENERAL
# ------------------------------------------------------------------------------
# Required: a missing key stops the process at start rather than running with a guessable one.
SECRET_KEY = env_secret("DJANGO_SECRET_KEY")
ALLOWED_HOSTS = [host.strip() for host in env_str("DJANGO_ALLOWED_HOSTS").split(",") if host.strip()]

# SECURITY
# ------------------------------------------------------------------------------
# TLS ends at the ingress, which tells Django the original scheme in this header.
# Only safe because the ingress overwrites any X-Forwarded-Proto sent by clients.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
# Probes and Prometheus scrapes come over plain http from inside the cluster
# (the health and metrics middleware answer them first anyway; this keeps them
# exempt if either is ever moved).
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
# Secure cookies only travel over https. DJANGO_SECURE_COOKIES=false exists for
# test clusters reached over plain http (kind through a port-forward); never in production.
SECURE_COOKIES = env_bool("DJANGO_SECURE_COOKIES", True)
SESSION_COOKIE_SECURE = SECURE_COOKIES
SESSION_COOKIE_NAME = "__Secure-sessionid" if SECURE_COOKIES else "sessionid"
CSRF_COOKIE_SECURE = SECURE_COOKIES
CSRF_COOKIE_NAME = "__Secure-csrftoken" if SECURE_COOKIES else "csrftoken"
# https://docs.djangoproject.com/en/5.2/ref/middleware/#http-strict-transport-security
# Lower DJANGO_SECURE_HSTS_SECONDS (e.g. to 60) while first enabling TLS on a new host:
# browsers remember the policy for this long and will refuse plain http.
SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 31_536_000, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", True)
SECURE_CONTENT_TYPE_NOSNIFF = True

# STATIC
# ------------------------------------------------------------------------------
# Hashed, compressed files (built by ``collectstatic`` in the image) can be cached forever.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
