"""Keyed audit chain: the head says where keyed (HMAC) entries begin, which key signed
it, and carries the key's signature. Existing entries are left as they are; the first
start with a key seals them (facetrace.service.audit.seal), since the key never enters
the database and so is not known here.

Revision ID: 0012
Revises: 0009
Create Date: 2026-12-03 14:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_head", schema=None) as batch_op:
        batch_op.add_column(sa.Column("keyed_from", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("key_id", sa.String(length=16), nullable=False, server_default="")
        )
        batch_op.add_column(
            sa.Column("mac", sa.String(length=64), nullable=False, server_default="")
        )


def downgrade() -> None:
    with op.batch_alter_table("audit_head", schema=None) as batch_op:
        batch_op.drop_column("mac")
        batch_op.drop_column("key_id")
        batch_op.drop_column("keyed_from")
