"""Case work: assignment, closing with an outcome, and case events (notes, assignments,
closings) for the timeline.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 13:50:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ALTER TABLE ADD COLUMN: a batch copy of ``case_file`` on SQLite would break
    # the foreign keys of every table citing it; SQLite takes the reference inline.
    sqlite = op.get_bind().dialect.name == "sqlite"
    for name in ("assigned_to", "closed_by"):
        fk = f"fk_case_file_{name}_app_user"
        if sqlite:
            op.execute(
                f"ALTER TABLE case_file ADD COLUMN {name} INTEGER "
                f"CONSTRAINT {fk} REFERENCES app_user (id)"
            )
        else:
            op.add_column("case_file", sa.Column(name, sa.Integer(), nullable=True))
            op.create_foreign_key(op.f(fk), "case_file", "app_user", [name], ["id"])
    op.add_column("case_file", sa.Column("outcome", sa.String(length=40), nullable=True))
    op.add_column(
        "case_file", sa.Column("outcome_reason", sa.Text(), nullable=False, server_default="")
    )
    op.add_column("case_file", sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "case_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"], ["case_file.id"], name=op.f("fk_case_event_case_id_case_file")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["app_user.id"], name=op.f("fk_case_event_user_id_app_user")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_event")),
    )
    with op.batch_alter_table("case_event", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_case_event_case_id"), ["case_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("case_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_case_event_case_id"))
    op.drop_table("case_event")
    if op.get_bind().dialect.name != "sqlite":
        for name in ("assigned_to", "closed_by"):
            op.drop_constraint(
                op.f(f"fk_case_file_{name}_app_user"), "case_file", type_="foreignkey"
            )
    for name in ("closed_by", "closed_at", "outcome_reason", "outcome", "assigned_to"):
        op.drop_column("case_file", name)
