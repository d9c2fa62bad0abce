"""Face ids are never given twice (migration 0020): the repair on open relies on it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from alembic import command
from sqlalchemy import text

from facetrace.gallery.directory import INDEX_STATE_KEY, Gallery
from facetrace.store import repo
from facetrace.store.db import Database, alembic_config, make_engine, migrate, transaction
from tests.dbutil import database_url
from tests.gallery.crash_worker import add_random_photo


def _newest_face(g: Gallery) -> int:
    with g.sessions() as s:
        return repo.max_face_id(s)


def _delete_newest(g: Gallery) -> int:
    top = _newest_face(g)
    with g.sessions() as s:
        photo = repo.face_info(s, {top})[top].photo_id
    g.delete_photo(str(photo))
    return top


@pytest.mark.parametrize("kind", ["sqlite", "pg"])
def test_a_deleted_newest_face_id_is_not_given_again(kind: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    with database_url(kind, tmp_path) as url:
        db = Database.open(url)
        try:
            with Gallery.open(tmp_path / "data", database=db) as g:
                for i in range(3):
                    add_random_photo(g, rng, f"a-{i}")
                gone = _delete_newest(g)
                add_random_photo(g, rng, "b")
                assert _newest_face(g) == gone + 1
        finally:
            db.dispose()


@pytest.mark.parametrize("kind", ["sqlite", "pg"])
def test_upgrade_starts_ids_above_every_id_used_and_downgrades(kind: str, tmp_path: Path) -> None:
    """A gallery written before 0020 whose two newest faces were deleted, with a watermark
    and a logged delete above its faces: after the upgrade a new face gets an id above
    every one of them; the downgrade to 0019 keeps the faces."""
    rng = np.random.default_rng(1)
    with database_url(kind, tmp_path) as url:
        engine = make_engine(url)
        cfg = alembic_config(engine.url.render_as_string(hide_password=False))
        db = Database.open(url)
        try:
            with Gallery.open(tmp_path / "data", database=db) as g:
                for i in range(5):
                    add_random_photo(g, rng, f"a-{i}")
            with engine.begin() as conn:
                cfg.attributes["connection"] = conn
                command.downgrade(cfg, "0019")
            with Gallery.open(tmp_path / "data", database=db) as g:
                top = _delete_newest(g)
                _delete_newest(g)
            with transaction(db.sessions) as s:  # as a writer that died would leave it
                state = repo.get_meta(s, INDEX_STATE_KEY)
                assert state["watermark"] == top
                repo.set_meta(s, key=INDEX_STATE_KEY, value={**state, "watermark": top + 2})
                repo.log_pending_deletes(s, face_ids=[top + 5])
            migrate(engine)
            with Gallery.open(tmp_path / "data", database=db) as g:
                add_random_photo(g, rng, "after")
                # SQLite gave the deleted newest face's id again before 0020
                assert _newest_face(g) == (top + 6 if kind == "sqlite" else top + 1)
                with g.sessions() as s:
                    assert repo.searchable_ids(s).size == 4
            if kind == "sqlite":
                with engine.connect() as conn:
                    sql = conn.execute(
                        text("SELECT sql FROM sqlite_master WHERE name = 'face'")
                    ).scalar()
                assert "AUTOINCREMENT" in str(sql)
            with engine.begin() as conn:
                cfg.attributes["connection"] = conn
                command.downgrade(cfg, "0019")
            with engine.connect() as conn:
                assert conn.execute(text("SELECT count(*) FROM face")).scalar() == 4
                if kind == "sqlite":
                    sql = conn.execute(
                        text("SELECT sql FROM sqlite_master WHERE name = 'face'")
                    ).scalar()
                    assert "AUTOINCREMENT" not in str(sql)
        finally:
            db.dispose()
            engine.dispose()
