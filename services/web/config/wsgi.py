"""WSGI entry point (``gunicorn config.wsgi``).

It exposes ``application`` at module level, which is what WSGI servers look for.
"""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

application = get_wsgi_application()
