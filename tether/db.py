"""One way to open a database for Tether's records (SQLite file or any SQLAlchemy URL)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import create_engine, event, make_url
from sqlalchemy.engine import Engine
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from tether.errors import MigrationError


def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    # Waiting first: switching a new file to WAL takes a lock that another process opening it
    # at the same moment (workers starting together) would otherwise fail on.
    cursor.execute("PRAGMA busy_timeout=5000")  # concurrent writers wait instead of failing
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def hidden(url: str | Engine) -> str:
    """A database URL fit for a message: its password hidden."""
    try:
        parsed = url.url if isinstance(url, Engine) else make_url(url)
    except ArgumentError:
        return str(url)
    return parsed.render_as_string(hide_password=True)


def make_engine(url: str) -> Engine:
    """Every store's engine, and the one place a URL that cannot be opened is said so (the
    stores, the migrations and `tether db` all come here)."""
    try:
        engine = create_engine(url, future=True)
    except (ArgumentError, NoSuchModuleError) as err:
        raise MigrationError(f"{hidden(url)}: not a database URL Tether can open ({err})") from None
    except ImportError as err:
        raise MigrationError(
            f"{hidden(url)}: its database driver is not installed ({err})"
        ) from None
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def utc(value: datetime) -> datetime:
    """A stored time as aware UTC: SQLite hands timezone-aware columns back naive."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)
