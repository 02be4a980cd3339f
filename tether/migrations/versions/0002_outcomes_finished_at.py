"""Index tether_outcomes.finished_at: drift, live evaluation and `tether eval` read outcomes by
a window of finish times (Store.outcomes_between), which scanned the whole table.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_tether_outcomes_finished_at", "tether_outcomes", ["finished_at"])


def downgrade() -> None:
    op.drop_index("ix_tether_outcomes_finished_at", table_name="tether_outcomes")
