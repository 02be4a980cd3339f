"""The stores' tables as their create_all made them before migrations (tether/migrations/baseline.py).

Revision ID: 0001
Revises:
"""

from __future__ import annotations

from alembic import op

from tether.migrations.baseline import schema

revision = "0001"
down_revision: str | None = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    schema().create_all(op.get_bind())


def downgrade() -> None:
    schema().drop_all(op.get_bind())
