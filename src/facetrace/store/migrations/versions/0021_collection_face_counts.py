"""Searchable faces per collection, kept by the database in the transaction of every write.

The repair on open compares the index's count per collection with SQL's. Counting the
faces on every open scanned an index as large as the gallery (about 0.3 s per million
faces); this table holds the counts, one row per collection with searchable faces, so the
open reads as many rows as there are collections. Triggers on ``face`` keep it exact for
every writer (an import batch, the Ray ingest, deletes, merges and their undo, a writer
outside facetrace): an insert, a delete, or a change of ``is_subject`` or
``collection_id`` updates its collection's row in the same transaction, so a writer killed
at any moment leaves counts and faces both committed or neither.

A later migration that rebuilds the ``face`` table on SQLite (a batch operation) drops
these triggers with the old table and must create them again.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-04 19:45:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

_UPSERT = (
    "INSERT INTO collection_face_count (collection_id, searchable) {values} "
    "ON CONFLICT (collection_id) DO UPDATE SET searchable = collection_face_count.searchable + 1"
)
_DOWN = (
    "UPDATE collection_face_count SET searchable = searchable - 1 "
    "WHERE collection_id = OLD.collection_id"
)
_DROP_EMPTY = (
    "DELETE FROM collection_face_count WHERE collection_id = OLD.collection_id AND searchable <= 0"
)

SQLITE_TRIGGERS = {
    "face_count_insert": (
        "CREATE TRIGGER face_count_insert AFTER INSERT ON face WHEN NEW.is_subject BEGIN "
        + _UPSERT.format(values="VALUES (NEW.collection_id, 1)")
        + "; END"
    ),
    "face_count_delete": (
        "CREATE TRIGGER face_count_delete AFTER DELETE ON face WHEN OLD.is_subject BEGIN "
        f"{_DOWN}; {_DROP_EMPTY}; END"
    ),
    "face_count_update": (
        "CREATE TRIGGER face_count_update AFTER UPDATE OF is_subject, collection_id ON face "
        "WHEN OLD.is_subject IS NOT NEW.is_subject "
        "OR OLD.collection_id IS NOT NEW.collection_id BEGIN "
        f"{_DOWN} AND OLD.is_subject; {_DROP_EMPTY}; "
        + _UPSERT.format(values="SELECT NEW.collection_id, 1 WHERE NEW.is_subject")
        + "; END"
    ),
}

PG_FUNCTION = f"""
CREATE FUNCTION facetrace_face_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('DELETE', 'UPDATE') AND OLD.is_subject THEN
        {_DOWN};
        {_DROP_EMPTY};
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.is_subject THEN
        {_UPSERT.format(values="VALUES (NEW.collection_id, 1)")};
    END IF;
    RETURN NULL;
END
$$
"""
PG_TRIGGER = (
    "CREATE TRIGGER face_count AFTER INSERT OR DELETE OR UPDATE OF is_subject, collection_id "
    "ON face FOR EACH ROW EXECUTE FUNCTION facetrace_face_count()"
)


def upgrade() -> None:
    op.create_table(
        "collection_face_count",
        sa.Column("collection_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("searchable", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("collection_id"),
    )
    op.execute(
        "INSERT INTO collection_face_count (collection_id, searchable) "
        "SELECT collection_id, count(*) FROM face WHERE is_subject GROUP BY collection_id"
    )
    if op.get_bind().dialect.name == "sqlite":
        for ddl in SQLITE_TRIGGERS.values():
            op.execute(ddl)
    else:
        op.execute(PG_FUNCTION)
        op.execute(PG_TRIGGER)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    else:
        op.execute("DROP TRIGGER IF EXISTS face_count ON face")
        op.execute("DROP FUNCTION IF EXISTS facetrace_face_count()")
    op.drop_table("collection_face_count")
