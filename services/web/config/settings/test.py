"""Settings for the test suite (``pytest`` in services/web)."""

from __future__ import annotations

import os

from config.database import database_config
from inference_common.settings import env_secret

from .base import *

# GENERAL
# ------------------------------------------------------------------------------
DEBUG = False
SECRET_KEY = env_secret(
    "DJANGO_SECRET_KEY",
    "test-insecure-Wd2Pk8Nx5Rb1Qm7Hs4Lv0Tc6Jz3Fg9Ya2Ue5Ko8Vi1Nr4Ts7",
)
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]

# DATABASES
# ------------------------------------------------------------------------------
# PostgreSQL when DATABASE_URL is set (as in CI), else an in-memory SQLite.
# Connections are not kept between tests so each test sees a fresh one.
DATABASES = {"default": database_config(env_secret("DATABASE_URL", "sqlite://:memory:"), conn_max_age=0)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # The process id keeps concurrent runs on one server (two checkouts, CI
    # jobs on a shared host) from creating and dropping each other's test
    # database; pytest-xdist adds its own _gwN suffix on top.
    DATABASES["default"]["TEST"] = {"NAME": f"test_{DATABASES['default']['NAME']}_{os.getpid()}"}

# PASSWORDS
# ------------------------------------------------------------------------------
# A fast hasher: the tests create users, and the default one is slow on purpose.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# EMAIL
# ------------------------------------------------------------------------------
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"

# STATIC
# ------------------------------------------------------------------------------
# Serve app static files straight from the apps, as under DEBUG: the tests
# run without collectstatic.
WHITENOISE_AUTOREFRESH = True
WHITENOISE_USE_FINDERS = True
