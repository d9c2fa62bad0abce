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
from facetrace.types import Provenance
from tests.dbutil import database_url
from tests.gallery.crash_worker import add_random_photo, fake_face


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


def _store(db: Database, rng: np.random.Generator, tag: str) -> int:
    """One photo with one face, through the repository only (the schema may be older than
    the gallery's code); returns the photo's id."""
    record = repo.PhotoRecord(subject_id=tag, provenance=Provenance(collection="c"))
    insert = repo.PhotoInsert(f"{tag:0>64}", 9, 9, record, [fake_face(rng, "m")], 0)
    with transaction(db.sessions) as s:
        return repo.insert_photos(s, photos=[insert])[0][0]


def _top(db: Database) -> int:
    with db.sessions() as s:
        return repo.max_face_id(s)


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
            with engine.begin() as conn:
                cfg.attributes["connection"] = conn
                command.downgrade(cfg, "0019")
            photos = [_store(db, rng, f"a{i}") for i in range(5)]
            top = _top(db)
            with transaction(db.sessions) as s:  # the two newest deleted, as a writer would
                for photo in photos[-2:]:
                    repo.log_pending_deletes(s, face_ids=repo.delete_photo(s, photo=str(photo)))
                repo.confirm_pending_deletes(s, face_ids=[top - 1])
                repo.set_meta(s, key=INDEX_STATE_KEY, value={"watermark": top + 2})
                repo.log_pending_deletes(s, face_ids=[top + 5])
            if kind == "sqlite":  # the old schema gives the deleted newest face's id again
                again = _store(db, rng, "old")
                assert _top(db) == top - 1
                with transaction(db.sessions) as s:
                    repo.delete_photo(s, photo=str(again))
            migrate(engine)
            _store(db, rng, "after")
            assert _top(db) == (top + 6 if kind == "sqlite" else top + 1)
            with db.sessions() as s:
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
