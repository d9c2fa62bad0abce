"""Unknown persons of a case: its probes' faces (photos and video persons) grouped by
who they show, so each person is searched, reviewed and notified once.

The grouping is the one of ``facetrace group`` (average linkage on the neighbour graph
at the calibrated threshold of :data:`facetrace.grouping.folder.DEFAULT_FMR`, or stricter
where few true pairs stand beside the expected look-alikes), computed
from the vectors kept with the probe faces, under the people's decisions recorded for
the case: faces someone marked as the same person (must-link) always end in one
group, faces marked as different people (cannot-link) never do, whatever a later
grouping would have found (:mod:`facetrace.grouping.constraints`). The grouping itself
stores nothing; the decisions are rows (:class:`CaseFaceDecision`), audited, revoked
with a note, never deleted.

Adopting a group makes its *template* (the normalised mean of its faces' vectors) a
searchable face of the case, origin ``person``, on the probe of its best face: it is
then searched, reviewed and identified like any probe face, and remembers its members.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import numpy as np
import numpy.typing as npt
from sqlalchemy import select
from sqlalchemy.orm import Session

from facetrace import fields
from facetrace.calibration import packaged_calibration
from facetrace.errors import InvalidRequest, NotFound
from facetrace.grouping.cluster import cluster_for_precision
from facetrace.grouping.constraints import Constraints
from facetrace.grouping.folder import DEFAULT_FMR
from facetrace.grouping.graph import edge_threshold, fmr_for_size, neighbour_graph
from facetrace.service import audit
from facetrace.service.accounts import Actor, Perm, require
from facetrace.service.cases import require_open, scoped_case
from facetrace.service.searches import FaceOrigin, FoundFace, add_probe_faces
from facetrace.store.service_models import (
    Case,
    CaseFaceDecision,
    Probe,
    ProbeFaceRow,
    Search,
    utcnow,
)

log = logging.getLogger(__name__)

#: Used when the model has no calibration table (an ArcFace model): its 1:1 threshold.
UNCALIBRATED_THRESHOLD = 0.35
#: Faces one decision may name (a whole group confirmed at once).
MAX_DECISION_FACES = 500

FaceRef = tuple[int, int]
"""A face of a case as the API and pages name it: (probe id, face index)."""


class Decision(StrEnum):
    """What a person decided about faces of a case."""

    SAME = "same"  # must-link: one person
    DIFFERENT = "different"  # cannot-link: not one person


DECISION_LABELS = {
    Decision.SAME: "the same person",
    Decision.DIFFERENT: "different people",
}


@dataclass(frozen=True, slots=True)
class PersonFace:
    """One face of an unknown person: which probe, which face, how good."""

    probe_id: int
    face_index: int
    quality: float
    box: tuple[int, int, int, int]
    origin: str = "detected"
    face_id: int = 0


@dataclass(frozen=True, slots=True)
class Template:
    """An adopted person: its searchable template face and the searches made of it."""

    probe_id: int
    face_index: int
    members: frozenset[FaceRef]
    search_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class UnknownPerson:
    """A group of the case's faces that probably show one person (best face first).

    ``confirmed`` is true when people's decisions join every face of it (no grouping
    can split it); ``template`` is the adopted template whose members are exactly
    these faces, if any (searched already, or ready to be)."""

    number: int
    faces: tuple[PersonFace, ...]
    confirmed: bool = False
    template: Template | None = None

    @property
    def refs(self) -> list[FaceRef]:
        return [(f.probe_id, f.face_index) for f in self.faces]

    def as_dict(self) -> dict[str, object]:
        t = self.template
        return {
            "person": self.number,
            "confirmed": self.confirmed,
            "template": None
            if t is None
            else {
                "probe_id": t.probe_id,
                "face_index": t.face_index,
                "searches": list(t.search_ids),
            },
            "faces": [
                {
                    "probe_id": f.probe_id,
                    "face_index": f.face_index,
                    "origin": f.origin,
                    "quality": round(f.quality, 4),
                    "box": list(f.box),
                }
                for f in self.faces
            ],
        }


@dataclass(frozen=True, slots=True)
class DecisionView:
    """A decision in force (or revoked) with its two faces named as the pages do."""

    id: int
    decision: Decision
    a: FaceRef
    b: FaceRef
    note: str
    decided_by: str
    decided_at: datetime
    revoked_at: datetime | None

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "decision": str(self.decision),
            "faces": [list(self.a), list(self.b)],
            "note": self.note,
            "decided_by": self.decided_by,
            "decided_at": self.decided_at.isoformat(),
            "revoked_at": None if self.revoked_at is None else self.revoked_at.isoformat(),
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


def _decisions(session: Session, case_id: int) -> list[CaseFaceDecision]:
    """The case's decisions in force, oldest first."""
    return list(
        session.scalars(
            select(CaseFaceDecision)
            .where(CaseFaceDecision.case_id == case_id, CaseFaceDecision.revoked_at.is_(None))
            .order_by(CaseFaceDecision.id)
        )
    )


def _constraints(rows: list[ProbeFaceRow], decisions: list[CaseFaceDecision]) -> Constraints:
    """The decisions as node pairs of ``rows`` (decisions on faces no longer grouped,
    purged ones, are left out)."""
    node = {r.id: i for i, r in enumerate(rows)}
    same: list[tuple[int, int]] = []
    different: list[tuple[int, int]] = []
    for d in decisions:
        if d.face_a in node and d.face_b in node:
            pair = (node[d.face_a], node[d.face_b])
            (same if d.decision == Decision.SAME else different).append(pair)
    return Constraints.of(same, different)


def group_case(
    session: Session, *, actor: Actor, case_id: int, fmr: float = DEFAULT_FMR
) -> list[UnknownPerson]:
    """The case's unknown persons under its decisions, the largest first; faces of one
    model only."""
    case = scoped_case(session, actor=actor, case_id=case_id, perm=Perm.RESULTS_VIEW)
    rows = _case_faces(session, case.id)
    models = {r.model_id for r in rows}
    if len(models) > 1:
        raise InvalidRequest(f"the case's faces come from several models ({sorted(models)})")
    if not rows:
        return []
    model = models.pop()
    calibration = packaged_calibration(model)
    floor = edge_threshold(
        calibration, fmr_for_size(fmr, len(rows)), fallback=UNCALIBRATED_THRESHOLD
    )
    constraints = _constraints(rows, _decisions(session, case.id))
    vectors = _vectors(rows)
    graph = neighbour_graph(vectors, min_score=floor)
    labels, _ = cluster_for_precision(
        graph, floor=floor, calibration=calibration, vectors=vectors, constraints=constraints
    )
    bound = constraints.components(len(rows))
    templates = {t.members: t for t in _templates(session, case)}
    persons: list[UnknownPerson] = []
    for g in range(int(labels.max()) + 1):
        nodes = np.flatnonzero(labels == g)
        members = sorted((rows[i] for i in nodes), key=lambda r: -r.quality)
        faces = tuple(
            PersonFace(r.probe_id, r.face_index, r.quality, r.box, r.origin, r.id) for r in members
        )
        refs = frozenset((f.probe_id, f.face_index) for f in faces)
        persons.append(
            UnknownPerson(
                g + 1,
                faces,
                confirmed=len(nodes) > 1 and np.unique(bound[nodes]).size == 1,
                template=templates.get(refs),
            )
        )
    return persons


def _templates(session: Session, case: Case) -> list[Template]:
    """The case's adopted persons, each with the searches of its template face."""
    faces = session.execute(
        select(ProbeFaceRow)
        .join(Probe, Probe.id == ProbeFaceRow.probe_id)
        .where(Probe.case_id == case.id, ProbeFaceRow.origin == str(FaceOrigin.PERSON))
        .order_by(ProbeFaceRow.id)
    ).scalars()
    searched: dict[FaceRef, list[int]] = {}
    for s in session.scalars(select(Search).where(Search.case_id == case.id).order_by(Search.id)):
        searched.setdefault((s.probe_id, s.face_index), []).append(s.id)
    out = []
    for f in faces:
        members = frozenset(
            (int(m["probe_id"]), int(m["face_index"])) for m in f.extra.get("person", [])
        )
        out.append(
            Template(
                f.probe_id,
                f.face_index,
                members,
                tuple(searched.get((f.probe_id, f.face_index), [])),
            )
        )
    return out


def _faces_of(session: Session, case: Case, faces: list[FaceRef]) -> list[ProbeFaceRow]:
    """The case's groupable faces named by ``faces``, in that order (NotFound when one is
    not a face of this case with a vector)."""
    wanted = [(int(p), int(i)) for p, i in faces]
    by_ref = {(r.probe_id, r.face_index): r for r in _case_faces(session, case.id)}
    missing = [ref for ref in wanted if ref not in by_ref]
    if missing:
        p, i = missing[0]
        raise NotFound(f"probe {p} face {i + 1} is not a face of this case that can be grouped")
    return [by_ref[ref] for ref in wanted]


def adopt_person(
    session: Session, *, actor: Actor, case_id: int, faces: list[FaceRef]
) -> ProbeFaceRow:
    """Make a group of the case's faces (``(probe_id, face_index)`` pairs) one searchable
    template face (audited as a probe face added, origin ``person``, its members kept in
    the face's ``extra``). The same group adopted again gives back its template.
    Returns the probe face (search it like any other)."""
    case = scoped_case(session, actor=actor, case_id=case_id, perm=Perm.SEARCH)
    wanted = {(int(p), int(i)) for p, i in faces}
    if not wanted:
        raise InvalidRequest("a person needs at least one face")
    rows = _faces_of(session, case, sorted(wanted))
    if len({r.model_id for r in rows}) > 1:
        raise InvalidRequest("those faces come from several models")
    for t in _templates(session, case):
        if t.members == wanted:
            probe = session.get(Probe, t.probe_id)
            assert probe is not None  # a template's probe is the case's (rows above)
            return next(f for f in probe.faces if f.face_index == t.face_index)
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


def _may_decide(actor: Actor) -> None:
    """Investigators (who search) and reviewers (who review) both decide on groups."""
    if not actor.can(Perm.REVIEW):
        require(actor, Perm.SEARCH)


def decide(
    session: Session,
    *,
    actor: Actor,
    case_id: int,
    decision: str,
    faces: list[FaceRef],
    note: str = "",
) -> list[CaseFaceDecision]:
    """Record that the first of ``faces`` is the same person as (``same``) or a
    different person from (``different``) each of the others; audited.

    Every later grouping of the case obeys it. Pairs already decided the same way are
    not recorded twice; a decision that contradicts those in force (two faces joined by
    "same person" decisions marked as different people, or the reverse) is refused
    with :class:`~facetrace.errors.Conflict` and nothing is recorded. Returns the new
    decision rows.
    """
    case = scoped_case(session, actor=actor, case_id=case_id, perm=Perm.RESULTS_VIEW)
    _may_decide(actor)
    require_open(case)
    try:
        kind = Decision(decision)
    except ValueError as exc:
        raise InvalidRequest("the decision is 'same' (one person) or 'different'") from exc
    why = fields.check(fields.Note, note, field="note").strip()
    refs = [(int(p), int(i)) for p, i in faces]
    if len(refs) < 2:
        raise InvalidRequest("a decision names at least two faces")
    if len(refs) > MAX_DECISION_FACES:
        raise InvalidRequest(f"a decision names at most {MAX_DECISION_FACES} faces")
    if len(set(refs)) != len(refs):
        raise InvalidRequest("a face is named twice")
    chosen = _faces_of(session, case, refs)
    rows = _case_faces(session, case.id)
    node = {r.id: i for i, r in enumerate(rows)}
    existing = _decisions(session, case.id)
    done = {(d.decision, min(d.face_a, d.face_b), max(d.face_a, d.face_b)) for d in existing}
    first, others = chosen[0], chosen[1:]
    new = [
        CaseFaceDecision(
            case_id=case.id,
            face_a=first.id,
            face_b=o.id,
            decision=kind.value,
            note=why,
            decided_by=actor.id,
        )
        for o in others
        if (kind.value, min(first.id, o.id), max(first.id, o.id)) not in done
    ]
    # refused before anything is written when it contradicts the decisions in force
    pairs = [(node[d.face_a], node[d.face_b]) for d in new]
    base = _constraints(rows, existing)
    if kind == Decision.SAME:
        merged = Constraints.of(
            np.concatenate([base.must_link, _as_pairs(pairs)]), base.cannot_link
        )
    else:
        merged = Constraints.of(
            base.must_link, np.concatenate([base.cannot_link, _as_pairs(pairs)])
        )
    merged.components(len(rows))
    if not new:
        return []
    session.add_all(new)
    session.flush()
    audit.append(
        session,
        actor=actor.username,
        action=audit.Action.PERSON_DECISION,
        target=f"case:{case.id}",
        detail={
            "decision": kind.value,
            "face": [first.probe_id, first.face_index],
            "others": [[o.probe_id, o.face_index] for o in others],
            "decisions": [d.id for d in new],
            "note": why,
        },
    )
    return new


def _as_pairs(pairs: list[tuple[int, int]]) -> npt.NDArray[np.int64]:
    return np.asarray(pairs, dtype=np.int64).reshape(-1, 2)


def revoke(
    session: Session, *, actor: Actor, case_id: int, decision_id: int, note: str
) -> CaseFaceDecision:
    """Revoke a decision in force (it stays in the record, marked revoked); audited.
    A note saying why is required."""
    case = scoped_case(session, actor=actor, case_id=case_id, perm=Perm.RESULTS_VIEW)
    _may_decide(actor)
    require_open(case)
    why = fields.check(fields.Note, note, field="note").strip()
    if not why:
        raise InvalidRequest("say why the decision is revoked (kept in the audit log)")
    row = session.get(CaseFaceDecision, decision_id)
    if row is None or row.case_id != case.id:
        raise NotFound(f"no decision {decision_id} in this case")
    if row.revoked_at is not None:
        raise InvalidRequest(f"decision {decision_id} was revoked already")
    row.revoked_at = utcnow()
    row.revoked_by = actor.id
    row.revoke_note = why
    session.flush()
    audit.append(
        session,
        actor=actor.username,
        action=audit.Action.PERSON_DECISION_REVOKE,
        target=f"case:{case.id}",
        detail={"decision_id": row.id, "decision": row.decision, "note": why},
    )
    return row


def case_decisions(session: Session, *, actor: Actor, case_id: int) -> list[DecisionView]:
    """The case's decisions in force, oldest first, their faces named."""
    case = scoped_case(session, actor=actor, case_id=case_id, perm=Perm.RESULTS_VIEW)
    rows = _decisions(session, case.id)
    ids = {d.face_a for d in rows} | {d.face_b for d in rows}
    ref = {
        f.id: (f.probe_id, f.face_index)
        for f in session.scalars(select(ProbeFaceRow).where(ProbeFaceRow.id.in_(sorted(ids))))
    }
    return [
        DecisionView(
            d.id,
            Decision(d.decision),
            ref[d.face_a],
            ref[d.face_b],
            d.note,
            d.decider.username,
            d.decided_at,
            d.revoked_at,
        )
        for d in rows
    ]
