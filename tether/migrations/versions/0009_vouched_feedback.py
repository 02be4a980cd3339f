"""Who vouched for later feedback (a reporter in the domain's directory, by signature): the
learning loop counts only feedback someone vouched for; the rest stays on the record.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tether_later_feedback") as table:
        table.add_column(sa.Column("vouched_by", sa.String(200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tether_later_feedback") as table:
        table.drop_column("vouched_by")
