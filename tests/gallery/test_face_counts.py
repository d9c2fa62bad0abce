"""SQL keeps the searchable faces per collection with every write (migration 0021), so
the repair on open compares counts without counting the gallery: the counts stay exact
after every kind of write, and a clean open reads no face beyond the watermark."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import event, insert, select, update
from sqlalchemy.engine import Engine

from facetrace.gallery.directory import Gallery, NewPhoto
from facetrace.store import duplicates as links
from facetrace.store import repo
from facetrace.store.db import Database, transaction
from facetrace.store.models import Collection, CollectionFaceCount, FaceRow, Subject
from facetrace.types import Provenance
from tests.counts import assert_counts_exact
from tests.dbutil import database_url
from tests.gallery.crash_worker import add_random_photo, fake_face


@pytest.fixture(params=["sqlite", "pg"])
def gallery(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Gallery]:
    with database_url(request.param, tmp_path) as url:
        db = Database.open(url)
        try:
            with Gallery.open(tmp_path / "data", database=db) as g:
                yield g
        finally:
            db.dispose()


def _photo(g: Gallery, tag: str, collection: str, faces: int = 1, subject: int | None = 0,
           who: str | None = None) -> NewPhoto:  # fmt: skip
    rng = np.random.default_rng(abs(hash(tag)) % 2**32)
    return NewPhoto(
        sha256=hashlib.sha256(tag.encode()).hexdigest(),
        width=100,
        height=100,
        faces=[fake_face(rng, g.descriptor.model_id) for _ in range(faces)],
        subject_face=subject,
        record=repo.PhotoRecord(
            subject_id=who or f"s-{tag}", provenance=Provenance(collection=collection)
        ),
    )


def _counts(g: Gallery) -> dict[str, int]:
    """The kept counts by collection name, checked against a fresh count."""
    with g.sessions() as s:
        kept = assert_counts_exact(s)
        names = {int(i): str(n) for i, n in s.execute(select(Collection.id, Collection.name))}
    return {names[cid]: n for cid, n in kept.items() if names[cid] != "crash"}


def _subject(g: Gallery, external_id: str) -> int:
    with g.sessions() as s:
        return int(s.scalars(select(Subject.id).where(Subject.external_id == external_id)).one())


def test_counts_follow_every_gallery_write(gallery: Gallery) -> None:
    g = gallery
    # a batch over three collections, photos with a bystander face and one with no subject
    batch = [
        _photo(g, "a1", "a", faces=2),
        _photo(g, "b1", "b"),
        _photo(g, "a2", "a", who="pat"),
        _photo(g, "c1", "c", faces=3, subject=None),
        _photo(g, "b2", "b", faces=2, subject=1, who="pat-b"),
        _photo(g, "a3", "a", who="pat"),
    ]
    g.add_photos(batch)
    assert _counts(g) == {"a": 3, "b": 2}
    g.add_photos([_photo(g, "a1", "a"), _photo(g, "c2", "c")])  # a duplicate, a new one
    assert _counts(g) == {"a": 3, "b": 2, "c": 1}
    add_random_photo(g, np.random.default_rng(1), "single")  # collection "crash"
    with g.sessions() as s:
        crash = repo.collection_ids(s, ["crash"])[0]
        assert repo.stored_searchable_counts(s)[crash] == 1
    g.delete_photo(batch[0].sha256)  # its subject face and its bystander
    assert _counts(g) == {"a": 2, "b": 2, "c": 1}
    g.delete_subject("s-b1", collection="b")
    assert _counts(g) == {"a": 2, "b": 1, "c": 1}
    g.delete_photo(batch[3].sha256)  # no subject face: nothing changes
    assert _counts(g) == {"a": 2, "b": 1, "c": 1}
    g.delete_collection("c")
    assert _counts(g) == {"a": 2, "b": 1}
    # a merge across collections moves faces to another subject, not another collection
    source, target = _subject(g, "pat-b"), _subject(g, "pat")
    with transaction(g.sessions) as s:
        merge = links.merge_subjects(s, source_id=source, target_id=target, note="", merged_by="t")
    assert _counts(g) == {"a": 2, "b": 1}
    with transaction(g.sessions) as s:
        links.undo_merge(s, merge_id=merge.id, note="", undone_by="t")
    assert _counts(g) == {"a": 2, "b": 1}
    g.delete_photo(batch[5].sha256)
    assert _counts(g) == {"a": 1, "b": 1}
    with g.sessions() as s:  # a collection without searchable faces keeps no row
        assert s.scalar(select(CollectionFaceCount.collection_id).where(
            CollectionFaceCount.searchable <= 0)) is None  # fmt: skip
        assert repo.stored_searchable_counts(s)[crash] == 1


def test_counts_follow_writes_made_outside_facetrace(gallery: Gallery) -> None:
    """The database keeps them (triggers), so SQL written by another program counts too."""
    g = gallery
    g.add_photos([_photo(g, "a1", "a", faces=2), _photo(g, "b1", "b")])
    with g.sessions() as s:
        a, b = repo.collection_ids(s, ["a"])[0], repo.collection_ids(s, ["b"])[0]
        bystander = s.scalars(select(FaceRow).where(FaceRow.is_subject.is_(False))).one()
        row = {
            c.name: getattr(bystander, c.key) for c in FaceRow.__table__.columns if c.name != "id"
        }
    with transaction(g.sessions) as s:
        s.execute(update(FaceRow).where(FaceRow.id == bystander.id).values(is_subject=True))
    assert _counts(g) == {"a": 2, "b": 1}
    with transaction(g.sessions) as s:
        s.execute(update(FaceRow).where(FaceRow.id == bystander.id).values(collection_id=b))
    assert _counts(g) == {"a": 1, "b": 2}
    with transaction(g.sessions) as s:
        s.execute(update(FaceRow).where(FaceRow.id == bystander.id).values(is_subject=False))
        s.execute(insert(FaceRow).values({**row, "face_index": 5, "is_subject": True,
                                          "collection_id": a}))  # fmt: skip
    assert _counts(g) == {"a": 2, "b": 1}


_READS_FACES = re.compile(r"\bFROM face\b", re.IGNORECASE)
_BY_ID = re.compile(r"face\.id > |max\(face\.id\)|face\.id IN ", re.IGNORECASE)


def _statements(during: object) -> list[str]:
    seen: list[str] = []

    def record(_c: object, _cur: object, statement: str, *_: object) -> None:
        seen.append(" ".join(statement.split()))

    event.listen(Engine, "before_cursor_execute", record)
    try:
        assert callable(during)
        during()
    finally:
        event.remove(Engine, "before_cursor_execute", record)
    return seen


def test_a_clean_open_counts_no_face(gallery: Gallery) -> None:
    """After a clean close the open reads the kept counts, the faces above the watermark
    and the highest face id: no statement counts, groups or lists the gallery's faces."""
    g = gallery
    g.add_photos([_photo(g, f"p{i}", "ab"[i % 2], faces=2) for i in range(12)])
    g.add_photos([_photo(g, f"q{i}", "a", who="twice") for i in range(3)])  # a template
    g.save_index()
    opened: list[Gallery] = []
    seen = _statements(lambda: opened.append(Gallery.open(g.data_dir, database=g.database)))
    again = opened[0]
    try:
        assert again.last_repair["mode"] == "watermark", again.last_repair
        assert "collections_compared" not in again.last_repair
        assert again.templates.count == 1  # the templates are loaded all the same
    finally:
        again.close()
    faces = [st for st in seen if _READS_FACES.search(st)]
    assert faces, "the open read no face at all: the test saw nothing"
    assert [st for st in faces if not _BY_ID.search(st)] == []
    assert not [st for st in seen if re.search(r"count\(", st) and "FROM face" in st]
    assert any("collection_face_count" in st for st in seen)


def test_counts_found_wrong_are_corrected_once(gallery: Gallery) -> None:
    """Kept counts that differ from the faces (written while the triggers were missing)
    make the open compare that collection id by id, which also corrects the count."""
    g = gallery
    g.add_photos([_photo(g, f"p{i}", "a") for i in range(5)])
    g.save_index()
    with transaction(g.sessions) as s:
        s.execute(update(CollectionFaceCount).values(searchable=CollectionFaceCount.searchable + 3))
    with Gallery.open(g.data_dir, database=g.database) as again:
        assert again.last_repair["collections_compared"] == 1, again.last_repair
        assert again.last_repair["added"] == 0 and again.last_repair["removed"] == 0
        assert _counts(again) == {"a": 5}
    with Gallery.open(g.data_dir, database=g.database) as third:
        assert "collections_compared" not in third.last_repair, third.last_repair
