"""Settings for a developer machine and the embedded local stack (``make up``/``make demo``)."""

from __future__ import annotations

from config.database import sqlite_file
from inference_common.settings import env_bool, env_secret

from .base import *
from .base import DATABASES, INSTALLED_APPS

# GENERAL
# ------------------------------------------------------------------------------
DEBUG = env_bool("DJANGO_DEBUG", True)
# A fixed development key: fine on a laptop, refused by production settings.
SECRET_KEY = env_secret(
    "DJANGO_SECRET_KEY",
    "local-insecure-Zq3v8Rk1sWm5Xn0Pb7Lt2Yc9Hd4Jf6Ga1Ue8Ko3Vi5Nr7Ts0",
)

# DATABASES
# ------------------------------------------------------------------------------
# The embedded default is a SQLite file under var/; create its directory so a
# fresh checkout can run ``migrate`` straight away.
_sqlite_path = sqlite_file(DATABASES["default"])
if _sqlite_path is not None:
    _sqlite_path.parent.mkdir(parents=True, exist_ok=True)

# APPS
# ------------------------------------------------------------------------------
# Serve static files through WhiteNoise under runserver too, as in production.
INSTALLED_APPS = ["whitenoise.runserver_nostatic", *INSTALLED_APPS]
