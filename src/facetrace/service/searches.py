"""Probes and searches: a probe kept with its case, the faces found in it (with their
vectors: the pipeline runs once per probe face, at upload or when a face is drawn), and
the searches of those faces, each a vector search, with their candidate lists (snapshots,
audited with the case's purpose and legal basis).

A search goes from here straight to the gallery (:class:`SearchGallery`, which
:class:`facetrace.gallery.directory.Gallery` satisfies) and from it to the index: the
part of the gallery an actor may search is decided here (:func:`search_scope`, a
permission rule) and handed down as the index's selector; the gallery's candidates
become this module's :class:`FoundCandidate`. Models run only in the
:class:`FaceAnalyser` (the service's worker processes), never under a lock or a
transaction.

The service API other parts build on: :func:`store_probe` (upload, faces found once),
:func:`add_manual_face` (a box the user drew), :func:`add_probe_faces` (any faces, e.g.
a video's persons with :attr:`FaceOrigin.TRACK`), :func:`search_probe` (face N of a
stored probe) and :func:`search_upload` (upload and search in one call).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import numpy as np
import numpy.typing as npt
from sqlalchemy.orm import Session, sessionmaker

from facetrace.config import ModePolicy, SearchMode
from facetrace.errors import (
    FaceIndexError,
    InvalidRequest,
    LowQualityFace,
    NoFaceFound,
    NotFound,
    RateLimited,
    RuleViolation,
)
from facetrace.index.base import Selector
from facetrace.service import audit
from facetrace.service.accounts import Actor, Perm, require
from facetrace.service.cases import require_open, scoped_case
from facetrace.service.collections import searchable_collections
from facetrace.store import repo
from facetrace.store.service_models import Case, Probe, ProbeFaceRow, Search, SearchCandidate
from facetrace.types import Face, Provenance

if TYPE_CHECKING:
    from facetrace.calibration import Calibration, ModeChoice
    from facetrace.gallery.directory import Candidate
    from facetrace.inference import Analysis
    from facetrace.vision.models import ModelDescriptor

FaceT = TypeVar("FaceT")

# --- the engine, as this layer sees it --------------------------------------------------


class FaceOrigin(StrEnum):
    """How a probe face came to be: found by the detector when the probe was uploaded,
    drawn by a user around a face the detector missed, or a person followed through a
    video (one searchable face per track), or the template of an unknown person grouped
    from several of the case's faces (:mod:`facetrace.service.case_groups`)."""

    DETECTED = "detected"
    MANUAL = "manual"
    TRACK = "track"
    PERSON = "person"


@dataclass(frozen=True, slots=True)
class FoundFace:
    """A face the engine found (or embedded inside a given box): what a probe face keeps.

    ``box`` is (x1, y1, x2, y2) in pixels of the upright photo (or video frame);
    ``landmarks`` dlib's five (x, y) points; ``vector`` the L2-normalised float32
    embedding of ``model_id``, shape (dim,). ``frame_index``, ``timestamp_s`` and
    ``extra`` describe a video person (its best frame, and the track).
    """

    box: tuple[int, int, int, int]
    landmarks: tuple[tuple[float, float], ...]
    detector_score: float | None
    quality: float
    quality_reasons: tuple[str, ...]
    vector: npt.NDArray[np.float32]
    model_id: str
    frame_index: int | None = None
    timestamp_s: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PhotoFaces:
    """A decoded photo's size and every face found in it, largest first."""

    width: int
    height: int
    faces: tuple[FoundFace, ...]


def found_face(face: Face) -> FoundFace:
    """The engine's face (in the photo's own coordinates) as a probe face keeps it."""
    d = face.detection
    x1, y1, x2, y2 = (round(float(v)) for v in d.box.as_list())
    return FoundFace(
        box=(x1, y1, x2, y2),
        landmarks=tuple((float(x), float(y)) for x, y in d.landmarks.as_array()),
        detector_score=float(d.score),
        quality=float(face.quality.score),
        quality_reasons=tuple(str(r) for r in face.quality.reasons),
        vector=np.asarray(face.vector, dtype=np.float32),
        model_id=face.model_id,
    )


def photo_faces(found: Analysis) -> PhotoFaces:
    """The analyser's answer for a photo as a probe keeps it."""
    return PhotoFaces(
        width=found.width, height=found.height, faces=tuple(found_face(f) for f in found.faces)
    )


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
    provenance: Provenance
    matched_by: str = "face"  # "template": the subject's template gave the score
    template_faces: int = 0  # the faces that template averages


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
    # how the mode was chosen (facetrace.calibration.ModeChoice.as_dict): chosen_by,
    # investigation_from, switch_source, expected_fnir, max_fnir
    mode: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form stored with the search."""
        return {
            "mode": dict(self.mode),
            "impostor_pairs": self.impostor_pairs,
            "calibration_source": self.calibration_source,
            "gallery_subjects": self.gallery_subjects,
            "fpir": self.fpir,
            "verify_threshold": self.verify_threshold,
            "examples": [[n, round(t, 4)] for n, t in self.examples],
        }


@dataclass(frozen=True, slots=True)
class VectorResult:
    """The gallery's answer for one probe vector, in its ``mode``
    (:class:`facetrace.config.SearchMode`): identification lists the candidates at or
    above the "no candidate" threshold and keeps the best few below it; investigation
    lists the ``k`` most similar, whatever their score (``threshold`` is identification's,
    for reference). With what the scores rest on."""

    threshold: float
    candidates: tuple[FoundCandidate, ...]
    below_threshold: tuple[FoundCandidate, ...] = field(default=())
    evidence: ScoreEvidence | None = None
    mode: SearchMode = SearchMode.IDENTIFICATION


class FaceAnalyser(Protocol):
    """The model work of a probe: decoding it and running detection, landmarks and
    embedding; the only part of a search that runs a model (the service's is
    :class:`facetrace.inference.ProbeAnalyser`: on worker processes, one per core,
    inside the decode budget, no lock held). Boxes and landmarks come back in the
    photo's own coordinates."""

    def analyse(self, data: bytes, *, source: str, detector: str | None = None) -> Analysis:
        """Decode a photo and find every face with its vector, largest first
        (``detector``: ``hog``, ``cnn`` or ``auto`` instead of the configured one;
        InvalidRequest for another name); raises ImageError."""
        ...

    def analyse_box(self, data: bytes, *, source: str, box: tuple[int, int, int, int]) -> Face:
        """Embed the face inside ``box`` (landmarks found in it); raises ImageError."""
        ...


class SearchGallery(Protocol):
    """What a search needs of the gallery; :class:`facetrace.gallery.directory.Gallery`
    is it. Every call is a read: the index on the shared side of the gallery's
    readers-writer lock, SQL in a short read transaction of its own."""

    @property
    def descriptor(self) -> ModelDescriptor:
        """The gallery's model (its id, dimension and 1:1 verification threshold)."""
        ...

    def subject_count(self) -> int:
        """Subjects in the gallery: the gallery size that sets the threshold."""
        ...

    def calibration(self) -> Calibration | None:
        """The score -> false-match-rate table, None for a model without one."""
        ...

    def choose_mode(
        self,
        requested: SearchMode | None,
        *,
        policy: ModePolicy,
        fpir: float,
        n_subjects: int | None = None,
    ) -> ModeChoice:
        """The mode of a search (``requested``, or by the gallery's size under ``policy``)."""
        ...

    def search_vectors(
        self,
        vectors: npt.NDArray[np.float32],
        *,
        k: int = 10,
        fpir: float = 0.01,
        selector: Selector | None = None,
        include_below: bool = False,
        templates: bool = True,
    ) -> list[tuple[float, list[Candidate], list[Candidate]]]:
        """(threshold, candidates above it, those below) per query vector, best first."""
        ...


@dataclass(frozen=True, slots=True)
class Searcher:
    """What a search runs on: the opened gallery, the probe analyser and the search
    settings (``k`` candidates per face; ``fpir`` the false-positive identification rate
    that sets the threshold; probe faces below ``min_quality`` need ``force``;
    ``mode_policy`` chooses the mode when a request names none). The service builds one
    from its settings (``ServiceState.searcher``)."""

    gallery: SearchGallery
    analyser: FaceAnalyser
    k: int = 10
    fpir: float = 0.01
    min_quality: float = 0.3
    mode_policy: ModePolicy = field(default_factory=ModePolicy)

    @property
    def model_id(self) -> str:
        """The gallery's model: stored probe vectors of another model are re-embedded."""
        return str(self.gallery.descriptor.model_id)


class Limiter(Protocol):
    """A rate limit on model runs and searches, checked before any photo is decoded (the
    service's is :class:`facetrace.server.ratelimit.ClientLimits`: per account and per
    client address)."""

    def hit(self, key: str) -> float | None:
        """Count one event for ``key``; None when allowed, else the seconds to wait."""
        ...


MIN_BOX_PX = 20  # a drawn box smaller than this holds too little face to search


# --- probes and their faces -------------------------------------------------------------


def _face_row(face: FoundFace, *, index: int, origin: FaceOrigin, by: int | None) -> ProbeFaceRow:
    x1, y1, x2, y2 = face.box
    return ProbeFaceRow(
        face_index=index,
        origin=str(origin),
        x1=x1,
        y1=y1,
        x2=x2,
        y2=y2,
        landmarks=[[round(x, 2), round(y, 2)] for x, y in face.landmarks],
        detector_score=face.detector_score,
        quality=face.quality,
        quality_reasons=list(face.quality_reasons),
        model_id=face.model_id,
        vector=np.asarray(face.vector, dtype=np.float32).tobytes(),
        frame_index=face.frame_index,
        timestamp_s=face.timestamp_s,
        extra=dict(face.extra),
        added_by=by,
    )


def add_probe(
    session: Session,
    *,
    actor: Actor,
    case_id: int,
    data: bytes,
    filename: str,
    found: PhotoFaces,
    kind: str = "photo",
) -> Probe:
    """Keep a probe with its case (never in the gallery) together with the faces the
    engine found in it (``found``, from :meth:`FaceAnalyser.analyse`, called before so
    that no database lock is held while the models run)."""
    case = scoped_case(session, actor=actor, case_id=case_id, perm=Perm.SEARCH)
    require_open(case)
    probe = Probe(
        case_id=case.id,
        kind=kind,
        sha256=hashlib.sha256(data).hexdigest(),
        filename=filename[:300],
        data=data,
        width=found.width,
        height=found.height,
        uploaded_by=actor.id,
    )
    probe.faces = [
        _face_row(f, index=i, origin=FaceOrigin.DETECTED, by=None)
        for i, f in enumerate(found.faces)
    ]
    session.add(probe)
    session.flush()
    return probe


def add_probe_faces(
    session: Session,
    *,
    actor: Actor,
    probe_id: int,
    faces: Sequence[FoundFace],
    origin: FaceOrigin,
) -> list[ProbeFaceRow]:
    """Add faces to a stored probe, numbered after the ones it has (a box drawn by the
    user, or a video's persons); audited. Returns the new rows."""
    probe = _probe_for(session, actor=actor, probe_id=probe_id, perm=Perm.SEARCH)
    require_open(probe_case(session, probe))
    start = max((f.face_index for f in probe.faces), default=-1) + 1
    by = actor.id if origin == FaceOrigin.MANUAL else None
    rows = [_face_row(f, index=start + i, origin=origin, by=by) for i, f in enumerate(faces)]
    probe.faces.extend(rows)
    session.flush()
    audit.append(
        session,
        actor=actor.username,
        action=audit.Action.PROBE_FACE_ADD,
        target=f"case:{probe.case_id}",
        detail={
            "probe": probe.id,
            "origin": str(origin),
            "faces": [{"index": r.face_index, "box": list(r.box)} for r in rows],
        },
    )
    return rows


def get_probe(session: Session, *, actor: Actor, probe_id: int) -> Probe:
    """A probe of one of the actor's department's cases."""
    return _probe_for(session, actor=actor, probe_id=probe_id, perm=Perm.RESULTS_VIEW)


def _probe_for(session: Session, *, actor: Actor, probe_id: int, perm: Perm) -> Probe:
    probe = session.get(Probe, probe_id)
    if probe is None:
        raise NotFound(f"no probe {probe_id}")
    scoped_case(session, actor=actor, case_id=probe.case_id, perm=perm)
    return probe


def _usable_probe(session: Session, *, actor: Actor, probe_id: int) -> Probe:
    """A probe the actor may search, of a case still open, whose photo still exists."""
    probe = _probe_for(session, actor=actor, probe_id=probe_id, perm=Perm.SEARCH)
    require_open(scoped_case(session, actor=actor, case_id=probe.case_id, perm=Perm.SEARCH))
    if probe.data is None:
        raise RuleViolation("this probe photo was deleted at the end of its retention period")
    return probe


def _pick(faces: Sequence[FaceT], face: int) -> FaceT:
    if not 0 <= face < len(faces):
        raise FaceIndexError(f"face {face} requested; the photo has {len(faces)} faces")
    return faces[face]


def _check_quality(quality: float, reasons: Sequence[str], *, force: bool, minimum: float) -> None:
    if not force and quality < minimum:
        raise LowQualityFace(quality, minimum, list(reasons))


def store_probe(
    session: Session,
    *,
    actor: Actor,
    case_id: int,
    data: bytes,
    filename: str,
    searcher: Searcher,
    limiter: Limiter,
    keep_without_faces: bool = False,
    detector: str | None = None,
) -> Probe:
    """Find the faces of a probe photo (the one pipeline run it gets), then keep it and
    them with its case, committed so a search that follows can read it. The case is
    checked first; the engine runs between two transactions, so no database lock is held
    meanwhile. A photo without a face raises NoFaceFound and is not kept, unless
    ``keep_without_faces`` (so a user can draw a box around a face the detector missed).
    Over the actor's rate limit (RateLimited) it is refused before the photo is decoded.
    ``detector`` chooses the face detector for this photo (default: the configured one).
    """
    require(actor, Perm.SEARCH)
    _limit(actor, limiter)
    filename = Path(filename or "probe").name
    scoped_case(session, actor=actor, case_id=case_id, perm=Perm.SEARCH)
    session.commit()
    found = photo_faces(searcher.analyser.analyse(data, source=filename, detector=detector))
    if not found.faces and not keep_without_faces:
        raise NoFaceFound(f"{filename}: no face was found in the photo")
    probe = add_probe(
        session, actor=actor, case_id=case_id, data=data, filename=filename, found=found
    )
    session.commit()
    return probe


def add_manual_face(
    session: Session,
    *,
    actor: Actor,
    probe_id: int,
    box: tuple[int, int, int, int],
    searcher: Searcher,
    limiter: Limiter,
) -> ProbeFaceRow:
    """Add a face the user drew around (``box`` = x1, y1, x2, y2 in pixels of the upright
    photo) to a stored probe: landmarks and vector are found inside the box, once; the
    new face is searched like any other. Refused (nothing run, nothing stored) for a box
    outside the photo or under :data:`MIN_BOX_PX`, or over the rate limit."""
    require(actor, Perm.SEARCH)
    _limit(actor, limiter)
    probe = _usable_probe(session, actor=actor, probe_id=probe_id)
    x1, y1, x2, y2 = box
    if not (0 <= x1 < x2 <= probe.width and 0 <= y1 < y2 <= probe.height):
        raise InvalidRequest(
            f"the box {list(box)} is not inside the {probe.width}x{probe.height} photo "
            "(give x1 < x2 and y1 < y2 in pixels)"
        )
    if min(x2 - x1, y2 - y1) < MIN_BOX_PX:
        raise InvalidRequest(f"the box is too small: draw at least {MIN_BOX_PX} pixels a side")
    data, filename = bytes(probe.data or b""), probe.filename
    session.commit()
    found = found_face(searcher.analyser.analyse_box(data, source=filename, box=box))
    return add_probe_faces(
        session, actor=actor, probe_id=probe_id, faces=[found], origin=FaceOrigin.MANUAL
    )[0]


# --- searches ---------------------------------------------------------------------------


def search_scope(session: Session, *, actor: Actor) -> Selector:
    """The part of the gallery the actor's searches cover, as the index's selector: the
    shared collections and those of the actor's own department (department isolation is
    this rule; the index applies it inside its search, never by over-fetching)."""
    names = searchable_collections(session, actor=actor)
    return Selector(groups=frozenset(repo.collection_ids(session, names)))


def _box(values: Any) -> tuple[int, int, int, int]:
    x1, y1, x2, y2 = (round(float(v)) for v in values)
    return x1, y1, x2, y2


def _found_candidate(c: Candidate) -> FoundCandidate:
    """The gallery's candidate as a search keeps it (NaN rates, where the gallery has no
    calibration, become None)."""
    i = c.info
    rate = float(c.false_match_rate)
    return FoundCandidate(
        rank=c.rank,
        score=float(c.score),  # numpy's float32 from the index
        false_match_rate=None if math.isnan(rate) else rate,
        above_threshold=bool(c.above_threshold),
        subject_external_id=i.subject_external_id,
        subject_name=i.subject_name,
        face_id=i.face_id,
        photo_id=i.photo_id,
        box=_box(i.box),
        quality=float(i.quality),
        provenance=i.provenance,
        matched_by=c.matched_by,
        template_faces=0 if c.template is None else c.template.n_faces,
    )


def _evidence(searcher: Searcher, *, n_subjects: int, mode: dict[str, Any]) -> ScoreEvidence:
    """The calibration's extent, the threshold's inputs and how the mode was chosen."""
    g, fpir = searcher.gallery, searcher.fpir
    cal = g.calibration()
    sizes = sorted({100, 1_000, 10_000, 100_000, 1_000_000, max(n_subjects, 1)})
    return ScoreEvidence(
        impostor_pairs=int(cal.impostor_pairs) if cal else None,
        calibration_source=str(cal.source) if cal else "",
        gallery_subjects=n_subjects,
        fpir=fpir,
        verify_threshold=float(g.descriptor.verify_threshold),
        examples=tuple((s, cal.threshold_for_fpir(fpir, s)) for s in sizes) if cal else (),
        mode=mode,
    )


def search_vector(
    searcher: Searcher,
    vector: npt.NDArray[np.float32],
    *,
    scope: Selector | None,
    mode: SearchMode | None = None,
) -> VectorResult:
    """The gallery's candidates for one probe vector within ``scope`` (from
    :func:`search_scope`; None: the whole gallery), in ``mode`` or the one the gallery
    chooses under the searcher's policy: identification keeps the best 3 below the
    threshold as look-alikes; investigation lists all ``k``, best first. An index read
    only: no model runs, no lock is held across it."""
    from facetrace.gallery.directory import listed

    gallery = searcher.gallery
    n = int(gallery.subject_count())
    how = gallery.choose_mode(mode, policy=searcher.mode_policy, fpir=searcher.fpir, n_subjects=n)
    ((threshold, above, below),) = gallery.search_vectors(
        np.asarray(vector, dtype=np.float32)[None, :],
        k=searcher.k,
        fpir=searcher.fpir,
        selector=scope,
        include_below=True,
    )
    investigating = how.mode == SearchMode.INVESTIGATION
    return VectorResult(
        threshold=float(threshold),
        candidates=tuple(_found_candidate(c) for c in listed(above, below, how.mode)),
        below_threshold=() if investigating else tuple(_found_candidate(c) for c in below[:3]),
        evidence=_evidence(searcher, n_subjects=n, mode=how.as_dict()),
        mode=how.mode,
    )


def _candidate_row(search_id: int, c: FoundCandidate) -> SearchCandidate:
    return SearchCandidate(
        search_id=search_id,
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
        provenance=c.provenance,
        matched_by=c.matched_by,
        template_faces=c.template_faces,
    )


def record_search(
    session: Session,
    *,
    actor: Actor,
    probe_id: int,
    face: int,
    force: bool,
    result: VectorResult,
) -> Search:
    """Keep the engine's candidate list for a probe face as a snapshot with the case and
    audit the search with the case's purpose and legal basis."""
    probe = _probe_for(session, actor=actor, probe_id=probe_id, perm=Perm.SEARCH)
    case = probe_case(session, probe)
    require_open(case)
    searched = _pick(probe.faces, face)
    search = Search(
        case_id=case.id,
        probe_id=probe.id,
        user_id=actor.id,
        face_index=face,
        box=list(searched.box),
        quality=searched.quality,
        quality_reasons=list(searched.quality_reasons),
        threshold=result.threshold,
        no_candidate=not result.candidates,
        forced=force,
        mode=str(result.mode),
        evidence=result.evidence.as_dict() if result.evidence else {},
    )
    session.add(search)
    session.flush()
    for c in list(result.candidates) + list(result.below_threshold):
        session.add(_candidate_row(search.id, c))
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
            "mode": str(result.mode),
            "candidates": len(result.candidates),
        },
    )
    return search


def probe_case(session: Session, probe: Probe) -> Case:
    """The case a probe belongs to."""
    case = session.get(Case, probe.case_id)
    if case is None:  # a foreign key holds it; only a damaged database gets here
        raise NotFound(f"no case {probe.case_id}")
    return case


def _limit(actor: Actor, limiter: Limiter) -> None:
    wait = limiter.hit(actor.username)
    if wait is not None:
        raise RateLimited(wait)


def search_probe(
    session: Session,
    *,
    actor: Actor,
    probe_id: int,
    face: int,
    force: bool,
    searcher: Searcher,
    sessions: sessionmaker[Session],
    limiter: Limiter,
    mode: SearchMode | None = None,
) -> Search:
    """Search face ``face`` of a stored probe: a vector search, no model runs; in
    ``mode``, or (None) the one the gallery chooses by its size.

    Refused before anything else runs and with nothing stored: over the actor's rate
    limit (RateLimited), a face number the probe does not have (FaceIndexError), a face
    below the minimum quality unless ``force`` (LowQualityFace). Commits the session's
    work so far, reads the face in a short transaction of its own, searches holding no
    database lock, then records the result in ``session``. A face stored before vectors
    were kept (or under another model) is embedded once from the stored photo first.
    """
    require(actor, Perm.SEARCH)
    _limit(actor, limiter)
    session.commit()
    with sessions.begin() as s:
        probe = _usable_probe(s, actor=actor, probe_id=probe_id)
        row = _pick(probe.faces, face)
        _check_quality(row.quality, row.quality_reasons, force=force, minimum=searcher.min_quality)
        scope = search_scope(s, actor=actor)
        vector = None if row.model_id != searcher.model_id else _vector(row.vector)
        data, filename, box = probe.data, probe.filename, row.box
    if vector is None:  # stored before vectors were kept: embed it once, keep it
        found = found_face(
            searcher.analyser.analyse_box(bytes(data or b""), source=filename, box=box)
        )
        vector = found.vector
        stored = _probe_for(session, actor=actor, probe_id=probe_id, perm=Perm.SEARCH)
        again = _pick(stored.faces, face)
        again.vector = np.asarray(vector, dtype=np.float32).tobytes()
        again.model_id = found.model_id
        again.landmarks = [[round(x, 2), round(y, 2)] for x, y in found.landmarks]
    result = search_vector(searcher, vector, scope=scope, mode=mode)
    return record_search(
        session, actor=actor, probe_id=probe_id, face=face, force=force, result=result
    )


def _vector(data: bytes | None) -> npt.NDArray[np.float32] | None:
    return None if data is None else np.frombuffer(data, dtype=np.float32).copy()


def search_upload(
    session: Session,
    *,
    actor: Actor,
    case_id: int,
    data: bytes,
    filename: str,
    face: int | None,
    force: bool,
    searcher: Searcher,
    sessions: sessionmaker[Session],
    limiter: Limiter,
    detector: str | None = None,
    mode: SearchMode | None = None,
) -> Search:
    """Upload a probe photo and search one of its faces in one call: one pipeline run
    (with ``detector``, default the configured one), then a vector search (in ``mode``,
    default the gallery's choice); the probe, its faces and the search are stored
    together.

    Refused with nothing stored: over the rate limit (before any model runs), a photo
    without a face (NoFaceFound), several faces and no ``face`` (InvalidRequest listing
    them), a face number the photo does not have (FaceIndexError), a face below the
    minimum quality unless ``force`` (LowQualityFace).
    """
    require(actor, Perm.SEARCH)
    _limit(actor, limiter)
    filename = Path(filename or "probe").name
    with sessions.begin() as s:
        scoped_case(s, actor=actor, case_id=case_id, perm=Perm.SEARCH)
        scope = search_scope(s, actor=actor)
    session.commit()
    found = photo_faces(searcher.analyser.analyse(data, source=filename, detector=detector))
    if not found.faces:
        raise NoFaceFound(f"{filename}: no face was found in the photo")
    if face is None:
        if len(found.faces) > 1:
            listed = ", ".join(f"{i}: box {list(f.box)}" for i, f in enumerate(found.faces))
            raise InvalidRequest(
                f"the photo has {len(found.faces)} faces; pass face=N (0 = largest): {listed}. "
                "To search several of them, keep the photo as a probe of the case once and "
                "search each face from it"
            )
        face = 0
    chosen = _pick(found.faces, face)
    _check_quality(
        chosen.quality, chosen.quality_reasons, force=force, minimum=searcher.min_quality
    )
    result = search_vector(searcher, chosen.vector, scope=scope, mode=mode)
    probe = add_probe(
        session, actor=actor, case_id=case_id, data=data, filename=filename, found=found
    )
    return record_search(
        session, actor=actor, probe_id=probe.id, face=face, force=force, result=result
    )


def get_search(
    session: Session, *, actor: Actor, search_id: int, audited: bool = True
) -> tuple[Case, Search]:
    """A search and its case, audited as a view of results (the probe and every
    candidate's reference photo listed in the one entry), unless ``audited`` is false
    (the caller audits what it shows with :func:`audit_results_view`)."""
    search = session.get(Search, search_id)
    if search is None:
        raise NotFound(f"no search {search_id}")
    case = scoped_case(session, actor=actor, case_id=search.case_id, perm=Perm.RESULTS_VIEW)
    if audited:
        audit_results_view(
            session,
            actor=actor,
            case=case,
            search=search,
            photos=[c.photo_id for c in search.candidates],
        )
    return case, search


def audit_results_view(
    session: Session,
    *,
    actor: Actor,
    case: Case,
    search: Search,
    photos: Sequence[int],
    view: str = "results",
) -> None:
    """One entry for a view of a search's results: the probe and the reference photos
    shown with them, so their images need no entry each (``audit.covered``)."""
    detail: dict[str, object] = {
        "case": case.id,
        "probes": [search.probe_id],
        "photos": sorted(set(photos)),
    }
    if view != "results":
        detail["view"] = view
    audit.append(
        session,
        actor=actor.username,
        action=audit.Action.VIEW_RESULTS,
        target=f"search:{search.id}",
        detail=detail,
    )


def view_probe_image(session: Session, *, actor: Actor, probe_id: int, view: str) -> Probe:
    """A probe whose image (``face``, ``photo``, ``aligned``) is about to be shown,
    audited as a view of the probe photo unless a page the actor just viewed lists it."""
    probe = get_probe(session, actor=actor, probe_id=probe_id)
    if not audit.covered(session, actor=actor.username, probe=probe.id):
        audit.append(
            session,
            actor=actor.username,
            action=audit.Action.VIEW_PROBE,
            target=f"probe:{probe.id}",
            detail={"case": probe.case_id, "view": view, "probes": [probe.id]},
        )
    return probe


def audit_probes_shown(
    session: Session, *, actor: Actor, case_id: int, target: str, probes: Sequence[int], page: str
) -> None:
    """One entry for a page that shows probe photos (a probe, a case, its persons),
    listing them, so their images need no entry each. Nothing for a page with none."""
    listed = sorted(set(probes))
    if not listed:
        return
    audit.append(
        session,
        actor=actor.username,
        action=audit.Action.VIEW_PROBE,
        target=target,
        detail={"case": case_id, "view": page, "probes": listed},
    )
