"""The "possible duplicates" page for gallery administrators: pairs of subjects that
probably show one person, side by side, to merge or to mark as different people."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from facetrace.errors import InvalidRequest
from facetrace.fields import Id
from facetrace.server.deps import CurrentActor, Db, State
from facetrace.service import duplicates
from facetrace.web.render import back, page

router = APIRouter()

PAGE = "/admin/duplicates"


@router.get(PAGE, response_class=HTMLResponse)
def duplicates_page(
    request: Request, actor: CurrentActor, db: Db, state: State, fmr: float = 1e-4
) -> HTMLResponse:
    """The proposals of a fresh pass over the collections the admin may read."""
    pairs = duplicates.list_proposals(db, actor=actor, finder=state.gallery, fmr=fmr)
    return page(
        request,
        "duplicates.html",
        actor,
        pairs=pairs,
        fmr=fmr,
        merges=duplicates.recent_merges(db, actor=actor),
    )


@router.post(f"{PAGE}/decide")
def decide(
    actor: CurrentActor,
    db: Db,
    a: Annotated[Id, Form()],
    b: Annotated[Id, Form()],
    action: Annotated[str, Form()],
    note: Annotated[str, Form()] = "",
    score: Annotated[float | None, Form()] = None,
) -> Response:
    """A reviewer's decision on a pair: merge one into the other (``keep-a``: b's photos
    move to a; ``keep-b``: the reverse) or ``different`` people. A note is required."""
    if action == "different":
        duplicates.mark_different(db, actor=actor, subject_a=a, subject_b=b, note=note)
        return back(PAGE, "Recorded as different people; this pair will not be proposed again.")
    if action not in ("keep-a", "keep-b"):
        raise InvalidRequest(f"unknown decision {action!r}")
    source, target = (b, a) if action == "keep-a" else (a, b)
    row = duplicates.merge(
        db, actor=actor, source_id=source, target_id=target, note=note, score=score
    )
    return back(PAGE, f"Merged: {len(row.photo_ids)} photos moved (merge {row.id}, undo below).")


@router.post(PAGE + "/merges/{merge_id}/undo")
def undo(merge_id: Id, actor: CurrentActor, db: Db, note: Annotated[str, Form()] = "") -> Response:
    """Undo a merge: its photos go back to the subject they came from."""
    row = duplicates.undo(db, actor=actor, merge_id=merge_id, note=note)
    return back(PAGE, f"Merge {row.id} undone: {len(row.photo_ids)} photos moved back.")
