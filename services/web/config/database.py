"""Turn a ``DATABASE_URL`` into Django's ``DATABASES["default"]``.

Kept out of the settings modules so base and test settings build the
connection the same way from different URLs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dj_database_url


def database_config(url: str, *, conn_max_age: int, health_checks: bool = True) -> dict[str, Any]:
    """Parse ``url`` (postgres:// or sqlite:///) into a Django database dict.

    ``conn_max_age`` keeps connections open across requests; ``health_checks``
    makes Django test a persistent connection before reusing it, so a database
    restart costs one reconnect instead of one failed request.
    """
    config: dict[str, Any] = dict(
        dj_database_url.parse(url, conn_max_age=conn_max_age, conn_health_checks=health_checks)
    )
    if config["ENGINE"] == "django.db.backends.sqlite3":
        # The api and worker write the same SQLite file in the embedded stack:
        # WAL lets readers proceed during a write, the timeout makes writers
        # wait for the lock, and IMMEDIATE takes the write lock when a
        # transaction starts instead of failing half-way through it.
        config["OPTIONS"] = {
            "init_command": "PRAGMA journal_mode=WAL;",
            "timeout": 10,
            "transaction_mode": "IMMEDIATE",
        }
    elif config["ENGINE"] == "django.db.backends.postgresql":
        # Fail fast when the server is unreachable instead of hanging a worker.
        config.setdefault("OPTIONS", {}).setdefault("connect_timeout", 5)
    return config


def sqlite_file(config: dict[str, Any]) -> Path | None:
    """The database file of a SQLite config, or None (PostgreSQL, in-memory)."""
    if config["ENGINE"] != "django.db.backends.sqlite3":
        return None
    name = str(config.get("NAME") or "")
    if not name or name == ":memory:" or name.startswith("file:"):
        return None
    return Path(name)
