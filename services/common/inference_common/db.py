"""Database engines for the non-Django services, from ``DATABASE_URL``."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Insert

from .schema import metadata


def sqlalchemy_url(url: str) -> str:
    """Translate a Django-style ``DATABASE_URL`` into a SQLAlchemy URL (psycopg 3)."""
    for scheme in ("postgres://", "postgresql://", "pgsql://"):
        if url.startswith(scheme):
            return "postgresql+psycopg://" + url[len(scheme) :]
    if url.startswith("sqlite:"):
        return url
    if url.startswith("postgresql+psycopg://"):
        return url
    raise ValueError(f"unsupported DATABASE_URL scheme: {url.split(':', 1)[0]!r}")


def make_engine(url: str, *, pool_size: int = 5) -> Engine:
    """Create an engine with settings that suit short request-path queries.

    ``pool_pre_ping`` turns a connection dropped by a database restart into a
    reconnect instead of an error on the next request.
    """
    sa_url = sqlalchemy_url(url)
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if sa_url.startswith("postgresql"):
        kwargs.update(pool_size=pool_size, max_overflow=pool_size, pool_recycle=1800)
        kwargs["connect_args"] = {"connect_timeout": 5}
    engine = create_engine(sa_url, **kwargs)
    if sa_url.startswith("sqlite"):
        _tune_sqlite(engine)
    return engine


def _tune_sqlite(engine: Engine) -> None:
    # WAL lets the api read while the worker writes; busy_timeout makes
    # concurrent writers wait instead of failing with "database is locked".
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()


def insert_ignoring_duplicates(engine: Engine, table_name: str) -> Insert:
    """An INSERT that skips rows whose unique key exists (idempotent redelivery)."""
    table = metadata.tables[table_name]
    if engine.dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    if engine.dialect.name == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing()
    raise ValueError(f"unsupported database dialect {engine.dialect.name!r}")
