"""Proposals kept for reuse (tether/reuse.py): the newest per domain, key and scope, with the
passages it cited as they were.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tether_proposal_reuse",
        sa.Column("domain", sa.String(32), primary_key=True),
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("scope", sa.String(128), primary_key=True),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_tether_proposal_reuse_request_id", "tether_proposal_reuse", ["request_id"])


def downgrade() -> None:
    op.drop_index("ix_tether_proposal_reuse_request_id", table_name="tether_proposal_reuse")
    op.drop_table("tether_proposal_reuse")
