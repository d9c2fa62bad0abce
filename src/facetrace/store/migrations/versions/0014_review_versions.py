"""One review per reviewer per search: a change is a new version, the earlier ones kept
and marked not current. Existing repeated reviews become versions of one review, oldest
first, the newest current.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03 14:50:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("review", schema=None) as batch_op:
        batch_op.add_column(sa.Column("version", sa.Integer(), nullable=False, server_default="1"))
        batch_op.add_column(
            sa.Column("is_current", sa.Boolean(), nullable=False, server_default=sa.true())
        )
    conn = op.get_bind()
    rows = conn.execute(
        sa.text("SELECT id, search_id, reviewer_id FROM review ORDER BY search_id, reviewer_id, id")
    ).all()
    versions: dict[tuple[int, int], list[int]] = {}
    for rid, search_id, reviewer_id in rows:
        versions.setdefault((search_id, reviewer_id), []).append(rid)
    for ids in versions.values():
        if len(ids) < 2:
            continue
        for n, rid in enumerate(ids, start=1):
            conn.execute(
                sa.text("UPDATE review SET version = :v, is_current = :c WHERE id = :id"),
                {"v": n, "c": n == len(ids), "id": rid},
            )
    with op.batch_alter_table("review", schema=None) as batch_op:
        batch_op.create_unique_constraint(
            "uq_review_search_reviewer_version", ["search_id", "reviewer_id", "version"]
        )


def downgrade() -> None:
    with op.batch_alter_table("review", schema=None) as batch_op:
        batch_op.drop_constraint("uq_review_search_reviewer_version", type_="unique")
        batch_op.drop_column("is_current")
        batch_op.drop_column("version")
