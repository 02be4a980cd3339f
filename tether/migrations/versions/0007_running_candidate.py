"""At most one candidate running per domain, held by the database: two `tether candidate
start` at once could both find none running and both insert.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

RUNNING = sa.text("stopped_at IS NULL")


def upgrade() -> None:
    # Two running in one domain (that race, before this revision): the newest keeps running,
    # the others are stopped, on the record, so the index can be built.
    op.execute(
        sa.text(
            "UPDATE tether_candidates SET stopped_at = CURRENT_TIMESTAMP, "
            "stopped_by = 'revision 0007', outcome = 'stopped' "
            "WHERE stopped_at IS NULL AND seq NOT IN "
            "(SELECT MAX(seq) FROM tether_candidates WHERE stopped_at IS NULL GROUP BY domain)"
        )
    )
    op.create_index(
        "uq_tether_candidates_running",
        "tether_candidates",
        ["domain"],
        unique=True,
        sqlite_where=RUNNING,
        postgresql_where=RUNNING,
    )


def downgrade() -> None:
    op.drop_index("uq_tether_candidates_running", table_name="tether_candidates")
