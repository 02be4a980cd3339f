"""What a live run gave a candidate's own run when it started it: that run's decision is kept
only on that input (a run started by hand under the candidate's id records nothing).

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tether_shadow_starts",
        sa.Column("request_id", sa.String(128), primary_key=True),
        sa.Column("candidate", sa.String(64), primary_key=True),
        sa.Column("input_sha256", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("tether_shadow_starts")
