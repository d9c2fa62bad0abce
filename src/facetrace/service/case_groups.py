"""Unknown persons of a case: its probes' faces (photos and video persons) grouped by
who they show, so each person is searched, reviewed and notified once.

The grouping is the one of ``facetrace group`` (average linkage on the neighbour graph
at the calibrated threshold of :data:`facetrace.grouping.folder.DEFAULT_FMR`), computed
from the vectors kept with the probe faces; it stores nothing. Adopting a group makes
its *template* (the normalised mean of its faces' vectors) a searchable face of the
case, origin ``person``, on the probe of its best face: it is then searched, reviewed
and identified like any probe face, and remembers its members.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sqlalchemy import select
from sqlalchemy.orm import Session

from facetrace.calibration import packaged_calibration
from facetrace.errors import InvalidRequest, NotFound
from facetrace.grouping.cluster import cluster
from facetrace.grouping.folder import DEFAULT_FMR
from facetrace.grouping.graph import build_index, edge_threshold, knn_graph
from facetrace.service.accounts import Actor, Perm
from facetrace.service.cases import scoped_case
from facetrace.service.searches import FaceOrigin, FoundFace, add_probe_faces
from facetrace.store.service_models import Probe, ProbeFaceRow

log = logging.getLogger(__name__)

#: Used when the model has no calibration table (an ArcFace model): its 1:1 threshold.
UNCALIBRATED_THRESHOLD = 0.35


@dataclass(frozen=True, slots=True)
class PersonFace:
    """One face of an unknown person: which probe, which face, how good."""

    probe_id: int
    face_index: int
    quality: float
    box: tuple[int, int, int, int]


@dataclass(frozen=True, slots=True)
class UnknownPerson:
    """A group of the case's faces that probably show one person (best face first)."""

    number: int
    faces: tuple[PersonFace, ...]

    def as_dict(self) -> dict[str, object]:
        return {
            "person": self.number,
            "faces": [
                {
                    "probe_id": f.probe_id,
                    "face_index": f.face_index,
                    "quality": round(f.quality, 4),
                    "box": list(f.box),
                }
                for f in self.faces
            ],
        }


def _case_faces(session: Session, case_id: int) -> list[ProbeFaceRow]:
    """The case's probe faces with a vector, templates of earlier groups left out."""
    stmt = (
        select(ProbeFaceRow)
        .join(Probe, Probe.id == ProbeFaceRow.probe_id)
        .where(
            Probe.case_id == case_id,
            ProbeFaceRow.vector.is_not(None),
            ProbeFaceRow.origin != str(FaceOrigin.PERSON),
        )
        .order_by(ProbeFaceRow.probe_id, ProbeFaceRow.face_index)
    )
    return list(session.scalars(stmt))


def _vectors(rows: list[ProbeFaceRow]) -> npt.NDArray[np.float32]:
    return np.stack([np.frombuffer(r.vector or b"", dtype=np.float32) for r in rows])


def group_case(
    session: Session, *, actor: Actor, case_id: int, fmr: float = DEFAULT_FMR
) -> list[UnknownPerson]:
    """The case's unknown persons, the largest first; faces of one model only."""
    case = scoped_case(session, actor=actor, case_id=case_id, perm=Perm.RESULTS_VIEW)
    rows = _case_faces(session, case.id)
    models = {r.model_id for r in rows}
    if len(models) > 1:
        raise InvalidRequest(f"the case's faces come from several models ({sorted(models)})")
    if not rows:
        return []
    model = models.pop()
    threshold = edge_threshold(packaged_calibration(model), fmr, fallback=UNCALIBRATED_THRESHOLD)
    vectors = _vectors(rows)
    graph = knn_graph(build_index(vectors), vectors, min_score=threshold)
    labels = cluster(graph, threshold=threshold, vectors=vectors)
    persons: list[UnknownPerson] = []
    for g in range(int(labels.max()) + 1):
        members = sorted((rows[i] for i in np.flatnonzero(labels == g)), key=lambda r: -r.quality)
        persons.append(
            UnknownPerson(
                g + 1,
                tuple(PersonFace(r.probe_id, r.face_index, r.quality, r.box) for r in members),
            )
        )
    return persons


def adopt_person(
    session: Session, *, actor: Actor, case_id: int, faces: list[tuple[int, int]]
) -> ProbeFaceRow:
    """Make a group of the case's faces (``(probe_id, face_index)`` pairs) one searchable
    template face (audited as a probe face added, origin ``person``, its members kept in
    the face's ``extra``). Returns the new probe face (search it like any other)."""
    case = scoped_case(session, actor=actor, case_id=case_id, perm=Perm.SEARCH)
    wanted = {(int(p), int(i)) for p, i in faces}
    if not wanted:
        raise InvalidRequest("a person needs at least one face")
    rows = [r for r in _case_faces(session, case.id) if (r.probe_id, r.face_index) in wanted]
    if len(rows) != len(wanted):
        raise NotFound("some of those faces are not faces of this case with a vector")
    if len({r.model_id for r in rows}) > 1:
        raise InvalidRequest("those faces come from several models")
    best = max(rows, key=lambda r: r.quality)
    mean = _vectors(rows).astype(np.float64).sum(axis=0)
    template = (mean / np.linalg.norm(mean)).astype(np.float32)
    members = [{"probe_id": r.probe_id, "face_index": r.face_index} for r in rows]
    face = FoundFace(
        box=best.box,
        landmarks=tuple((float(x), float(y)) for x, y in best.landmarks),
        detector_score=None,
        quality=float(best.quality),
        quality_reasons=tuple(best.quality_reasons),
        vector=template,
        model_id=best.model_id,
        extra={"person": members},
    )
    (row,) = add_probe_faces(
        session, actor=actor, probe_id=best.probe_id, faces=[face], origin=FaceOrigin.PERSON
    )
    return row
