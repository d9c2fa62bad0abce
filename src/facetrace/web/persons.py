"""The "unknown persons" page of a case: its probes' faces grouped by who they show,
the decisions that correct the grouping, and the search of a person as one face."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from facetrace.errors import InvalidRequest
from facetrace.fields import Id
from facetrace.server.deps import CurrentActor, Db, Limits, Searching, State
from facetrace.service import case_groups, cases, reviews, searches
from facetrace.service.accounts import Perm
from facetrace.web.render import back, form_mode, page

router = APIRouter()


def _refs(values: list[str]) -> list[case_groups.FaceRef]:
    """Faces as the page's forms send them: ``"probe_id:face_index"``."""
    out = []
    for v in values:
        probe, sep, index = v.partition(":")
        if not sep or not probe.isdigit() or not index.isdigit():
            raise InvalidRequest(f"not a face of the case: {v!r}")
        out.append((int(probe), int(index)))
    return out


def _url(case_id: int, anchor: str = "") -> str:
    return f"/cases/{case_id}/persons" + (f"#{anchor}" if anchor else "")


@router.get("/cases/{case_id}/persons", response_class=HTMLResponse)
def persons_page(request: Request, case_id: Id, actor: CurrentActor, db: Db) -> HTMLResponse:
    """Every unknown person of the case with its faces, and the decisions in force."""
    case = cases.get_case(db, actor=actor, case_id=case_id)
    persons = case_groups.group_case(db, actor=actor, case_id=case.id)
    decisions = case_groups.case_decisions(db, actor=actor, case_id=case.id)
    shown = [f.probe_id for p in persons for f in p.faces]
    shown += [ref[0] for d in decisions for ref in (d.a, d.b)]
    searches.audit_probes_shown(
        db, actor=actor, case_id=case.id, target=f"case:{case.id}", probes=shown,
        page="unknown persons",
    )  # fmt: skip
    # each person is identified on its own, through a search of its template
    identified = {
        i.candidate.search_id: i.candidate.subject_name or i.candidate.subject_external_id
        for i in reviews.identifications(db, case=case)
    }
    return page(
        request,
        "persons.html",
        actor,
        case=case,
        persons=persons,
        decisions=decisions,
        identified=identified,
        labels=case_groups.DECISION_LABELS,
        can_decide=(actor.can(Perm.SEARCH) or actor.can(Perm.REVIEW)) and cases.is_active(case),
        can_search=actor.can(Perm.SEARCH) and cases.is_active(case),
        fmr=case_groups.DEFAULT_FMR,
    )


@router.post("/cases/{case_id}/persons/decide")
def decide(
    case_id: Id,
    actor: CurrentActor,
    db: Db,
    decision: Annotated[str, Form()],
    face: Annotated[list[str], Form()],
    note: Annotated[str, Form()] = "",
) -> Response:
    """The first face is the same person as (or a different person from) the others."""
    new = case_groups.decide(
        db, actor=actor, case_id=case_id, decision=decision, faces=_refs(face), note=note
    )
    if not new:
        return back(_url(case_id), "That was decided already; nothing changed.")
    said = case_groups.DECISION_LABELS[case_groups.Decision(decision)]
    return back(_url(case_id), f"Recorded as {said}; every grouping of this case keeps it.")


@router.post("/cases/{case_id}/persons/decisions/{decision_id}/revoke")
def revoke(
    case_id: Id,
    decision_id: Id,
    actor: CurrentActor,
    db: Db,
    note: Annotated[str, Form()] = "",
) -> Response:
    """Revoke a decision; the grouping goes back to what the faces alone say."""
    case_groups.revoke(db, actor=actor, case_id=case_id, decision_id=decision_id, note=note)
    return back(_url(case_id, "decisions"), f"Decision {decision_id} revoked.")


@router.post("/cases/{case_id}/persons/search")
def search_person(
    case_id: Id,
    actor: CurrentActor,
    db: Db,
    state: State,
    limits: Limits,
    searcher: Searching,
    face: Annotated[list[str], Form()],
    force: Annotated[bool, Form()] = False,
    mode: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    """Search a person as one template face (the mean of its faces), then review it; in
    ``mode`` (empty: the gallery's choice). A bad mode is refused before anything is kept."""
    chosen = form_mode(mode)
    row = case_groups.adopt_person(db, actor=actor, case_id=case_id, faces=_refs(face))
    search = searches.search_probe(
        db,
        actor=actor,
        probe_id=row.probe_id,
        face=row.face_index,
        force=force,
        searcher=searcher,
        sessions=state.sessions,
        limiter=limits,
        mode=chosen,
    )
    return back(
        f"/searches/{search.id}",
        f"Searched as one person from {len(face)} face{'s' if len(face) != 1 else ''}.",
    )
