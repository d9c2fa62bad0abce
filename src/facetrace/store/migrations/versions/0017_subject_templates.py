"""Subject templates: the mean vector of a subject's reference faces per collection, and
what gave a recorded search candidate its score (a face or a template).

The rows are derived from the faces; an upgraded gallery has none until it opens, when
the gallery's template repair (``facetrace.gallery.templates``) computes every subject's.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-04 01:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "subject_template",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("subject_id", sa.Integer(), nullable=False),
        sa.Column("collection_id", sa.Integer(), nullable=False),
        sa.Column("centroid", sa.Integer(), nullable=False),
        sa.Column("n_faces", sa.Integer(), nullable=False),
        sa.Column("face_ids", sa.JSON(), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_subject_template_subject_id", "subject_template", ["subject_id"])
    # what gave a recorded candidate its score: a reference face or the subject's template
    op.add_column(
        "search_candidate",
        sa.Column("matched_by", sa.String(length=20), nullable=False, server_default="face"),
    )
    op.add_column(
        "search_candidate",
        sa.Column("template_faces", sa.Integer(), nullable=False, server_default="0"),
    )


def downgrade() -> None:
    op.drop_column("search_candidate", "template_faces")
    op.drop_column("search_candidate", "matched_by")
    op.drop_index("ix_subject_template_subject_id", table_name="subject_template")
    op.drop_table("subject_template")
