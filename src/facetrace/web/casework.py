"""Cases, probes, searches, results, reviews, identification and notifications."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from facetrace.config import SearchMode
from facetrace.errors import InvalidRequest, LowQualityFace, NotFound
from facetrace.fields import Coordinate, Id, Index
from facetrace.server.deps import CurrentActor, Db, Limits, Searching, State, probe_from_upload
from facetrace.server.state import ServiceState
from facetrace.service import (
    cases,
    collections,
    notifications,
    queue,
    reviews,
    searches,
    timeline,
    videos,
)
from facetrace.service.accounts import Actor, Perm
from facetrace.service.searches import Limiter
from facetrace.store.service_models import (
    Case,
    Identification,
    Probe,
    Review,
    Search,
    SearchCandidate,
)
from facetrace.web.render import back, form_mode, page

router = APIRouter()


@router.get("/cases", response_class=HTMLResponse)
def case_list(request: Request, actor: CurrentActor, db: Db, show: str = "open") -> HTMLResponse:
    """The department's cases still worked (or the closed ones: the archive), and the
    form to open one."""
    closed = show == "closed"
    return page(
        request,
        "cases.html",
        actor,
        cases=cases.list_cases(db, actor=actor, closed=closed),
        show="closed" if closed else "open",
    )


@router.get("/queue", response_class=HTMLResponse)
def review_queue(request: Request, actor: CurrentActor, db: Db) -> HTMLResponse:
    """The searches waiting for the actor's review."""
    return page(request, "queue.html", actor, items=queue.review_queue(db, actor=actor))


@router.post("/cases")
def open_case(
    actor: CurrentActor,
    db: Db,
    state: State,
    number: Annotated[str, Form()] = "",
    purpose: Annotated[str, Form()] = "",
    legal_basis: Annotated[str, Form()] = "",
    title: Annotated[str, Form()] = "",
) -> Response:
    """Open a case; number, purpose and legal basis are required."""
    case = cases.create_case(
        db,
        actor=actor,
        number=number,
        purpose=purpose,
        legal_basis=legal_basis,
        title=title,
        retention_days=state.settings.service.probe_retention_days,
    )
    return back(f"/cases/{case.id}", "Case opened. Upload a probe photo to search.")


@router.get("/cases/{case_id}", response_class=HTMLResponse)
def case_page(
    request: Request, case_id: Id, actor: CurrentActor, db: Db, state: State
) -> HTMLResponse:
    """Everything about a case, with the forms its state allows."""
    case = cases.get_case(db, actor=actor, case_id=case_id)
    case_searches = cases.case_searches(db, case=case)
    visible = reviews.visible_reviews(db, actor=actor, case=case)
    hidden = visible.blind_searches
    idents = reviews.identifications(db, case=case)
    agreed = _agreed_candidates(db, case, case_searches, visible.shown, hidden, idents)
    probes = cases.case_probes(db, case=case)
    searches.audit_probes_shown(
        db, actor=actor, case_id=case.id, target=f"case:{case.id}",
        probes=[p.id for p in probes if p.data is not None], page="case page",
    )  # fmt: skip
    return page(
        request,
        "case.html",
        actor,
        case=case,
        probes=probes,
        video_jobs=[j for j in state.videos.for_case(db, case.id) if j.state != "done"],
        max_video_mb=state.settings.service.max_video_mb,
        searches=case_searches,
        reviews=visible.shown,
        review_history=visible.history,
        hidden_reviews=visible.hidden,
        timeline=timeline.case_timeline(db, case=case, blind_searches=hidden),
        assignable=cases.assignable_users(db, actor=actor) if actor.can(Perm.CASE_ASSIGN) else [],
        outcomes=cases.OUTCOME_LABELS,
        agreed_candidates=agreed,
        identifications=idents,
        contacts=notifications.case_contacts(db, case=case),
        notifications=notifications.case_notifications(db, case=case),
        retention_ended=cases.retention_ended(case),
        today=date.today().isoformat(),
    )


@dataclass(frozen=True, slots=True)
class _Agreed:
    """A candidate two reviewers agree on for one person of the case (the form's row)."""

    candidate: SearchCandidate
    reviewers: list[str]
    person: str


def _agreed_candidates(
    db: Session,
    case: Case,
    case_searches: list[Search],
    shown: list[Review],
    hidden: frozenset[int],
    idents: list[Identification],
) -> list[_Agreed]:
    """The identification form's rows: the service's agreed candidates, each with the
    person it is for in words."""
    out = []
    for a in reviews.identifiable_candidates(
        db, case=case, searches=case_searches, shown=shown, hidden=hidden, identified=idents
    ):
        who = f"probe {a.search.probe_id}, face {a.search.face_index + 1}"
        if len(a.person) > 1:
            who = f"unknown person of {len(a.person) - 1} faces ({who})"
        out.append(_Agreed(a.candidate, a.reviewers, who))
    return out


def _search(
    db: Session,
    actor: Actor,
    state: ServiceState,
    searcher: searches.Searcher,
    limits: Limiter,
    probe_id: Id,
    face: int,
    force: bool,
    mode: SearchMode | None = None,
) -> Search:
    """Search face ``face`` of a stored probe with the app's gallery and the request's
    rate limits, in ``mode`` (None: the gallery's choice)."""
    return searches.search_probe(
        db,
        actor=actor,
        probe_id=probe_id,
        face=face,
        force=force,
        searcher=searcher,
        sessions=state.sessions,
        limiter=limits,
        mode=mode,
    )


@router.post("/cases/{case_id}/probes")
async def upload_probe(
    case_id: Id,
    actor: CurrentActor,
    db: Db,
    state: State,
    limits: Limits,
    searcher: Searching,
    image: Annotated[UploadFile, File()],
    mode: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    """Keep the probe with the case (its faces found once); search at once when it has
    one face (in ``mode``, empty: the gallery's choice), else show the whole photo to pick
    a face or draw a box round one."""
    chosen = form_mode(mode)
    probe = await probe_from_upload(
        state,
        db,
        actor=actor,
        searcher=searcher,
        case_id=case_id,
        upload=image,
        limiter=limits,
        keep_without_faces=True,
    )
    if not probe.faces:
        return back(
            f"/probes/{probe.id}#draw",
            "No face was found automatically. Draw a box round the face on the photo.",
        )
    if len(probe.faces) == 1:
        search = await run_in_threadpool(
            _search, db, actor, state, searcher, limits, probe.id, 0, False, chosen
        )
        return back(f"/searches/{search.id}")
    return back(
        f"/probes/{probe.id}",
        f"{len(probe.faces)} faces were found: pick the one to search, or draw a box round "
        "a face that was missed.",
    )


@router.post("/probes/{probe_id}/faces")
def draw_face(
    probe_id: Id,
    actor: CurrentActor,
    db: Db,
    state: State,
    limits: Limits,
    searcher: Searching,
    x1: Annotated[Coordinate, Form()],
    y1: Annotated[Coordinate, Form()],
    x2: Annotated[Coordinate, Form()],
    y2: Annotated[Coordinate, Form()],
    force: Annotated[bool, Form()] = False,
) -> Response:
    """Add a face from a box the user drew on the probe photo, and search it."""
    row = searches.add_manual_face(
        db,
        actor=actor,
        probe_id=probe_id,
        box=(x1, y1, x2, y2),
        searcher=searcher,
        limiter=limits,
    )
    index = row.face_index
    try:
        search = _search(db, actor, state, searcher, limits, probe_id, index, force)
    except LowQualityFace as exc:
        return back(
            f"/probes/{probe_id}#face-{index}",
            f"Face {index + 1} was added from your box but not searched: {exc}",
        )
    return back(f"/searches/{search.id}", f"Face {index + 1} added from your box and searched.")


@router.post("/probes/{probe_id}/search")
def search_face(
    probe_id: Id,
    actor: CurrentActor,
    db: Db,
    state: State,
    limits: Limits,
    searcher: Searching,
    face: Annotated[Index, Form()],
    force: Annotated[bool, Form()] = False,
    mode: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    """Search one face of a stored probe (in ``mode``; empty: the gallery's choice)."""
    search = _search(db, actor, state, searcher, limits, probe_id, face, force, form_mode(mode))
    return back(f"/searches/{search.id}")


def _person_frames(
    db: Session, probe: Probe, search: Search, candidate: SearchCandidate | None = None
) -> tuple[list[videos.KeyFrame], int]:
    """A video person's key frames and the one to open the candidate list at: the one
    most like the first candidate (else the best-quality one, number 0). No frames for
    a photo's face."""
    if probe.kind != "video" or not 0 <= search.face_index < len(probe.faces):
        return [], 0
    frames = videos.key_frames(probe.faces[search.face_index].extra or {})
    best = videos.best_key_frame(db, search=search, frames=frames, candidate=candidate)
    return frames, 0 if best is None else best


@router.get("/searches/{search_id}", response_class=HTMLResponse)
def results(
    request: Request, search_id: Id, actor: CurrentActor, db: Db, frame: int | None = None
) -> HTMLResponse:
    """The probe face beside each candidate, with score, warnings and provenance."""
    case, search = searches.get_search(db, actor=actor, search_id=search_id)
    visible = reviews.visible_reviews(db, actor=actor, case=case)
    of_search = [r for r in visible.shown if r.search_id == search.id]
    hidden = sum(
        1
        for r in reviews.case_reviews(db, case=case)
        if r.search_id == search.id and search.id in visible.blind_searches
    )
    probe = searches.get_probe(db, actor=actor, probe_id=search.probe_id)
    frames, best = _person_frames(db, probe, search)
    if frame is not None and 0 <= frame < len(frames):
        best = frame  # the reviewer picked another key frame
    return page(
        request,
        "search.html",
        actor,
        case=case,
        search=search,
        probe=probe,
        person=videos.person_names(list(probe.faces)).get(search.face_index)
        if probe.kind == "video"
        else None,
        persons_seen=len(videos.listed_faces(list(probe.faces))) if probe.kind == "video" else 0,
        frames=frames,
        best_frame=best,
        chosen_frame=frame if frames and frame is not None and 0 <= frame < len(frames) else None,
        reviews=of_search,
        review_history=visible.history,
        hidden_reviews=hidden,
        own_review=next((r for r in of_search if r.reviewer_id == actor.id), None),
        can_review=actor.can(Perm.REVIEW) and cases.is_active(case),
    )


@router.get("/searches/{search_id}/compare/{candidate_id}", response_class=HTMLResponse)
def compare(
    request: Request, search_id: Id, candidate_id: Id, actor: CurrentActor, db: Db
) -> HTMLResponse:
    """The probe face and one candidate's reference face side by side, aligned at one
    scale and zoomable together, with the subject's other photos to flip through."""
    case, search = searches.get_search(db, actor=actor, search_id=search_id, audited=False)
    candidate = next((c for c in search.candidates if c.id == candidate_id), None)
    if candidate is None:
        raise NotFound(f"search {search_id} has no candidate {candidate_id}")
    photos = collections.subject_photos_of(db, actor=actor, photo_id=candidate.photo_id)
    searches.audit_results_view(
        db,
        actor=actor,
        case=case,
        search=search,
        photos=[p.id for p in photos],
        view=f"compare candidate {candidate.rank}",
    )
    probe = searches.get_probe(db, actor=actor, probe_id=search.probe_id)
    frames, best = _person_frames(db, probe, search, candidate)
    return page(
        request,
        "compare.html",
        actor,
        case=case,
        search=search,
        candidate=candidate,
        frames=frames,
        best_frame=best,
        photos=photos,
        first=next((i for i, p in enumerate(photos) if p.id == candidate.photo_id), 0),
    )


@router.get("/probes/{probe_id}", response_class=HTMLResponse)
def probe_page(
    request: Request, probe_id: Id, actor: CurrentActor, db: Db, state: State
) -> HTMLResponse:
    """The whole probe photo with every face boxed, each face's searches, and the form
    to search a face (or draw a box round a face the detector missed)."""
    probe = searches.get_probe(db, actor=actor, probe_id=probe_id)
    case = cases.get_case(db, actor=actor, case_id=probe.case_id)
    searches.audit_probes_shown(
        db, actor=actor, case_id=case.id, target=f"probe:{probe.id}", probes=[probe.id],
        page="probe page",
    )  # fmt: skip
    of_probe = [s for s in cases.case_searches(db, case=case) if s.probe_id == probe.id]
    if probe.kind == "video":
        return page(
            request,
            "probe_video.html",
            actor,
            case=case,
            probe=probe,
            persons=[
                (f, videos.key_frames(f.extra or {})) for f in videos.listed_faces(probe.faces)
            ],
            names=videos.person_names(list(probe.faces)),
            searches=of_probe,
            can_search=actor.can(Perm.SEARCH) and cases.is_active(case),
            min_quality=state.settings.search.min_quality,
        )
    return page(
        request,
        "probe.html",
        actor,
        case=case,
        probe=probe,
        searches=of_probe,
        can_search=actor.can(Perm.SEARCH) and cases.is_active(case),
        min_quality=state.settings.search.min_quality,
    )


@router.post("/searches/{search_id}/reviews")
def review(
    search_id: Id,
    actor: CurrentActor,
    db: Db,
    conclusion: Annotated[str, Form()],
    note: Annotated[str, Form()] = "",
    candidate_id: Annotated[str, Form()] = "",
) -> Response:
    """Record a review."""
    cand = int(candidate_id) if candidate_id.strip() else None
    reviews.record_review(
        db, actor=actor, search_id=search_id, conclusion=conclusion, note=note, candidate_id=cand
    )
    return back(f"/searches/{search_id}", "Review recorded.")


@router.post("/cases/{case_id}/identification")
def identify(
    case_id: Id,
    actor: CurrentActor,
    db: Db,
    candidate_id: Annotated[Id, Form()],
    primary_identifier: Annotated[str, Form()],
    evidence: Annotated[str, Form()] = "",
) -> Response:
    """Record the primary identifier; the case becomes identified."""
    reviews.record_identification(
        db,
        actor=actor,
        case_id=case_id,
        candidate_id=candidate_id,
        primary_identifier=primary_identifier,
        evidence=evidence,
    )
    return back(f"/cases/{case_id}", "Identification recorded.")


@router.post("/cases/{case_id}/contacts")
def add_contact(
    case_id: Id,
    actor: CurrentActor,
    db: Db,
    name: Annotated[str, Form()] = "",
    relationship: Annotated[str, Form()] = "",
    details: Annotated[str, Form()] = "",
) -> Response:
    """Record a next-of-kin contact."""
    notifications.add_contact(
        db, actor=actor, case_id=case_id, name=name, relationship=relationship, details=details
    )
    return back(f"/cases/{case_id}#notifications", "Contact recorded.")


@router.post("/cases/{case_id}/notifications")
def notify(
    case_id: Id,
    actor: CurrentActor,
    db: Db,
    channel: Annotated[str, Form()] = "",
    notified_on: Annotated[str, Form()] = "",
    outcome: Annotated[str, Form()] = "",
    contact_id: Annotated[str, Form()] = "",
) -> Response:
    """Record a notification made through an official channel."""
    try:
        when = date.fromisoformat(notified_on)
    except ValueError as exc:
        raise InvalidRequest("give the notification date as YYYY-MM-DD") from exc
    notifications.record_notification(
        db,
        actor=actor,
        case_id=case_id,
        channel=channel,
        notified_on=when,
        outcome=outcome,
        contact_id=int(contact_id) if contact_id.strip() else None,
    )
    return back(f"/cases/{case_id}#notifications", "Notification recorded.")


@router.post("/cases/{case_id}/notes")
def add_note(
    case_id: Id, actor: CurrentActor, db: Db, text: Annotated[str, Form()] = ""
) -> Response:
    """A note on the case's timeline."""
    cases.add_note(db, actor=actor, case_id=case_id, text=text)
    return back(f"/cases/{case_id}#timeline", "Note added.")


@router.post("/cases/{case_id}/assign")
def assign(
    case_id: Id,
    actor: CurrentActor,
    db: Db,
    username: Annotated[str, Form()] = "",
    note: Annotated[str, Form()] = "",
) -> Response:
    """Assign the case to someone of the department (supervisors)."""
    case = cases.assign_case(db, actor=actor, case_id=case_id, username=username, note=note)
    who = case.assignee.username if case.assignee else "nobody"
    return back(f"/cases/{case_id}", f"Case assigned to {who}.")


@router.post("/cases/{case_id}/close")
def close(
    case_id: Id,
    actor: CurrentActor,
    db: Db,
    outcome: Annotated[str, Form()] = "",
    reason: Annotated[str, Form()] = "",
) -> Response:
    """Close (archive) the case with its outcome and the reason."""
    cases.close_case(db, actor=actor, case_id=case_id, outcome=outcome, reason=reason)
    return back(f"/cases/{case_id}", "Case closed. It is kept, read-only, in the archive.")


@router.post("/cases/{case_id}/reopen")
def reopen(
    case_id: Id, actor: CurrentActor, db: Db, reason: Annotated[str, Form()] = ""
) -> Response:
    """Reopen a closed case (supervisors)."""
    cases.reopen_case(db, actor=actor, case_id=case_id, reason=reason)
    return back(f"/cases/{case_id}", "Case reopened.")


@router.get("/cases/{case_id}/record", response_class=HTMLResponse)
def record(request: Request, case_id: Id, actor: CurrentActor, db: Db) -> HTMLResponse:
    """The printable notification record (use the browser's print to save a PDF)."""
    r = notifications.notification_record(db, actor=actor, case_id=case_id)
    return page(request, "record.html", actor, r=r)
