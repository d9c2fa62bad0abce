"""Video jobs kept in SQL: a probe video's analysis (state, progress, the probe it made)
outlives the process that ran it; one left queued or running is marked interrupted.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 14:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "video_job",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=100), nullable=False),
        sa.Column("filename", sa.String(length=300), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.Column("video_s", sa.Float(), nullable=False),
        sa.Column("fps", sa.Float(), nullable=False),
        sa.Column("eta_s", sa.Float(), nullable=True),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("persons", sa.Integer(), nullable=False),
        sa.Column("probe_id", sa.Integer(), nullable=True),
        sa.Column("upload_bytes", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["case_id"], ["case_file.id"], name=op.f("fk_video_job_case_id_case_file")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["app_user.id"], name=op.f("fk_video_job_user_id_app_user")
        ),
        sa.ForeignKeyConstraint(
            ["probe_id"], ["probe.id"], name=op.f("fk_video_job_probe_id_probe")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_video_job")),
    )
    with op.batch_alter_table("video_job", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_video_job_case_id"), ["case_id"])
        batch_op.create_index(batch_op.f("ix_video_job_state"), ["state"])


def downgrade() -> None:
    op.drop_table("video_job")
