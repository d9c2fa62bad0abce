"""A search records the mode it ran in: ``identification`` (thresholded; every search
made before modes existed was one) or ``investigation`` (a fixed-length list for review,
no threshold).

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-04 02:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("search", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("mode", sa.String(length=20), nullable=False, server_default="identification")
        )


def downgrade() -> None:
    # SQLite 3.35+ drops a column in place (no table rebuild, so no foreign-key trouble)
    op.execute("ALTER TABLE search DROP COLUMN mode")
