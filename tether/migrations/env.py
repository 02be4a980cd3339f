"""Alembic's environment, configured by tether.migrations.config (no alembic.ini). Online only:
the caller hands the connection (already locked); a URL is enough for commands run by hand."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from tether.migrations import target_metadata


def run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata(),
        # Batch operations in generated revisions: SQLite cannot ALTER most things in place,
        # and a revision must run on SQLite and PostgreSQL alike.
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


given = context.config.attributes.get("connection")
if given is not None:
    run(given)
else:
    from tether.db import make_engine

    engine = make_engine(context.config.get_main_option("sqlalchemy.url") or "")
    with engine.begin() as conn:
        run(conn)
    engine.dispose()
