"""Who vouched for later feedback (a reporter in the domain's directory, by signature) and
with which key: the learning loop counts only feedback someone vouched for; the rest stays
on the record (feedback kept before this revision: vouched for by nobody).

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
        table.add_column(sa.Column("vouched_key", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tether_later_feedback") as table:
        table.drop_column("vouched_key")
        table.drop_column("vouched_by")
