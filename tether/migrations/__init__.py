"""The stores' schema, migrated by Alembic: configured from code (no alembic.ini), run at every
store's and worker's start and by `tether db upgrade`.

``upgrade(url)`` brings one database to head: a read of its version when it is there already;
otherwise, under a lock that makes concurrent starts migrate once (``pg_advisory_xact_lock``
on PostgreSQL, ``flock`` on a file beside a SQLite database), an unversioned database (made by
the stores' ``create_all`` before migrations) is checked and stamped 0001, then upgraded.

A change to a table: edit it in its store, then write the revision, e.g. with
``alembic.command.revision(config(url), message="...", autogenerate=True)`` against a database
at head (tests/unit/test_migrations.py fails while the models and the revisions disagree).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Connection, MetaData, inspect, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, OperationalError

from tether.db import hidden, make_engine
from tether.errors import MigrationError
from tether.migrations.baseline import schema

if TYPE_CHECKING:
    from tether.config import Settings

HERE = Path(__file__).parent
BASELINE = "0001"
log = logging.getLogger(__name__)


class SchemaRefused(MigrationError):
    """Tether tables this release cannot migrate (older than 0001, or from a newer release):
    the database is left as it was."""


@dataclass(frozen=True)
class Status:
    database: str  # the URL, password hidden
    revision: str | None  # None: no version table
    head: str
    unversioned: bool = False  # Tether tables without a version: upgrade stamps them 0001

    @property
    def at_head(self) -> bool:
        return self.revision == self.head

    @property
    def ahead(self) -> bool:
        """A revision this release does not know: a newer release's (upgrade refuses it)."""
        return self.revision is not None and self.revision not in revisions()


def databases(settings: Settings) -> list[str]:
    """Each database the stores use, once. Outcomes, ledger and policy versions all live at
    TETHER_STORE_URL; a store given a URL of its own belongs here too."""
    return list(dict.fromkeys([settings.resolved_store_url()]))


def config(url: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    if url is not None:  # for alembic commands run by hand; upgrade() hands a connection
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


@functools.cache
def revisions() -> frozenset[str]:
    return frozenset(s.revision for s in ScriptDirectory.from_config(config()).walk_revisions())


@functools.cache
def head() -> str:
    revision = ScriptDirectory.from_config(config()).get_current_head()
    assert revision is not None
    return revision


def target_metadata() -> MetaData:
    """The three stores' tables in one MetaData: what the revisions must add up to."""
    from tether import ledger, policystore, store

    combined = MetaData()
    for part in (store.metadata, ledger.metadata, policystore.metadata):
        for table in part.tables.values():
            table.to_metadata(combined)
    return combined


def upgrade(url: str | Engine) -> None:
    """Bring the database to head; safe to call from many processes at once."""
    with _opened(url) as engine, _clear(engine):
        try:
            with engine.connect() as conn:
                if _revision(conn) == head():
                    return
        except OperationalError:
            if engine.dialect.name != "sqlite":
                raise
            # Locked by a process migrating it longer than busy_timeout (a slow or busy
            # machine): wait for that process's migration lock below instead.
        with _locked(engine) as conn:
            found = _revision(conn)
            if found == head():
                return  # another process migrated it while this one waited
            cfg = config()
            cfg.attributes["connection"] = conn
            if found is None and _unversioned(conn):
                _adopt(conn, hidden(engine))
                command.stamp(cfg, BASELINE)
                found = BASELINE
            command.upgrade(cfg, "head")
            log.info("%s: schema %s -> %s", hidden(engine), found or "none", head())


def status(url: str | Engine) -> Status:
    """Where the database is, read only (a SQLite file that is not there is not made)."""
    with _opened(url) as engine, _clear(engine):
        where = hidden(engine)
        path = engine.url.database
        file = engine.dialect.name == "sqlite" and path and path != ":memory:"
        if file and not Path(str(path)).exists():
            return Status(where, None, head())
        with engine.connect() as conn:
            found = _revision(conn)
            return Status(where, found, head(), found is None and _unversioned(conn))


def _unversioned(conn: Connection) -> bool:
    """Tether tables but no version: a database the stores' ``create_all`` made."""
    existing = set(inspect(conn).get_table_names())
    return bool(existing & set(schema().tables))


def _adopt(conn: Connection, where: str) -> None:
    """Make an unversioned database revision 0001, or refuse it: its missing tables are created
    (as that ``create_all`` would have at this start), missing columns are refused."""
    inspector = inspect(conn)
    for name in ("tether_outcomes", "tether_index_refreshes", "tether_fetched"):
        if inspector.has_table(name):
            columns = {c["name"] for c in inspector.get_columns(name)}
            if "domain" not in columns:
                raise SchemaRefused(
                    f"{where}: {name} predates domain packs (no domain column); move the old "
                    "database aside, or recreate it"
                )
    frozen = schema()
    for table in frozen.sorted_tables:
        if inspector.has_table(table.name):
            have = {c["name"] for c in inspector.get_columns(table.name)}
            missing = sorted(set(table.columns.keys()) - have)
            if missing:
                raise SchemaRefused(
                    f"{where}: {table.name} lacks {', '.join(missing)}: it is older than "
                    "revision 0001 and cannot be migrated; move the old database aside"
                )
    frozen.create_all(conn)  # only the tables it lacks


def _revision(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


@contextlib.contextmanager
def _opened(url: str | Engine) -> Iterator[Engine]:
    """The caller's engine, or one made (and disposed of) here."""
    if isinstance(url, Engine):
        yield url
        return
    engine = make_engine(url)  # a URL it cannot open: MigrationError, there
    try:
        yield engine
    finally:
        engine.dispose()


@contextlib.contextmanager
def _clear(engine: Engine) -> Iterator[None]:
    """Failures as one line naming the database, not a driver's traceback."""
    try:
        yield
    except DBAPIError as err:
        reason = str(err.orig).strip().splitlines()[0] if err.orig else str(err)
        raise MigrationError(f"{hidden(engine)}: cannot use the database: {reason}") from None
    except CommandError as err:  # a revision this release does not know: a newer one's
        raise SchemaRefused(
            f"{hidden(engine)}: {err}; was it migrated by a newer Tether release?"
        ) from None


@contextlib.contextmanager
def _locked(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction that only one process at a time holds, per database."""
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            # Released with the transaction; keyed by schema, so that installations sharing
            # a PostgreSQL database in separate schemas do not wait for each other.
            conn.execute(
                text(
                    "SELECT pg_advisory_xact_lock(hashtext("
                    "'tether.migrations.' || coalesce(current_schema(), '')))"
                )
            )
            yield conn
        return
    path = engine.url.database if engine.dialect.name == "sqlite" else None
    with contextlib.ExitStack() as stack:
        if path and path != ":memory:" and not path.startswith("file:"):
            lock = stack.enter_context(Path(f"{path}.migrate-lock").open("a"))
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
        # Other databases: no lock across processes; start one process first.
        yield stack.enter_context(engine.begin())
