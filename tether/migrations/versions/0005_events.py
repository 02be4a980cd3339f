"""Events the incident timeline reads beside outcomes (tether/incident.py): a worker's circuit
moves, an evaluation run's budget and drift alarms.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tether_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("domain", sa.String(32)),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("source", sa.String(200), nullable=False),
    )
    op.create_index("ix_tether_events_at", "tether_events", ["at"])
    op.create_index("ix_tether_events_source", "tether_events", ["source"])


def downgrade() -> None:
    op.drop_index("ix_tether_events_source", table_name="tether_events")
    op.drop_index("ix_tether_events_at", table_name="tether_events")
    op.drop_table("tether_events")
