"""Database engines for the non-Django services, from ``DATABASE_URL``."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import orjson
from sqlalchemy import JSON, Connection, Engine, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import OperationalError
from sqlalchemy.sql.dml import Insert

from .schema import metadata

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Waits between attempts of a write while the database is briefly unreachable (four attempts).
DB_RETRY_DELAYS_S = (0.25, 0.5, 1.0)


def backoff(first_s: float, retries: int) -> tuple[float, ...]:
    """``retries`` waits, doubling from ``first_s``."""
    return tuple(first_s * 2**index for index in range(retries))


def with_db_retry(
    action: Callable[[], T], delays_s: Sequence[float] = DB_RETRY_DELAYS_S, what: str = "database write"
) -> T:
    """Run ``action``; while the database is unreachable (``OperationalError``: refused, dropped or
    timed-out connections), wait each of ``delays_s`` in turn and run it again.

    The last attempt's error is raised; any other error is raised at once (retrying a bug or a
    constraint violation cannot help). A dropped pooled connection is invalidated by SQLAlchemy,
    so the next attempt gets a fresh one.
    """
    for attempt, wait in enumerate((*delays_s, None), start=1):
        try:
            return action()
        except OperationalError as exc:
            if wait is None:
                raise
            logger.warning(
                "%s: database unavailable (%s), retrying in %.2fs (attempt %d)",
                what,
                str(exc.orig or exc).split("\n", 1)[0][:200],
                wait,
                attempt,
            )
            time.sleep(wait)
    raise AssertionError("unreachable")


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


def make_engine(url: str, *, pool_size: int = 5, pre_ping: bool = True) -> Engine:
    """Create an engine with settings that suit short request-path queries.

    ``pre_ping`` turns a connection dropped by a database restart into a
    reconnect instead of an error on the next request, for one extra round
    trip per checkout; writers that retry on ``OperationalError`` (a dropped
    connection is invalidated, the retry gets a fresh one) can do without.
    """
    sa_url = sqlalchemy_url(url)
    kwargs: dict[str, Any] = {"pool_pre_ping": pre_ping}
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


class PreparedInsert:
    """An idempotent multi-row INSERT compiled once, executed through the driver.

    SQLAlchemy cannot cache statements with ``ON CONFLICT DO NOTHING`` (they
    have no cache key), so building one per write recompiles it every time:
    on the worker's hot path that cost more than the database round trip.
    This compiles the statement once for a fixed column list and sends the
    rows with the driver's ``executemany`` (pipelined by psycopg 3). Values
    bypass SQLAlchemy's type processing: JSON columns are serialized here,
    UUIDs are passed as the dialect stores them; other columns must already
    be values the driver adapts (numbers, strings, datetimes, None).
    """

    def __init__(self, engine: Engine, table_name: str, columns: list[str]) -> None:
        table = metadata.tables[table_name]
        self.columns = list(columns)
        compiled = insert_ignoring_duplicates(engine, table_name).compile(
            dialect=engine.dialect, column_keys=self.columns
        )
        self.sql = compiled.string
        # qmark dialects (SQLite) take tuples in the compiled order; pyformat ones take dicts.
        self._order = list(compiled.positiontup or []) if compiled.positional else None
        self._json = {name for name in self.columns if isinstance(table.c[name].type, JSON)}
        self._uuid_as_hex = engine.dialect.name == "sqlite"

    def _value(self, name: str, value: Any) -> Any:
        if value is None:
            return None
        if name in self._json:
            return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY).decode()
        if self._uuid_as_hex and isinstance(value, uuid.UUID):
            return value.hex
        return value

    def parameters(self, rows: list[dict[str, Any]]) -> list[Any]:
        """Driver parameters for ``rows`` (dicts keyed by column name)."""
        converted = [{name: self._value(name, row[name]) for name in self.columns} for row in rows]
        if self._order is None:
            return converted
        return [tuple(row[name] for name in self._order) for row in converted]

    def execute(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        """Insert ``rows`` in ``conn``'s transaction; rows whose key exists are skipped."""
        if rows:
            conn.exec_driver_sql(self.sql, self.parameters(rows))
