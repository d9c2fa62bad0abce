"""Case grouping: people's "same person" / "different people" decisions on a case's
faces, kept across groupings (revoked, never deleted).

Revision ID: 0011
Revises: 0008
Create Date: 2026-12-03 08:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "case_face_decision",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("face_a", sa.Integer(), nullable=False),
        sa.Column("face_b", sa.Integer(), nullable=False),
        sa.Column("decision", sa.String(length=20), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("decided_by", sa.Integer(), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_by", sa.Integer(), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoke_note", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"], ["case_file.id"], name=op.f("fk_case_face_decision_case_id_case_file")
        ),
        sa.ForeignKeyConstraint(
            ["face_a"], ["probe_face.id"], name=op.f("fk_case_face_decision_face_a_probe_face")
        ),
        sa.ForeignKeyConstraint(
            ["face_b"], ["probe_face.id"], name=op.f("fk_case_face_decision_face_b_probe_face")
        ),
        sa.ForeignKeyConstraint(
            ["decided_by"],
            ["app_user.id"],
            name=op.f("fk_case_face_decision_decided_by_app_user"),
        ),
        sa.ForeignKeyConstraint(
            ["revoked_by"],
            ["app_user.id"],
            name=op.f("fk_case_face_decision_revoked_by_app_user"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_face_decision")),
    )
    with op.batch_alter_table("case_face_decision", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_case_face_decision_case_id"), ["case_id"])


def downgrade() -> None:
    op.drop_table("case_face_decision")
