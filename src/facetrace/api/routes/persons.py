"""Unknown persons of a case: its probes' faces grouped by who they show, people's
"same person" / "different people" decisions on them, and the search of a person as
one template face (then reviewed and identified like any search)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from facetrace.api.routes.cases import MODE_HELP, SearchOut, search_json
from facetrace.config import SearchMode
from facetrace.fields import Id, Index, Note
from facetrace.server.deps import CurrentActor, Db, Limits, Searching, State
from facetrace.service import case_groups, searches

router = APIRouter(tags=["persons"])

MAX_FACES = case_groups.MAX_DECISION_FACES


class FaceRefIn(BaseModel):
    """A face of the case: its probe and its face number on that probe."""

    probe_id: Id
    face_index: Index


class PersonFaceOut(BaseModel):
    """One face of an unknown person."""

    probe_id: int
    face_index: int
    origin: searches.FaceOrigin
    quality: float = Field(description="0 (unusable) to 1 (best)")
    box: tuple[int, int, int, int] = Field(description="x1, y1, x2, y2 in pixels")


class TemplateOut(BaseModel):
    """The person's searchable template face (the mean of its faces) and its searches."""

    probe_id: int
    face_index: int
    searches: list[int]


class PersonOut(BaseModel):
    """Faces of the case that probably show one person, best face first."""

    person: int = Field(description="number in this grouping (the largest person is 1)")
    confirmed: bool = Field(description="people's decisions join every face of it")
    template: TemplateOut | None
    faces: list[PersonFaceOut]


class DecisionOut(BaseModel):
    """A decision in force: two faces are the same person, or different people."""

    id: int
    decision: case_groups.Decision
    faces: tuple[FaceRefIn, FaceRefIn]
    note: str
    decided_by: str
    decided_at: datetime


class PersonsOut(BaseModel):
    """The case's unknown persons under its decisions, and the decisions."""

    persons: list[PersonOut]
    decisions: list[DecisionOut]


class DecisionIn(BaseModel):
    """The first face is the same person as (``same``), or a different person from
    (``different``), each of the others."""

    decision: case_groups.Decision
    faces: list[FaceRefIn] = Field(min_length=2, max_length=MAX_FACES)
    note: Note = ""


class DecidedOut(BaseModel):
    """The decision rows recorded (none when it was recorded before)."""

    ids: list[int]


class RevokedOut(BaseModel):
    """The decision revoked."""

    id: int


class RevokeIn(BaseModel):
    """Why the decision no longer holds (kept in the audit log)."""

    note: Note


class PersonSearchIn(BaseModel):
    """The faces of one person, searched as one template."""

    faces: list[FaceRefIn] = Field(min_length=1, max_length=MAX_FACES)
    force: bool = Field(False, description="search a template below the minimum quality")
    mode: SearchMode | None = Field(None, description=MODE_HELP)


def _refs(faces: list[FaceRefIn]) -> list[case_groups.FaceRef]:
    return [(f.probe_id, f.face_index) for f in faces]


def _ref(ref: case_groups.FaceRef) -> FaceRefIn:
    return FaceRefIn(probe_id=ref[0], face_index=ref[1])


def person_out(p: case_groups.UnknownPerson) -> PersonOut:
    """The public form of an unknown person."""
    t = p.template
    return PersonOut(
        person=p.number,
        confirmed=p.confirmed,
        template=None
        if t is None
        else TemplateOut(probe_id=t.probe_id, face_index=t.face_index, searches=list(t.search_ids)),
        faces=[
            PersonFaceOut(
                probe_id=f.probe_id,
                face_index=f.face_index,
                origin=searches.FaceOrigin(f.origin),
                quality=round(f.quality, 4),
                box=f.box,
            )
            for f in p.faces
        ],
    )


def decision_out(d: case_groups.DecisionView) -> DecisionOut:
    """The public form of a decision."""
    return DecisionOut(
        id=d.id,
        decision=d.decision,
        faces=(_ref(d.a), _ref(d.b)),
        note=d.note,
        decided_by=d.decided_by,
        decided_at=d.decided_at,
    )


@router.get("/cases/{case_id}/persons", response_model=PersonsOut)
def list_persons(case_id: Id, actor: CurrentActor, db: Db) -> PersonsOut:
    """The case's probe faces grouped into unknown persons (calibrated threshold, people's
    decisions obeyed), the largest first; computed afresh, nothing stored."""
    persons = case_groups.group_case(db, actor=actor, case_id=case_id)
    decisions = case_groups.case_decisions(db, actor=actor, case_id=case_id)
    return PersonsOut(
        persons=[person_out(p) for p in persons],
        decisions=[decision_out(d) for d in decisions],
    )


@router.post("/cases/{case_id}/persons/decisions", status_code=201, response_model=DecidedOut)
def decide(case_id: Id, body: DecisionIn, actor: CurrentActor, db: Db) -> DecidedOut:
    """Record a decision every later grouping obeys (audited); returns the new decision
    ids (none when it was recorded before). A contradiction is refused (409)."""
    rows = case_groups.decide(
        db,
        actor=actor,
        case_id=case_id,
        decision=body.decision,
        faces=_refs(body.faces),
        note=body.note,
    )
    return DecidedOut(ids=[r.id for r in rows])


@router.post("/cases/{case_id}/persons/decisions/{decision_id}/revoke", response_model=RevokedOut)
def revoke(case_id: Id, decision_id: Id, body: RevokeIn, actor: CurrentActor, db: Db) -> RevokedOut:
    """Revoke a decision (it stays in the record as revoked; audited)."""
    row = case_groups.revoke(
        db, actor=actor, case_id=case_id, decision_id=decision_id, note=body.note
    )
    return RevokedOut(id=row.id)


@router.post("/cases/{case_id}/persons/search", status_code=201, response_model=SearchOut)
def search_person(
    case_id: Id,
    body: PersonSearchIn,
    actor: CurrentActor,
    db: Db,
    state: State,
    limits: Limits,
    searcher: Searching,
) -> dict[str, Any]:
    """Search a person as one template face (adopted once, then reused): a vector search,
    reviewed and identified like any other."""
    row = case_groups.adopt_person(db, actor=actor, case_id=case_id, faces=_refs(body.faces))
    result = searches.search_probe(
        db,
        actor=actor,
        probe_id=row.probe_id,
        face=row.face_index,
        force=body.force,
        searcher=searcher,
        sessions=state.sessions,
        limiter=limits,
        mode=body.mode,
    )
    return search_json(result)
