"""Probe faces: found once when the probe is uploaded, kept with it, each searched as a
vector; refused searches run no model and store nothing; faces can be drawn later or
added as a video's persons. The searches run on a real gallery of two subjects in the
test's database (SQLite and PostgreSQL), counted; the probes' faces come from the
counting analyser of tests.fakes (the API tests run the same flow on the real models)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from facetrace.errors import (
    FaceIndexError,
    InvalidRequest,
    LowQualityFace,
    NoFaceFound,
    RateLimited,
    RuleViolation,
)
from facetrace.gallery.directory import Gallery, NewPhoto
from facetrace.inference import Analysis
from facetrace.server.ratelimit import RateLimiter
from facetrace.service import cases, searches
from facetrace.service.accounts import Actor, Role
from facetrace.store.db import Database
from facetrace.store.repo import PhotoRecord
from facetrace.store.service_models import AuditEntry, Probe, ProbeFaceRow, Search
from facetrace.types import Provenance
from tests.fakes import FixedAnalyser, face, model_runs, searches_run
from tests.service.conftest import make_user


class CountingGallery(Gallery):
    """The real gallery, counting the searches that reach its index."""

    searches = 0

    def search_vectors(self, vectors: Any, **kw: Any) -> Any:
        self.searches += 1
        return super().search_vectors(vectors, **kw)


@pytest.fixture()
def searcher(database: Database, tmp_path: Path) -> Iterator[searches.Searcher]:
    """The service's searcher on a real gallery sharing the test's database: subject s-1
    has the probes' face, s-2 one far from it, both in a shared collection."""
    gallery = CountingGallery.open(tmp_path / "gallery", database=database)
    model, dim = gallery.descriptor.model_id, gallery.descriptor.dim
    gallery.add_photos(
        [
            NewPhoto(
                sha256=f"{i + 1:064x}",
                width=100,
                height=100,
                faces=[face((10, 10, 90, 90), 0.9, vector=v, model_id=model)],
                subject_face=0,
                record=PhotoRecord(f"s-{i + 1}", f"s-{i + 1}", Provenance("shared", "Art. 6")),
            )
            for i, v in enumerate(np.eye(2, dim, dtype=np.float32))
        ]
    )
    try:
        yield searches.Searcher(
            gallery=gallery, analyser=FixedAnalyser(model, dim), min_quality=0.3
        )
    finally:
        gallery.close()


def _case(factory: sessionmaker[Session], inv: Actor) -> int:
    with factory.begin() as s:
        return cases.create_case(
            s,
            actor=inv,
            number="P-1",
            purpose="identify_deceased",
            legal_basis="Art. 6",
            retention_days=30,
        ).id


def _count(factory: sessionmaker[Session], model: type[object]) -> int:
    with factory() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)  # type: ignore[arg-type]


def _searches_audited(factory: sessionmaker[Session]) -> int:
    with factory() as s:
        stmt = select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "search")
        return int(s.scalar(stmt) or 0)


def _store(factory: sessionmaker[Session], inv: Actor, searcher: searches.Searcher) -> int:
    case_id = _case(factory, inv)
    with factory() as s:
        probe = searches.store_probe(
            s,
            actor=inv,
            case_id=case_id,
            data=b"photo",
            filename="p.jpg",
            searcher=searcher,
            limiter=RateLimiter(limit=100),
        )
        return probe.id


def _search(
    factory: sessionmaker[Session],
    inv: Actor,
    searcher: searches.Searcher,
    probe_id: int,
    face: int,
    *,
    force: bool = False,
    limiter: RateLimiter | None = None,
) -> int:
    with factory() as s:
        search = searches.search_probe(
            s,
            actor=inv,
            probe_id=probe_id,
            face=face,
            force=force,
            searcher=searcher,
            sessions=factory,
            limiter=limiter or RateLimiter(limit=100),
        )
        s.commit()
        return search.id


def test_faces_are_found_once_and_each_searched_as_a_vector(
    sessions: sessionmaker[Session], searcher: searches.Searcher
) -> None:
    inv = make_user(sessions, "inv", {Role.INVESTIGATOR})
    probe_id = _store(sessions, inv, searcher)
    assert model_runs(searcher) == 1
    with sessions() as s:
        probe = s.get(Probe, probe_id)
        assert probe is not None and probe.kind == "photo"
        faces = probe.faces
        assert [f.face_index for f in faces] == [0, 1]
        assert faces[0].origin == "detected" and faces[0].model_id == searcher.model_id
        assert faces[0].box == (10, 10, 110, 110) and len(faces[0].landmarks) == 5
        stored = np.frombuffer(faces[0].vector or b"", dtype=np.float32)
        assert stored.shape == (searcher.gallery.descriptor.dim,) and stored[0] == 1.0
    _search(sessions, inv, searcher, probe_id, 0)
    _search(sessions, inv, searcher, probe_id, 0)
    _search(sessions, inv, searcher, probe_id, 1, force=True)
    assert model_runs(searcher) == 1 and searches_run(searcher) == 3
    with sessions() as s:
        rows = list(s.scalars(select(Search).order_by(Search.id)))
        assert [r.face_index for r in rows] == [0, 0, 1]
        assert rows[2].box == [200, 10, 300, 110] and rows[2].forced
        assert len(rows[0].candidates) == 2
        best, other = sorted(rows[0].candidates, key=lambda c: c.rank)
        assert (best.subject_external_id, best.above_threshold) == ("s-1", True)
        assert (other.subject_external_id, other.above_threshold) == ("s-2", False)
    assert _searches_audited(sessions) == 3


def test_refused_searches_run_nothing_and_store_nothing(
    sessions: sessionmaker[Session], searcher: searches.Searcher
) -> None:
    inv = make_user(sessions, "inv", {Role.INVESTIGATOR})
    probe_id = _store(sessions, inv, searcher)
    with pytest.raises(FaceIndexError):
        _search(sessions, inv, searcher, probe_id, 7)
    with pytest.raises(LowQualityFace):
        _search(sessions, inv, searcher, probe_id, 1)  # quality 0.2, not forced
    spent = RateLimiter(limit=1)
    spent.hit(inv.username)
    with pytest.raises(RateLimited):
        _search(sessions, inv, searcher, probe_id, 0, limiter=spent)
    assert model_runs(searcher) == 1 and searches_run(searcher) == 0
    assert _count(sessions, Search) == 0 and _searches_audited(sessions) == 0


def _upload(
    factory: sessionmaker[Session],
    inv: Actor,
    searcher: searches.Searcher,
    case_id: int,
    *,
    face: int | None,
    force: bool = False,
    limiter: RateLimiter | None = None,
) -> int:
    with factory() as s:
        search = searches.search_upload(
            s,
            actor=inv,
            case_id=case_id,
            data=b"photo",
            filename="p.jpg",
            face=face,
            force=force,
            searcher=searcher,
            sessions=factory,
            limiter=limiter or RateLimiter(limit=100),
        )
        s.commit()
        return search.id


def test_upload_and_search_refusals_store_nothing(
    sessions: sessionmaker[Session], searcher: searches.Searcher
) -> None:
    inv = make_user(sessions, "inv", {Role.INVESTIGATOR})
    case_id = _case(sessions, inv)
    spent = RateLimiter(limit=1)
    spent.hit(inv.username)
    with pytest.raises(RateLimited):
        _upload(sessions, inv, searcher, case_id, face=0, limiter=spent)
    assert model_runs(searcher) == 0  # refused before the photo reached a model
    with pytest.raises(InvalidRequest, match="pass face=N"):
        _upload(sessions, inv, searcher, case_id, face=None)  # two faces, none chosen
    with pytest.raises(FaceIndexError):
        _upload(sessions, inv, searcher, case_id, face=2)
    with pytest.raises(LowQualityFace):
        _upload(sessions, inv, searcher, case_id, face=1)
    assert searches_run(searcher) == 0
    assert _count(sessions, Probe) == 0 and _count(sessions, Search) == 0
    assert _searches_audited(sessions) == 0
    search_id = _upload(sessions, inv, searcher, case_id, face=1, force=True)
    assert model_runs(searcher) == 4 and searches_run(searcher) == 1  # one run per upload
    with sessions() as s:
        search = s.get(Search, search_id)
        assert search is not None and search.face_index == 1
        probe = s.get(Probe, search.probe_id)
        assert probe is not None and len(probe.faces) == 2  # every face kept for later


def test_a_photo_without_a_face_is_not_kept_unless_asked(
    sessions: sessionmaker[Session], searcher: searches.Searcher
) -> None:
    class NoFaces(FixedAnalyser):
        def analyse(self, data: bytes, *, source: str, detector: str | None = None) -> Analysis:
            self.model_runs += 1
            return Analysis(640, 480, ())

    inv = make_user(sessions, "inv", {Role.INVESTIGATOR})
    case_id = _case(sessions, inv)
    with sessions() as s, pytest.raises(NoFaceFound):
        searches.store_probe(
            s,
            actor=inv,
            case_id=case_id,
            data=b"x",
            filename="p.jpg",
            searcher=replace(searcher, analyser=NoFaces()),
            limiter=RateLimiter(limit=100),
        )
    assert _count(sessions, Probe) == 0
    with sessions() as s:
        probe = searches.store_probe(
            s,
            actor=inv,
            case_id=case_id,
            data=b"x",
            filename="p.jpg",
            searcher=replace(searcher, analyser=NoFaces()),
            limiter=RateLimiter(limit=100),
            keep_without_faces=True,
        )
        assert probe.faces == []


def test_a_drawn_box_becomes_a_searchable_face(
    sessions: sessionmaker[Session], searcher: searches.Searcher
) -> None:
    inv = make_user(sessions, "inv", {Role.INVESTIGATOR})
    probe_id = _store(sessions, inv, searcher)
    for bad in [(600, 10, 700, 110), (10, 10, 15, 15), (50, 50, 40, 90)]:
        with sessions() as s, pytest.raises(InvalidRequest):
            searches.add_manual_face(
                s,
                actor=inv,
                probe_id=probe_id,
                box=bad,
                searcher=searcher,
                limiter=RateLimiter(limit=100),
            )
    assert model_runs(searcher) == 1
    with sessions() as s:
        row = searches.add_manual_face(
            s,
            actor=inv,
            probe_id=probe_id,
            box=(300, 200, 400, 320),
            searcher=searcher,
            limiter=RateLimiter(limit=100),
        )
        s.commit()
        assert row.face_index == 2 and row.origin == "manual" and row.added_by == inv.id
    assert model_runs(searcher) == 2
    _search(sessions, inv, searcher, probe_id, 2)
    assert model_runs(searcher) == 2 and searches_run(searcher) == 1
    with sessions() as s:
        stmt = select(AuditEntry).where(AuditEntry.action == "probe_face_add")
        assert '"origin":"manual"' in s.scalars(stmt).one().detail


def test_video_persons_fit_the_same_model(
    sessions: sessionmaker[Session], searcher: searches.Searcher
) -> None:
    inv = make_user(sessions, "inv", {Role.INVESTIGATOR})
    probe_id = _store(sessions, inv, searcher)
    person = searches.FoundFace(
        box=(20, 30, 120, 150),
        landmarks=((0.0, 0.0),) * 5,
        detector_score=0.8,
        quality=0.9,
        quality_reasons=(),
        vector=np.eye(1, searcher.gallery.descriptor.dim, 1, dtype=np.float32)[0],
        model_id=searcher.model_id,
        frame_index=41,
        timestamp_s=1.37,
        extra={"track": 3, "frames": [30, 41, 52]},
    )
    with sessions.begin() as s:
        (row,) = searches.add_probe_faces(
            s, actor=inv, probe_id=probe_id, faces=[person], origin=searches.FaceOrigin.TRACK
        )
        assert row.face_index == 2 and row.added_by is None
    with sessions() as s:
        stored = s.scalars(select(ProbeFaceRow).where(ProbeFaceRow.face_index == 2)).one()
        assert stored.origin == "track" and stored.frame_index == 41
        assert stored.extra == {"track": 3, "frames": [30, 41, 52]}
    _search(sessions, inv, searcher, probe_id, 2)
    assert model_runs(searcher) == 1


def test_a_face_stored_without_a_vector_is_embedded_once(
    sessions: sessionmaker[Session], searcher: searches.Searcher
) -> None:
    inv = make_user(sessions, "inv", {Role.INVESTIGATOR})
    probe_id = _store(sessions, inv, searcher)
    with sessions.begin() as s:  # as the migration leaves faces kept before vectors were
        face = s.scalars(select(ProbeFaceRow).where(ProbeFaceRow.face_index == 0)).one()
        face.vector, face.model_id, face.landmarks = None, "", []
    _search(sessions, inv, searcher, probe_id, 0)
    assert model_runs(searcher) == 2
    _search(sessions, inv, searcher, probe_id, 0)
    assert model_runs(searcher) == 2 and searches_run(searcher) == 2
    with sessions() as s:
        face = s.scalars(select(ProbeFaceRow).where(ProbeFaceRow.face_index == 0)).one()
        assert (
            face.model_id == searcher.model_id
            and face.vector is not None
            and len(face.landmarks) == 5
        )


def test_retention_purge_takes_the_vectors_with_the_photo(
    sessions: sessionmaker[Session], searcher: searches.Searcher
) -> None:
    from datetime import UTC, datetime, timedelta

    inv = make_user(sessions, "inv", {Role.INVESTIGATOR})
    probe_id = _store(sessions, inv, searcher)
    with sessions.begin() as s:
        assert cases.purge_due(s, now=datetime.now(UTC) + timedelta(days=31)) == 1
    with sessions() as s:
        probe = s.get(Probe, probe_id)
        assert probe is not None and probe.data is None
        assert all(f.vector is None and f.landmarks == [] for f in probe.faces)
        assert [f.box for f in probe.faces] == [(10, 10, 110, 110), (200, 10, 300, 110)]
    with pytest.raises(RuleViolation):
        _search(sessions, inv, searcher, probe_id, 0)
