"""Probes and searches: a probe photo kept with its case, the faces found in it, and
the searches of those faces with their candidate lists (snapshots, audited with the
case's purpose and legal basis). The engine is reached only through
:class:`FaceSearcher`, so this module knows nothing of models or indexes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy.orm import Session, sessionmaker

from facetrace.errors import InvalidRequest, NotFound, RateLimited, RuleViolation
from facetrace.service import audit
from facetrace.service.accounts import Actor, Perm, require
from facetrace.service.cases import scoped_case
from facetrace.service.collections import searchable_collections
from facetrace.store.service_models import Case, Probe, Search, SearchCandidate

# --- the engine, as this layer sees it --------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProbeFace:
    """A face found in a probe photo: box (x1, y1, x2, y2) in pixels, quality 0..1,
    dlib's five landmarks as (x, y) pixels (empty when unknown)."""

    index: int
    box: tuple[int, int, int, int]
    quality: float
    quality_reasons: tuple[str, ...] = ()
    landmarks: tuple[tuple[float, float], ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form stored with the probe."""
        return {
            "index": self.index,
            "box": list(self.box),
            "quality": round(self.quality, 4),
            "quality_reasons": list(self.quality_reasons),
            "landmarks": [[round(x, 1), round(y, 1)] for x, y in self.landmarks],
        }


@dataclass(frozen=True, slots=True)
class FoundCandidate:
    """One candidate returned by the engine, with its provenance."""

    rank: int
    score: float
    false_match_rate: float | None  # None when the gallery has no calibration
    above_threshold: bool
    subject_external_id: str
    subject_name: str
    face_id: int
    photo_id: int
    box: tuple[int, int, int, int]
    quality: float
    collection: str
    legal_basis: str
    source_url: str
    source_title: str
    captured_date: str


@dataclass(frozen=True, slots=True)
class ScoreEvidence:
    """What a search's scores rest on, kept with the search so its page can say how far
    the evidence goes: the impostor pairs the false-match table was measured on (rates
    below one in that many are extrapolations), the gallery size and false-alarm target
    that set the threshold, the 1:1 verification threshold, and the threshold the same
    target gives for other gallery sizes (``examples``: (subjects, threshold) pairs)."""

    impostor_pairs: int | None
    calibration_source: str
    gallery_subjects: int
    fpir: float
    verify_threshold: float
    examples: tuple[tuple[int, float], ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form stored with the search."""
        return {
            "impostor_pairs": self.impostor_pairs,
            "calibration_source": self.calibration_source,
            "gallery_subjects": self.gallery_subjects,
            "fpir": self.fpir,
            "verify_threshold": self.verify_threshold,
            "examples": [[n, round(t, 4)] for n, t in self.examples],
        }


@dataclass(frozen=True, slots=True)
class FaceResult:
    """The engine's answer for one probe face."""

    face: ProbeFace
    threshold: float
    candidates: tuple[FoundCandidate, ...]
    below_threshold: tuple[FoundCandidate, ...] = field(default=())
    evidence: ScoreEvidence | None = None


class FaceSearcher(Protocol):
    """What the service needs from the engine (see :mod:`facetrace.gallery_port`)."""

    def find_faces(self, data: bytes, *, source: str) -> tuple[int, int, list[ProbeFace]]:
        """Decode a photo and return (width, height, faces); raises ImageError/NoFaceFound."""
        ...

    def search_face(
        self,
        data: bytes,
        *,
        source: str,
        face: int,
        force: bool,
        collections: Sequence[str] | None,
    ) -> FaceResult:
        """Search face number ``face`` of a photo; raises LowQualityFace unless ``force``."""
        ...


# --- probes and searches ----------------------------------------------------------------


def add_probe(
    session: Session,
    *,
    actor: Actor,
    case_id: int,
    data: bytes,
    filename: str,
    found: tuple[int, int, list[ProbeFace]],
) -> Probe:
    """Keep a probe photo with its case (never in the gallery) with the faces the engine
    found in it (``found`` = width, height, faces from :meth:`FaceSearcher.find_faces`,
    called before so no database lock is held while the models run)."""
    case = scoped_case(session, actor=actor, case_id=case_id, perm=Perm.SEARCH)
    width, height, faces = found
    probe = Probe(
        case_id=case.id,
        sha256=hashlib.sha256(data).hexdigest(),
        filename=filename[:300],
        data=data,
        width=width,
        height=height,
        faces=[f.as_dict() for f in faces],
        uploaded_by=actor.id,
    )
    session.add(probe)
    session.flush()
    return probe


def get_probe(session: Session, *, actor: Actor, probe_id: int) -> Probe:
    """A probe of one of the actor's department's cases."""
    probe = session.get(Probe, probe_id)
    if probe is None:
        raise NotFound(f"no probe {probe_id}")
    scoped_case(session, actor=actor, case_id=probe.case_id, perm=Perm.RESULTS_VIEW)
    return probe


def search_input(session: Session, *, actor: Actor, probe_id: int, face: int) -> tuple[bytes, str]:
    """The photo bytes and file name to search face ``face`` of a probe, after checking
    the actor may search this case and the photo still exists."""
    probe = session.get(Probe, probe_id)
    if probe is None:
        raise NotFound(f"no probe {probe_id}")
    scoped_case(session, actor=actor, case_id=probe.case_id, perm=Perm.SEARCH)
    if probe.data is None:
        raise RuleViolation("this probe photo was deleted at the end of its retention period")
    if not 0 <= face < len(probe.faces):
        raise InvalidRequest(f"face {face} requested; the photo has {len(probe.faces)} faces")
    return probe.data, probe.filename


def record_search(
    session: Session,
    *,
    actor: Actor,
    probe_id: int,
    face: int,
    force: bool,
    result: FaceResult,
) -> Search:
    """Keep the engine's candidate list for a probe face as a snapshot with the case and
    audit the search with the case's purpose and legal basis."""
    probe = session.get(Probe, probe_id)
    if probe is None:
        raise NotFound(f"no probe {probe_id}")
    case = scoped_case(session, actor=actor, case_id=probe.case_id, perm=Perm.SEARCH)
    search = Search(
        case_id=case.id,
        probe_id=probe.id,
        user_id=actor.id,
        face_index=face,
        box=list(result.face.box),
        quality=result.face.quality,
        quality_reasons=list(result.face.quality_reasons),
        threshold=result.threshold,
        no_candidate=not result.candidates,
        forced=force,
        evidence=result.evidence.as_dict() if result.evidence else {},
    )
    session.add(search)
    session.flush()
    shown = list(result.candidates) + list(result.below_threshold)
    for c in shown:
        session.add(
            SearchCandidate(
                search_id=search.id,
                rank=c.rank,
                score=c.score,
                false_match_rate=c.false_match_rate,
                above_threshold=c.above_threshold,
                subject_external_id=c.subject_external_id,
                subject_name=c.subject_name,
                face_id=c.face_id,
                photo_id=c.photo_id,
                box=list(c.box),
                quality=c.quality,
                collection=c.collection,
                legal_basis=c.legal_basis,
                source_url=c.source_url,
                source_title=c.source_title,
                captured_date=c.captured_date,
            )
        )
    session.flush()
    session.refresh(search)
    audit.append(
        session,
        actor=actor.username,
        action=audit.Action.SEARCH,
        target=f"case:{case.id}",
        detail={
            "search": search.id,
            "case_number": case.number,
            "purpose": case.purpose,
            "legal_basis": case.legal_basis,
            "probe_sha256": probe.sha256,
            "face": face,
            "forced": force,
            "candidates": len(result.candidates),
        },
    )
    return search


def run_search(
    session: Session,
    *,
    actor: Actor,
    probe_id: int,
    face: int,
    force: bool,
    searcher: FaceSearcher,
    collections: Sequence[str] | None = None,
) -> Search:
    """:func:`search_input`, the engine, then :func:`record_search`, in one session."""
    data, filename = search_input(session, actor=actor, probe_id=probe_id, face=face)
    result = searcher.search_face(
        data, source=filename, face=face, force=force, collections=collections
    )
    return record_search(
        session, actor=actor, probe_id=probe_id, face=face, force=force, result=result
    )


def get_search(session: Session, *, actor: Actor, search_id: int) -> tuple[Case, Search]:
    """A search and its case, audited as a view of results."""
    search = session.get(Search, search_id)
    if search is None:
        raise NotFound(f"no search {search_id}")
    case = scoped_case(session, actor=actor, case_id=search.case_id, perm=Perm.RESULTS_VIEW)
    audit.append(
        session,
        actor=actor.username,
        action=audit.Action.VIEW_RESULTS,
        target=f"search:{search.id}",
        detail={"case": case.id},
    )
    return case, search


class Limiter(Protocol):
    """A per-user rate limit (see :class:`facetrace.server.ratelimit.RateLimiter`)."""

    def hit(self, key: str) -> float | None:
        """Count one event for ``key``; None when allowed, else the seconds to wait."""
        ...


def store_probe(
    session: Session,
    *,
    actor: Actor,
    case_id: int,
    data: bytes,
    filename: str,
    searcher: FaceSearcher,
) -> Probe:
    """Find the faces of a probe photo, then keep it with its case (committed, so a
    search that follows can read it). The engine runs before the first database
    statement, so no lock is held meanwhile."""
    require(actor, Perm.SEARCH)
    filename = Path(filename or "probe").name
    found = searcher.find_faces(data, source=filename)
    probe = add_probe(
        session, actor=actor, case_id=case_id, data=data, filename=filename, found=found
    )
    session.commit()
    return probe


def search_probe(
    session: Session,
    *,
    actor: Actor,
    probe_id: int,
    face: int,
    force: bool,
    searcher: FaceSearcher,
    sessions: sessionmaker[Session],
    limiter: Limiter,
) -> Search:
    """Search one face of a stored probe (rate limited per user; raises RateLimited).
    Commits the session's work so far, reads the probe in a short transaction of its
    own, runs the engine holding no database lock, then records the result in
    ``session``."""
    require(actor, Perm.SEARCH)
    wait = limiter.hit(actor.username)
    if wait is not None:
        raise RateLimited(wait)
    session.commit()
    with sessions.begin() as s:
        data, filename = search_input(s, actor=actor, probe_id=probe_id, face=face)
        scope = searchable_collections(s, actor=actor)
    result = searcher.search_face(data, source=filename, face=face, force=force, collections=scope)
    return record_search(
        session, actor=actor, probe_id=probe_id, face=face, force=force, result=result
    )
