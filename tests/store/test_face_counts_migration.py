"""Migration 0021: the kept face counts per collection are back-filled, kept by the
database, and removed again by the downgrade."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from alembic import command
from sqlalchemy import inspect, text

from facetrace.store import repo
from facetrace.store.db import Database, alembic_config, make_engine, migrate, transaction
from facetrace.types import Provenance
from tests.counts import assert_counts_exact
from tests.dbutil import database_url
from tests.gallery.crash_worker import fake_face


def _downgrade(url: str, revision: str) -> None:
    engine = make_engine(url)
    try:
        cfg = alembic_config(engine.url.render_as_string(hide_password=False))
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, revision)
    finally:
        engine.dispose()


def _store(db: Database, rng: np.random.Generator, tag: str, collection: str) -> None:
    """One photo with a subject face and a bystander, through the repository only (the
    schema may be older than the gallery's code)."""
    faces = [fake_face(rng, "m"), fake_face(rng, "m")]
    record = repo.PhotoRecord(subject_id=tag, provenance=Provenance(collection=collection))
    with transaction(db.sessions) as s:
        repo.insert_photos(s, photos=[repo.PhotoInsert(f"{tag:0>64}", 9, 9, record, faces, 0)])


@pytest.mark.parametrize("kind", ["sqlite", "pg"])
def test_upgrade_backfills_the_counts_and_downgrade_removes_them(kind: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    with database_url(kind, tmp_path) as url:
        db = Database.open(url)
        try:
            _downgrade(url, "0020")  # a gallery written before 0021
            for i in range(7):
                _store(db, rng, f"a{i}", "ab"[i % 2])
            with db.sessions() as s:
                assert not inspect(s.connection()).has_table("collection_face_count")
            migrate(db.engine)
            with db.sessions() as s:
                assert sorted(assert_counts_exact(s).values()) == [3, 4]
            _store(db, rng, "after", "c")  # kept by the triggers from now on
            with transaction(db.sessions) as s:
                repo.delete_photo(s, photo="1")
            with db.sessions() as s:
                assert sorted(assert_counts_exact(s).values()) == [1, 3, 3]
            _downgrade(url, "0020")
            with db.sessions() as s:
                assert not inspect(s.connection()).has_table("collection_face_count")
                if kind == "sqlite":
                    triggers = "SELECT count(*) FROM sqlite_master WHERE type = 'trigger'"
                else:
                    triggers = "SELECT count(*) FROM pg_trigger WHERE tgname = 'face_count'"
                assert s.execute(text(triggers)).scalar() == 0
            _store(db, rng, "downgraded", "c")  # writes work without them
            with transaction(db.sessions) as s:
                repo.delete_photo(s, photo="2")
                assert repo.searchable_ids(s).size == 7
        finally:
            db.dispose()
