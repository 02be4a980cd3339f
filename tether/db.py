"""One way to open a database for Tether's records (SQLite file or any SQLAlchemy URL)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from sqlalchemy import create_engine, event
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


# The password in a URL's authority: everything from the user's colon to the last "@" (a
# password may hold an unencoded "@", "/", "?" or "#"; hiding too much is the safe side), and
# in its query (psycopg's ?password=).
_AUTHORITY_SECRET = re.compile(r"^([^:/?#]+://[^:/?#@]*):.*@", re.DOTALL)
_TWO_ATS = re.compile(r"^[^:/?#]+://[^/?#]*@[^/?#]*@")
_QUERY_SECRET = re.compile(r"(?i)([?&](?:password|passwd|pwd|ssl_?password|secret|token)=)[^&#]*")


def hidden(url: str | Engine) -> str:
    """A database URL fit for a message: its passwords hidden, whether or not it parses."""
    text = url.url.render_as_string(hide_password=False) if isinstance(url, Engine) else url
    return _QUERY_SECRET.sub(r"\1***", _AUTHORITY_SECRET.sub(r"\1:***@", text))


def make_engine(url: str) -> Engine:
    """Every store's engine, and the one place a URL that cannot be opened is said so (the
    stores, the migrations and `tether db` all come here)."""
    if _TWO_ATS.match(url):  # else the password's tail is read as the host, and shown as it
        raise MigrationError(f"{hidden(url)}: write an @ in the password as %40")
    try:
        engine = create_engine(url, future=True)
    except (ArgumentError, NoSuchModuleError, ValueError) as err:  # ValueError: a port "x"
        raise MigrationError(
            f"{hidden(url)}: not a database URL Tether can open ({hidden(str(err))})"
        ) from None
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
