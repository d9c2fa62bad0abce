"""The photos and probes recent audit entries list, one row each (``audit_cover``), so
that an image a page just showed is found covered by one indexed lookup instead of
reading the newest 500 entries for every image (a results page loads one image per
candidate). Starts empty: views before the upgrade write an entry of their own.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04 02:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_cover",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("ref_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("at", sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_cover")),
    )
    op.create_index(
        "ix_audit_cover_lookup", "audit_cover", ["actor", "kind", "ref_id", "at"], unique=False
    )
    op.create_index(op.f("ix_audit_cover_at"), "audit_cover", ["at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_audit_cover_at"), table_name="audit_cover")
    op.drop_index("ix_audit_cover_lookup", table_name="audit_cover")
    op.drop_table("audit_cover")
