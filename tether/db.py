"""One way to open a database for Tether's records (SQLite file or any SQLAlchemy URL)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from tether.errors import ConfigurationError


def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    # Waiting first: switching a new file to WAL takes a lock that another process opening it
    # at the same moment (workers starting together) would otherwise fail on.
    cursor.execute("PRAGMA busy_timeout=5000")  # concurrent writers wait instead of failing
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def make_engine(url: str) -> Engine:
    try:
        engine = create_engine(url, future=True)
    except (ArgumentError, NoSuchModuleError) as err:  # "garbage": a traceback in every command
        raise ConfigurationError(
            [f"TETHER_STORE_URL: not a database URL Tether can open ({err})"]
        ) from None
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def utc(value: datetime) -> datetime:
    """A stored time as aware UTC: SQLite hands timezone-aware columns back naive."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)
