"""`tether db upgrade | current`: the stores' schema (tether/migrations) in each database they
use. One tab-separated line per database on stdout, for scripts; problems on stderr.
Exit codes: 0 done / at head, 1 behind or refused, 2 the database cannot be opened."""

from __future__ import annotations

from typing import TYPE_CHECKING, NoReturn

import typer

from tether.cli.apps import app
from tether.cli.output import JSON, emit, err
from tether.config import Settings
from tether.errors import MigrationError

if TYPE_CHECKING:
    from tether.migrations import Status

db = typer.Typer(no_args_is_help=True, help="The stores' schema: migrations (Alembic).")
app.add_typer(db, name="db")


@db.command("upgrade")
def upgrade() -> None:
    """Migrate each database the stores use to the newest schema (workers also do at start)."""
    from tether import migrations

    settings = Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)  # the default store is a file there
    for url in migrations.databases(settings):
        try:
            before = migrations.status(url)
            migrations.upgrade(url)
        except MigrationError as error:
            _fail(error.problems[0], 1 if isinstance(error, migrations.SchemaRefused) else 2)
        done = "at head already" if before.at_head else f"upgraded from {_revision(before)}"
        print(f"{before.database}\t{before.head}\t{done}", flush=True)


@db.command("current")
def current(as_json: bool = JSON) -> None:
    """Each database's schema revision and whether it is the newest (exit 1 if not)."""
    from tether import migrations

    try:
        found = [migrations.status(url) for url in migrations.databases(Settings())]
    except MigrationError as error:
        _fail(error.problems[0], 2)
    if as_json:
        emit(
            [
                {
                    "database": s.database,
                    "revision": s.revision,
                    "head": s.head,
                    "at_head": s.at_head,
                    "ahead": s.ahead,
                    "unversioned": s.unversioned,
                }
                for s in found
            ]
        )
    else:
        for s in found:
            where = (
                "at head"
                if s.at_head
                else f"unknown to this release (head {s.head})"
                if s.ahead
                else f"behind head {s.head}"
            )
            print(f"{s.database}\t{_revision(s)}\t{where}")
    if any(s.ahead for s in found):
        err.print("ahead: a newer Tether release migrated it; run that release", soft_wrap=True)
        raise typer.Exit(1)
    if not all(s.at_head for s in found):
        err.print("behind: `tether db upgrade` migrates (workers do at start)", soft_wrap=True)
        raise typer.Exit(1)


def _revision(s: Status) -> str:
    if s.revision is not None:
        return s.revision
    return "unversioned" if s.unversioned else "none"


def _fail(message: str, code: int) -> NoReturn:
    """One line on stderr, however long (the terminal wraps it, not rich), and ``code``."""
    err.print(message, style="red", soft_wrap=True)
    raise typer.Exit(code)
