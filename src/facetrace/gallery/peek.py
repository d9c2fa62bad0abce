"""``facetrace status`` without opening the gallery: the counts read with the stdlib's
sqlite3 (read-only), the index's settings from its manifest on disk.

Opening a :class:`~facetrace.gallery.directory.Gallery` loads SQLAlchemy, numpy, FAISS
and the model registry (about a second of a status' start-up). This module imports none
of them, and answers only when what it reads is exactly what the opened gallery would
report: the default SQLite database, at the packaged schema, of the default model, with
a flat index whose file SQL describes and that holds every subject face (no face added
after its save, no delete pending). Otherwise :func:`peek_status` returns ``None`` and
the caller opens the gallery (tests/cli/test_status_quick.py compares both).
"""

from __future__ import annotations

import json
import re
import sqlite3
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote

from facetrace.store.revisions import head_revision
from facetrace.vision.descriptors import dlib_descriptor

INDEX_FILE = "index.faiss"  # a FAISS file (flat) or the manifest of another kind
#: gallery_meta key: which saved index file SQL describes, and its watermark
INDEX_STATE_KEY = "index_state"
DATABASE_FILE = "facetrace.db"

# a path SQLAlchemy renders in its URL exactly as given (no quoting to second-guess)
_PLAIN_PATH = re.compile(r"[A-Za-z0-9_./+-]+")
_CALIBRATION_KEYS = ("model_id", "fmr", "grid_start", "grid_step", "tail_start",
                     "tail_fmr", "tail_slope", "impostor_pairs")  # fmt: skip


def peek_status(data_dir: Path, *, model: str, database_url: str | None) -> dict[str, Any] | None:
    """What :meth:`Gallery.status` would return for ``data_dir`` opened read-only with
    ``model`` and ``database_url``, or ``None`` when that is not certain from a quick
    read (the caller then opens the gallery)."""
    descriptor = dlib_descriptor(model)
    if database_url is not None or descriptor is None:
        return None
    db = (data_dir / DATABASE_FILE).resolve()
    index_path = data_dir / INDEX_FILE
    if not db.is_file() or not _PLAIN_PATH.fullmatch(str(db)):
        return None
    try:
        manifest = json.loads(index_path.read_text())
        st = index_path.stat()
    except (OSError, UnicodeDecodeError, ValueError):
        return None  # no index (the gallery rebuilds it), or a bare FAISS file
    if not (
        isinstance(manifest, dict)
        and manifest.get("format") == "facetrace-index"
        and manifest.get("version") == 1
        and manifest.get("kind") == "flat"
        and manifest.get("dim") == descriptor.dim
        and isinstance(manifest.get("count"), int)
    ):
        return None
    files = manifest.get("files")
    if not isinstance(files, dict) or not all(
        isinstance(f, str) and (data_dir / f).is_file() for f in files.values()
    ):
        return None
    try:
        found = _read(db)
    except (sqlite3.Error, ValueError, TypeError, KeyError):
        return None
    if found is None:
        return None
    counts, meta, newest, pending = found
    state = meta.get(INDEX_STATE_KEY)
    stored_model = meta.get("model_id", descriptor.model_id)
    if (
        stored_model != descriptor.model_id
        or not isinstance(state, dict)
        or state.get("stamp") != [st.st_mtime_ns, st.st_size]
        or not isinstance(state.get("watermark"), int)
        or newest > state["watermark"]  # faces committed after the index was saved
        or pending
        or manifest["count"] != counts["indexed_faces"]
    ):
        return None  # opening the gallery would repair the index first
    calibration = _calibration(meta.get("calibration"), descriptor.calibration_name)
    if calibration is False:
        return None
    return {
        "data_dir": str(data_dir),
        "database": f"sqlite:///{db}",
        "model": descriptor.model_id,
        "dim": descriptor.dim,
        **counts,
        "index": {
            "kind": "flat",
            "metric": "inner_product",
            "dim": descriptor.dim,
            "count": manifest["count"],
        },
        "calibration": calibration,
    }


def _read(db: Path) -> tuple[dict[str, int], dict[str, Any], int, bool] | None:
    """Counts, gallery_meta, the newest subject face's id and whether deletes are
    pending, in one read-only snapshot; ``None`` if the schema is not the head."""
    conn = sqlite3.connect(f"file:{quote(str(db))}?mode=ro", uri=True, isolation_level=None)
    try:
        conn.execute("BEGIN")  # one snapshot for every count (WAL: never waits)
        revisions = {r for (r,) in conn.execute("SELECT version_num FROM alembic_version")}
        if revisions != {head_revision()}:
            return None  # opening the gallery would migrate it first

        def one(sql: str, *args: Any) -> int:
            return int(conn.execute(sql, args).fetchone()[0])

        counts = {
            "collections": one("SELECT count(*) FROM collection"),
            "subjects": one("SELECT count(*) FROM subject WHERE merged_into_id IS NULL"),
            "photos": one("SELECT count(*) FROM photo"),
            "faces": one("SELECT count(*) FROM face"),
            "indexed_faces": one("SELECT count(*) FROM face WHERE is_subject = 1"),
            "tombstones": one("SELECT count(*) FROM tombstone"),
        }
        # SQLite's JSON column has numeric affinity: a number comes back as one, not text
        meta = {
            k: json.loads(v) if isinstance(v, str | bytes) else v
            for k, v in conn.execute("SELECT key, value FROM gallery_meta")
        }
        pending = one("SELECT count(*) FROM index_pending_delete") > 0
        newest = one("SELECT coalesce(max(id), 0) FROM face WHERE is_subject = 1")
        conn.execute("COMMIT")
    finally:
        conn.close()
    return counts, meta, newest, pending


def _calibration(stored: Any, name: str | None) -> dict[str, Any] | bool | None:
    """The calibration's source and size as status shows them; ``False`` when the table
    is one the gallery would refuse (then the gallery says why)."""
    if stored is None:
        if name is None:
            return None
        try:
            text = resources.files("facetrace").joinpath(f"data/calibration-{name}.json")
            stored = json.loads(text.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return False
    if not isinstance(stored, dict) or any(k not in stored for k in _CALIBRATION_KEYS):
        return False
    try:
        return {
            "source": str(stored.get("source", "")),
            "impostor_pairs": int(stored["impostor_pairs"]),
        }
    except (TypeError, ValueError):
        return False
