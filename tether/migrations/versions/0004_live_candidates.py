"""Candidates beside live traffic (tether candidate) and what they decided on live requests'
facts.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tether_candidates",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("domain", sa.String(32), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_by", sa.String(200), nullable=False),
        sa.Column("stopped_at", sa.DateTime(timezone=True)),
        sa.Column("stopped_by", sa.String(200)),
        sa.Column("outcome", sa.String(16)),
    )
    op.create_index("ix_tether_candidates_domain", "tether_candidates", ["domain"])
    op.create_table(
        "tether_shadow_decisions",
        sa.Column("request_id", sa.String(128), primary_key=True),
        sa.Column("candidate", sa.String(64), primary_key=True),
        sa.Column("domain", sa.String(32), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_tether_shadow_decisions_domain", "tether_shadow_decisions", ["domain"])


def downgrade() -> None:
    op.drop_index("ix_tether_shadow_decisions_domain", table_name="tether_shadow_decisions")
    op.drop_table("tether_shadow_decisions")
    op.drop_index("ix_tether_candidates_domain", table_name="tether_candidates")
    op.drop_table("tether_candidates")
