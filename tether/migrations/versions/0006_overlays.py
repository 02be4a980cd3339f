"""The conservative overlay's switches (tether/overlay.py): per domain or intent, who set and
cleared each, when, why, and the burn that set it.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tether_overlays",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("domain", sa.String(32), nullable=False),
        sa.Column("intent", sa.String(64)),
        sa.Column("active_scope", sa.String(100)),
        sa.Column("set_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("set_by", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("evidence", sa.Text),
        sa.Column("last_burning_at", sa.DateTime(timezone=True)),
        sa.Column("cleared_at", sa.DateTime(timezone=True)),
        sa.Column("cleared_by", sa.String(200)),
        sa.Column("clear_reason", sa.Text),
    )
    op.create_index("ix_tether_overlays_domain", "tether_overlays", ["domain"])
    # At most one overlay on per scope: a cleared one's scope is null, and nulls never clash.
    op.create_index(
        "ix_tether_overlays_active_scope", "tether_overlays", ["active_scope"], unique=True
    )


def downgrade() -> None:
    op.drop_index("ix_tether_overlays_active_scope", table_name="tether_overlays")
    op.drop_index("ix_tether_overlays_domain", table_name="tether_overlays")
    op.drop_table("tether_overlays")
