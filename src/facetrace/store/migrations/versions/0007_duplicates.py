"""Duplicate subjects: reviewed merges (and their undo) and "different people" decisions.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("subject", schema=None) as batch_op:
        batch_op.add_column(sa.Column("merged_into_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_subject_merged_into_id_subject"), "subject", ["merged_into_id"], ["id"]
        )
    op.create_table(
        "subject_decision",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subject_a", sa.Integer(), nullable=False),
        sa.Column("subject_b", sa.Integer(), nullable=False),
        sa.Column("decision", sa.String(length=20), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("decided_by", sa.String(length=100), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["subject_a"], ["subject.id"], name=op.f("fk_subject_decision_subject_a_subject")
        ),
        sa.ForeignKeyConstraint(
            ["subject_b"], ["subject.id"], name=op.f("fk_subject_decision_subject_b_subject")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subject_decision")),
    )
    with op.batch_alter_table("subject_decision", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_subject_decision_subject_a"), ["subject_a"])
        batch_op.create_index(batch_op.f("ix_subject_decision_subject_b"), ["subject_b"])
    op.create_table(
        "subject_merge",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("target_id", sa.Integer(), nullable=False),
        sa.Column("photo_ids", sa.JSON(), nullable=False),
        sa.Column("face_ids", sa.JSON(), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("merged_by", sa.String(length=100), nullable=False),
        sa.Column("merged_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("undone_by", sa.String(length=100), nullable=True),
        sa.Column("undone_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("undo_note", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["source_id"], ["subject.id"], name=op.f("fk_subject_merge_source_id_subject")
        ),
        sa.ForeignKeyConstraint(
            ["target_id"], ["subject.id"], name=op.f("fk_subject_merge_target_id_subject")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subject_merge")),
    )
    with op.batch_alter_table("subject_merge", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_subject_merge_source_id"), ["source_id"])
        batch_op.create_index(batch_op.f("ix_subject_merge_target_id"), ["target_id"])


def downgrade() -> None:
    op.drop_table("subject_merge")
    op.drop_table("subject_decision")
    with op.batch_alter_table("subject", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_subject_merged_into_id_subject"), type_="foreignkey"
        )
        batch_op.drop_column("merged_into_id")
