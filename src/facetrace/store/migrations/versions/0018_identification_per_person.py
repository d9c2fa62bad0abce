"""One identification per unknown person of a case, not one per case: a mass-casualty
case groups its faces into several unknown persons, and each is identified on its own.
An identification now names the person it identifies, the searched face of its
candidate's search (``probe_id``, ``face_index``; filled from that search for existing
rows), and is unique per case and person instead of per case.

The downgrade refuses while a case holds more than one identification (the old schema
cannot hold them; nothing is deleted to make it fit).

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-04 01:50:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("identification", schema=None) as batch_op:
        batch_op.add_column(sa.Column("probe_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("face_index", sa.Integer(), nullable=True))
    conn = op.get_bind()
    conn.execute(
        sa.text(
            "UPDATE identification SET "
            "probe_id = (SELECT s.probe_id FROM search_candidate c JOIN search s "
            "ON s.id = c.search_id WHERE c.id = identification.candidate_id), "
            "face_index = (SELECT s.face_index FROM search_candidate c JOIN search s "
            "ON s.id = c.search_id WHERE c.id = identification.candidate_id)"
        )
    )
    with op.batch_alter_table("identification", schema=None) as batch_op:
        batch_op.alter_column("probe_id", existing_type=sa.Integer(), nullable=False)
        batch_op.alter_column("face_index", existing_type=sa.Integer(), nullable=False)
        batch_op.drop_constraint("uq_identification_case", type_="unique")
        batch_op.create_unique_constraint(
            "uq_identification_person", ["case_id", "probe_id", "face_index"]
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_identification_probe_id_probe"), "probe", ["probe_id"], ["id"]
        )
        batch_op.create_index(batch_op.f("ix_identification_case_id"), ["case_id"], unique=False)


def downgrade() -> None:
    conn = op.get_bind()
    several = conn.execute(
        sa.text(
            "SELECT case_id FROM identification GROUP BY case_id HAVING COUNT(*) > 1 "
            "ORDER BY case_id"
        )
    ).first()
    if several is not None:
        raise RuntimeError(
            f"case {several[0]} records several identifications (one per person); the "
            "schema before 0018 holds one per case, so it cannot be downgraded"
        )
    with op.batch_alter_table("identification", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_identification_case_id"))
        batch_op.drop_constraint(batch_op.f("fk_identification_probe_id_probe"), type_="foreignkey")
        batch_op.drop_constraint("uq_identification_person", type_="unique")
        batch_op.create_unique_constraint("uq_identification_case", ["case_id"])
        batch_op.drop_column("face_index")
        batch_op.drop_column("probe_id")
