"""Departments as managed records and one-time passwords: a department's name is unique
whatever its case and spacing (``name_key``), and an account can be made to change its
password at its next login (``must_change_password``).

Departments whose names differ only in case or spacing (``Forensics`` and ``forensics``,
made silently by earlier versions) are kept apart, not merged (their case numbers may
clash): each later one is renamed ``forensics (2)`` and so on, for an administrator to
reassign its users from the departments page.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03 15:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def _key(name: str) -> str:
    # the same rule as facetrace.service.departments.name_key, frozen here
    return " ".join(name.split()).casefold()


def upgrade() -> None:
    with op.batch_alter_table("department", schema=None) as batch_op:
        batch_op.add_column(sa.Column("name_key", sa.String(length=200), nullable=True))
    conn = op.get_bind()
    rows = conn.execute(sa.text("SELECT id, name FROM department ORDER BY id")).all()
    taken: set[str] = set()
    for row_id, name in rows:
        new, n = name, 1
        while _key(new) in taken:
            n += 1
            new = f"{name} ({n})"
        taken.add(_key(new))
        conn.execute(
            sa.text("UPDATE department SET name = :name, name_key = :key WHERE id = :id"),
            {"name": new, "key": _key(new), "id": row_id},
        )
    with op.batch_alter_table("department", schema=None) as batch_op:
        batch_op.alter_column("name_key", existing_type=sa.String(length=200), nullable=False)
    # a unique index, not a constraint: dropped without rebuilding the table
    op.create_index("ix_department_name_key", "department", ["name_key"], unique=True)
    op.add_column(
        "app_user",
        sa.Column("must_change_password", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    # plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+): no rebuild of tables that others cite
    op.drop_column("app_user", "must_change_password")
    op.drop_index("ix_department_name_key", table_name="department")
    op.drop_column("department", "name_key")
