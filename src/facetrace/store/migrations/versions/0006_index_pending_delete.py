"""Deletes the vector index has not confirmed yet (the repair on open reads only these).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 13:50:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "index_pending_delete",
        sa.Column("face_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("logged_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("face_id"),
    )


def downgrade() -> None:
    op.drop_table("index_pending_delete")
