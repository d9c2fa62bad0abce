"""A search keeps what its scores rest on (calibration pairs, gallery size, target).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 13:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("search", schema=None) as batch_op:
        batch_op.add_column(sa.Column("evidence", sa.JSON(), nullable=False, server_default="{}"))


def downgrade() -> None:
    with op.batch_alter_table("search", schema=None) as batch_op:
        batch_op.drop_column("evidence")
