"""Probe faces in their own table, with the vectors found at upload; probes get a kind.

The faces a probe held as JSON (box, quality, reasons, no vector) become rows with an
empty vector; the service computes it from the stored photo on the face's first
search, once.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 13:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    probe_face = op.create_table(
        "probe_face",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("probe_id", sa.Integer(), nullable=False),
        sa.Column("face_index", sa.Integer(), nullable=False),
        sa.Column("origin", sa.String(length=20), nullable=False),
        sa.Column("x1", sa.Integer(), nullable=False),
        sa.Column("y1", sa.Integer(), nullable=False),
        sa.Column("x2", sa.Integer(), nullable=False),
        sa.Column("y2", sa.Integer(), nullable=False),
        sa.Column("landmarks", sa.JSON(), nullable=False),
        sa.Column("detector_score", sa.Float(), nullable=True),
        sa.Column("quality", sa.Float(), nullable=False),
        sa.Column("quality_reasons", sa.JSON(), nullable=False),
        sa.Column("model_id", sa.String(length=200), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=True),
        sa.Column("frame_index", sa.Integer(), nullable=True),
        sa.Column("timestamp_s", sa.Float(), nullable=True),
        sa.Column("extra", sa.JSON(), nullable=False),
        sa.Column("added_by", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["added_by"], ["app_user.id"], name=op.f("fk_probe_face_added_by_app_user")
        ),
        sa.ForeignKeyConstraint(
            ["probe_id"], ["probe.id"], name=op.f("fk_probe_face_probe_id_probe")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_probe_face")),
        sa.UniqueConstraint("probe_id", "face_index", name="uq_probe_face_index"),
    )
    with op.batch_alter_table("probe_face", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_probe_face_probe_id"), ["probe_id"], unique=False)

    conn = op.get_bind()
    old = sa.table(
        "probe",
        sa.column("id", sa.Integer()),
        sa.column("faces", sa.JSON()),
        sa.column("created_at", sa.DateTime(timezone=True)),
    )
    rows = []
    for probe_id, faces, created in conn.execute(
        sa.select(old.c.id, old.c.faces, old.c.created_at)
    ):
        for position, face in enumerate(faces or []):
            x1, y1, x2, y2 = (int(v) for v in face["box"])
            rows.append(
                {
                    "probe_id": probe_id,
                    "face_index": int(face.get("index", position)),
                    "origin": "detected",
                    "x1": x1,
                    "y1": y1,
                    "x2": x2,
                    "y2": y2,
                    "landmarks": [list(p) for p in face.get("landmarks") or []],
                    "detector_score": None,
                    "quality": float(face.get("quality", 0.0)),
                    "quality_reasons": list(face.get("quality_reasons", [])),
                    "model_id": "",
                    "vector": None,
                    "frame_index": None,
                    "timestamp_s": None,
                    "extra": {},
                    "added_by": None,
                    "created_at": created,
                }
            )
    if rows:
        op.bulk_insert(probe_face, rows)

    # Plain ALTER TABLE, also on SQLite (3.35+ drops columns): a batch copy of ``probe``
    # would drop the table that search and probe_face rows point at.
    op.add_column(
        "probe", sa.Column("kind", sa.String(length=20), nullable=False, server_default="photo")
    )
    if conn.dialect.name == "sqlite":
        op.execute("ALTER TABLE probe DROP COLUMN faces")
    else:
        op.drop_column("probe", "faces")


def downgrade() -> None:
    op.add_column("probe", sa.Column("faces", sa.JSON(), nullable=False, server_default="[]"))
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE probe DROP COLUMN kind")
    else:
        op.drop_column("probe", "kind")
    with op.batch_alter_table("probe_face", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_probe_face_probe_id"))
    op.drop_table("probe_face")
