"""Department scope: a subject belongs to one collection (its external id is unique within
the collection, not across the gallery), and a case number is unique within a department.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 19:40:00
"""

from alembic import op

# On SQLite the batch operations rebuild the tables; facetrace.store.db.migrate runs
# them with foreign keys off and checks them before the commit.

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("subject", schema=None) as batch_op:
        batch_op.drop_constraint("uq_subject_external_id", type_="unique")
        batch_op.create_unique_constraint(
            "uq_subject_collection_id", ["collection_id", "external_id"]
        )
    with op.batch_alter_table("case_file", schema=None) as batch_op:
        batch_op.drop_constraint("uq_case_file_number", type_="unique")
        batch_op.create_unique_constraint("uq_case_file_department_id", ["department_id", "number"])


def downgrade() -> None:
    with op.batch_alter_table("case_file", schema=None) as batch_op:
        batch_op.drop_constraint("uq_case_file_department_id", type_="unique")
        batch_op.create_unique_constraint("uq_case_file_number", ["number"])
    with op.batch_alter_table("subject", schema=None) as batch_op:
        batch_op.drop_constraint("uq_subject_collection_id", type_="unique")
        batch_op.create_unique_constraint("uq_subject_external_id", ["external_id"])
