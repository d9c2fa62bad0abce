"""Face ids are never reused: on SQLite the face table becomes AUTOINCREMENT (PostgreSQL's
sequence never gave an id twice).

The repair on open trusts a *watermark*: every searchable face up to that id is in the
saved index. SQLite without AUTOINCREMENT gives a new row the highest id plus one, so a
face added after the newest face was deleted (and that delete saved) got the deleted
face's id, at the watermark: the repair looked for new faces above it only and missed it.
The sequence is started above every id the gallery has used: its faces, the recorded
watermark and the deletes the index has yet to confirm.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-04 19:30:00
"""

import contextlib
import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def _highest_used(conn: sa.Connection) -> int:
    """The highest face id the gallery has given out, as far as it still knows."""
    top = int(conn.execute(sa.text("SELECT max(id) FROM face")).scalar() or 0)
    pending = conn.execute(sa.text("SELECT max(face_id) FROM index_pending_delete")).scalar()
    top = max(top, int(pending or 0))
    raw: Any = conn.execute(
        sa.text("SELECT value FROM gallery_meta WHERE key = 'index_state'")
    ).scalar()
    state = json.loads(raw) if isinstance(raw, str) else raw
    if isinstance(state, dict):
        with contextlib.suppress(TypeError, ValueError):  # an unreadable record: no floor
            top = max(top, int(state.get("watermark") or 0))
    return top


def upgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name != "sqlite":
        return
    top = _highest_used(conn)
    # a rebuild (copy, drop, rename); facetrace.store.db.migrate runs it with foreign keys
    # off and checks them before the commit
    with op.batch_alter_table(
        "face", recreate="always", table_kwargs={"sqlite_autoincrement": True}
    ):
        pass
    conn.execute(sa.text("DELETE FROM sqlite_sequence WHERE name = 'face'"))
    conn.execute(
        sa.text("INSERT INTO sqlite_sequence (name, seq) VALUES ('face', :top)"), {"top": top}
    )


def downgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name != "sqlite":
        return
    with op.batch_alter_table(
        "face", recreate="always", table_kwargs={"sqlite_autoincrement": False}
    ):
        pass
    conn.execute(sa.text("DELETE FROM sqlite_sequence WHERE name = 'face'"))
