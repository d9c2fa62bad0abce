"""Cases, searches, reviews, identification, next of kin and notifications."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, Field

from facetrace.config import DetectorKind, SearchMode
from facetrace.errors import InvalidRequest
from facetrace.fields import CaseNumber, Id, Index, LegalBasis, Name, Note, OptionalName
from facetrace.imaging import looks_like_video
from facetrace.server.deps import CurrentActor, Db, Limits, Searching, State, read_upload
from facetrace.service import cases, notifications, reviews, searches, videos
from facetrace.service.accounts import Perm, require
from facetrace.store.service_models import Case, Identification, Search
from facetrace.types import Provenance

DETECTOR_HELP = (
    "the face detector for this photo: hog (fast, frontal faces), cnn (dlib's CNN: turned, "
    "tilted and cut faces, ~4.5x the cost) or auto (HOG, then the CNN where it pays); "
    "default: the service's FACETRACE_DETECT__DETECTOR"
)

MODE_HELP = (
    "identification: only people scoring above the threshold are candidates, 'no "
    "candidate' when nobody does; investigation: the k most similar people, listed for "
    "review whatever their score (no threshold); default: chosen by the gallery's size "
    "(FACETRACE_SEARCH__MODE, FACETRACE_SEARCH__INVESTIGATION_FROM_SUBJECTS)"
)

router = APIRouter(tags=["cases"])


class CaseIn(BaseModel):
    """A new case: number, purpose (see the enum) and legal basis are required."""

    number: CaseNumber
    purpose: cases.Purpose
    legal_basis: LegalBasis
    title: OptionalName = ""


class ReviewIn(BaseModel):
    """A reviewer's conclusion."""

    conclusion: reviews.Conclusion
    note: Note = ""
    candidate_id: Id | None = None


class IdentificationIn(BaseModel):
    """The candidate two reviewers agreed on and the primary identifier confirming it."""

    candidate_id: Id
    primary_identifier: reviews.PrimaryIdentifier
    evidence: Note


class ContactIn(BaseModel):
    """A next-of-kin contact."""

    name: Name
    relationship: OptionalName = ""
    details: Note = ""


class NotificationIn(BaseModel):
    """A notification made through an official channel."""

    channel: Name
    notified_on: date
    outcome: Note
    contact_id: Id | None = None


class CaseOut(BaseModel):
    """A case."""

    id: int
    number: str
    title: str
    purpose: str = Field(description="one of the purposes a search may serve")
    legal_basis: str
    status: str
    department: str
    retention_until: str = Field(
        description="ISO 8601 time after which the case's probe photos are deleted"
    )


class CaseSearchOut(BaseModel):
    """One search of a case, in the case listing."""

    id: int
    face_index: int
    mode: SearchMode
    no_candidate: bool


class ReviewVersionOut(BaseModel):
    """An earlier version of a reviewer's review of a search."""

    version: int
    conclusion: str
    candidate_id: int | None
    note: str
    at: datetime


class CaseReviewOut(BaseModel):
    """One reviewer's review in force of a search of the case (one per reviewer and
    search), with its earlier versions."""

    search_id: int
    reviewer: str
    conclusion: str
    candidate_id: int | None
    note: str
    version: int = 1
    at: datetime | None = None
    history: list[ReviewVersionOut] = []


class IdentificationOut(BaseModel):
    """A recorded identification of one person of a case: the searched face of the
    candidate's search (a probe face, or an unknown person's template face)."""

    id: int
    status: str
    probe_id: int
    face_index: int
    subject: str


class CaseDetailOut(CaseOut):
    """A case with its searches and the reviews the caller may see: others' reviews of a
    search the caller is to review are hidden (counted in ``hidden_reviews``) until the
    caller records theirs, so the second review is blind."""

    searches: list[CaseSearchOut]
    reviews: list[CaseReviewOut]
    hidden_reviews: int = 0
    identifications: list[IdentificationOut] = []


class SubjectRef(BaseModel):
    """Whom a reference photo shows: the external id in its collection and the name."""

    id: str = Field(description="the subject's external id (record number) in its collection")
    name: str


class CandidateOut(BaseModel):
    """One ranked candidate of a search."""

    id: int
    rank: int
    score: float = Field(description="cosine similarity of the probe and reference faces")
    false_match_rate: float | None = Field(
        description="estimated chance that a different person scores this high"
    )
    above_threshold: bool
    subject: SubjectRef
    photo_id: int
    face_id: int
    quality: float
    provenance: Provenance = Field(
        description="where the reference photo comes from and under which legal basis it is held"
    )
    matched_by: Literal["face", "template"] = Field(
        "face",
        description="template: the subject's template (the mean of several of its reference "
        "faces) gave the score, its false-match rate from the template tables; photo_id and "
        "face_id are then the subject's best-scoring face",
    )
    template_faces: int = Field(0, description="faces averaged by the matching template")


class ModeChoiceOut(BaseModel):
    """Why a search ran in its mode."""

    chosen_by: str | None = Field(
        None,
        description="request (asked for), setting (FACETRACE_SEARCH__MODE) or gallery size; "
        "null for a search made before modes were recorded",
    )
    gallery_subjects: int | None = None
    investigation_from: int | None = Field(
        None,
        description="gallery size (subjects) from which the gallery chooses investigation; "
        "null when unknown",
    )
    switch_source: str = Field(
        "", description="where that size comes from: setting or calibration (measured FNIR)"
    )
    expected_fnir: float | None = Field(
        None,
        description="estimated share of people in the gallery whom the identification "
        "threshold misses at this gallery size",
    )
    max_fnir: float | None = None


class SearchOut(BaseModel):
    """A search and its ranked candidates, in its ``mode``: identification lists the
    candidates at or above ``threshold`` (``no_candidate`` when none is close enough);
    investigation lists the k most similar people whatever their score (no threshold is
    applied; ``threshold`` is identification's, for reference, and ``above_threshold``
    says which candidates reach it)."""

    id: int
    case_id: int
    probe_id: int
    face_index: int
    box: list[int] = Field(description="x1, y1, x2, y2 in pixels")
    quality: float
    quality_reasons: list[str]
    mode: SearchMode
    mode_choice: ModeChoiceOut
    threshold: float
    no_candidate: bool
    forced: bool
    notice: str
    candidates: list[CandidateOut]


class ReviewOut(BaseModel):
    """A recorded review: ``version`` 1 for a reviewer's first review of the search,
    higher for a change (the earlier versions are kept)."""

    id: int
    conclusion: str
    version: int = 1


class CreatedOut(BaseModel):
    """The id of what was recorded."""

    id: int


def case_json(c: Case) -> dict[str, Any]:
    """A case's fields."""
    return {
        "id": c.id,
        "number": c.number,
        "title": c.title,
        "purpose": c.purpose,
        "legal_basis": c.legal_basis,
        "status": c.status,
        "department": c.department.name,
        "retention_until": c.retention_until.isoformat(),
    }


def search_json(s: Search) -> dict[str, Any]:
    """A search with its candidates. Scores are cosine similarities; the false-match rate
    is the estimated chance that a different person scores this high."""
    choice = dict((s.evidence or {}).get("mode") or {})
    return {
        "mode": s.mode,
        # the stored choice (ModeChoice.as_dict), read through the schema's defaults:
        # a search made before modes were recorded has none of its fields
        "mode_choice": ModeChoiceOut.model_validate(choice).model_dump(),
        "id": s.id,
        "case_id": s.case_id,
        "probe_id": s.probe_id,
        "face_index": s.face_index,
        "box": s.box,
        "quality": s.quality,
        "quality_reasons": s.quality_reasons,
        "threshold": s.threshold,
        "no_candidate": s.no_candidate,
        "forced": s.forced,
        "notice": "Candidates are leads for human review, not identifications; confirm "
        "any candidate by other means (fingerprints, DNA, dental records, "
        "documents).",
        "candidates": [
            {
                "id": c.id,
                "rank": c.rank,
                "score": c.score,
                "false_match_rate": c.false_match_rate,
                "above_threshold": c.above_threshold,
                "subject": {"id": c.subject_external_id, "name": c.subject_name},
                "photo_id": c.photo_id,
                "face_id": c.face_id,
                "quality": c.quality,
                "provenance": c.provenance,
                "matched_by": c.matched_by,
                "template_faces": c.template_faces,
            }
            for c in s.candidates
        ],
    }


@router.get("/cases", response_model=list[CaseOut])
def list_cases(actor: CurrentActor, db: Db) -> list[dict[str, Any]]:
    """The cases of the caller's department."""
    return [case_json(c) for c in cases.list_cases(db, actor=actor)]


@router.post("/cases", status_code=201, response_model=CaseOut)
def create_case(body: CaseIn, actor: CurrentActor, db: Db, state: State) -> dict[str, Any]:
    """Open a case."""
    case = cases.create_case(
        db,
        actor=actor,
        number=body.number,
        purpose=body.purpose.value,
        legal_basis=body.legal_basis,
        title=body.title,
        retention_days=state.settings.service.probe_retention_days,
    )
    return case_json(case)


@router.get("/cases/{case_id}", response_model=CaseDetailOut)
def get_case(case_id: Id, actor: CurrentActor, db: Db) -> dict[str, Any]:
    """A case with its searches and reviews."""
    case = cases.get_case(db, actor=actor, case_id=case_id)
    out = case_json(case)
    out["searches"] = [
        {"id": s.id, "face_index": s.face_index, "mode": s.mode, "no_candidate": s.no_candidate}
        for s in cases.case_searches(db, case=case)
    ]
    visible = reviews.visible_reviews(db, actor=actor, case=case)
    out["reviews"] = [
        {
            "search_id": r.search_id,
            "reviewer": r.reviewer.username,
            "conclusion": r.conclusion,
            "candidate_id": r.candidate_id,
            "note": r.note,
            "version": r.version,
            "at": r.created_at,
            "history": [
                {
                    "version": o.version,
                    "conclusion": o.conclusion,
                    "candidate_id": o.candidate_id,
                    "note": o.note,
                    "at": o.created_at,
                }
                for o in visible.history.get(r.id, [])
            ],
        }
        for r in visible.shown
    ]
    out["hidden_reviews"] = visible.hidden
    out["identifications"] = [
        _identification_json(i) for i in reviews.identifications(db, case=case)
    ]
    return out


@router.post(
    "/search",
    status_code=201,
    response_model=SearchOut,
    responses={
        202: {
            "description": "a video: its analysis is queued (follow GET /video-jobs/{id})",
            # VideoJobOut, declared by the video routes (which import this module)
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/VideoJobOut"}}
            },
        }
    },
)
async def search(
    actor: CurrentActor,
    db: Db,
    state: State,
    limits: Limits,
    searcher: Searching,
    image: Annotated[UploadFile, File(description="the probe photo, or a probe video")],
    case_id: Annotated[Id | None, Form()] = None,
    face: Annotated[Index | None, Form()] = None,
    force: Annotated[bool, Form()] = False,
    detector: Annotated[DetectorKind | None, Form(description=DETECTOR_HELP)] = None,
    mode: Annotated[SearchMode | None, Form(description=MODE_HELP)] = None,
) -> Any:
    """Upload a probe photo for a case and search one of its faces: one pipeline run, the
    probe and its faces kept with the case. A search without a case is refused; a photo
    with several faces needs ``face`` (the answer lists them), or upload it once with
    ``POST /cases/{case_id}/probes`` and search each face with
    ``POST /probes/{probe_id}/search``. A refused search stores nothing.

    A video (told by its container's signature or its extension) is checked at once
    and its analysis queued, as ``POST /cases/{case_id}/videos`` does: the answer is
    **202** with the job; when it is done, its probe has one face per person seen, each
    searched once stored (``force``: a person of low quality too; one the rules refuse
    is left to ``POST /probes/{probe_id}/search``), and the job lists the searches when
    it is done. ``face`` and ``detector`` are photo options, refused for a video."""
    if case_id is None:
        raise InvalidRequest(
            "every search belongs to a case: create one (POST /api/v1/cases with number, "
            "purpose and legal basis) and pass its case_id"
        )
    require(actor, Perm.SEARCH)
    head = await image.read(4096)
    await image.seek(0)
    if looks_like_video(head, image.filename or ""):
        if face is not None or detector is not None:
            raise InvalidRequest(
                "face and detector are photo options: every person seen in a video is "
                "searched once its analysis is done"
            )
        from facetrace.api.routes.videos import job_out  # it imports this module

        video = await read_upload(image, limit=state.max_video, what="video")
        job = await run_in_threadpool(
            state.videos.start,
            db,
            actor=actor,
            case_id=case_id,
            data=video,
            filename=image.filename or "",
            search=videos.person_search(
                searcher=searcher, sessions=state.sessions, limiter=limits, force=force, mode=mode
            ),
        )
        return JSONResponse(job_out(job).model_dump(mode="json"), status_code=202)
    data = await read_upload(image, limit=state.max_upload, what="photo")
    result = await run_in_threadpool(
        searches.search_upload,
        db,
        actor=actor,
        case_id=case_id,
        data=data,
        filename=image.filename or "",
        face=face,
        force=force,
        searcher=searcher,
        sessions=state.sessions,
        limiter=limits,
        detector=None if detector is None else detector.value,
        mode=mode,
    )
    return search_json(result)


@router.get("/searches/{search_id}", response_model=SearchOut)
def get_search(search_id: Id, actor: CurrentActor, db: Db) -> dict[str, Any]:
    """A search's candidate list (audited as a view of results)."""
    _, result = searches.get_search(db, actor=actor, search_id=search_id)
    return search_json(result)


@router.post("/searches/{search_id}/reviews", status_code=201, response_model=ReviewOut)
def review(search_id: Id, body: ReviewIn, actor: CurrentActor, db: Db) -> dict[str, Any]:
    """Record a review of a search, or change one's own (a new version; the same review
    sent again changes nothing). Refused (409) to the person who ran the search."""
    r = reviews.record_review(
        db,
        actor=actor,
        search_id=search_id,
        conclusion=body.conclusion.value,
        note=body.note,
        candidate_id=body.candidate_id,
    )
    return {"id": r.id, "conclusion": r.conclusion, "version": r.version}


@router.post("/cases/{case_id}/identification", status_code=201, response_model=IdentificationOut)
def identify(case_id: Id, body: IdentificationIn, actor: CurrentActor, db: Db) -> dict[str, Any]:
    """Record the primary identifier that confirms the agreed candidate."""
    ident = reviews.record_identification(
        db,
        actor=actor,
        case_id=case_id,
        candidate_id=body.candidate_id,
        primary_identifier=body.primary_identifier.value,
        evidence=body.evidence,
    )
    return _identification_json(ident)


def _identification_json(ident: Identification) -> dict[str, Any]:
    return {
        "id": ident.id,
        "status": "identified",
        "probe_id": ident.probe_id,
        "face_index": ident.face_index,
        "subject": ident.candidate.subject_external_id,
    }


@router.post("/cases/{case_id}/contacts", status_code=201, response_model=CreatedOut)
def add_contact(case_id: Id, body: ContactIn, actor: CurrentActor, db: Db) -> dict[str, Any]:
    """Record a next-of-kin contact."""
    c = notifications.add_contact(db, actor=actor, case_id=case_id, **body.model_dump())
    return {"id": c.id}


@router.post("/cases/{case_id}/notifications", status_code=201, response_model=CreatedOut)
def notify(case_id: Id, body: NotificationIn, actor: CurrentActor, db: Db) -> dict[str, Any]:
    """Record a notification made through an official channel."""
    n = notifications.record_notification(db, actor=actor, case_id=case_id, **body.model_dump())
    return {"id": n.id}


@router.get("/cases/{case_id}/notification-record", response_class=HTMLResponse)
def notification_record(
    case_id: Id, request: Request, actor: CurrentActor, db: Db, state: State
) -> HTMLResponse:
    """The printable notification record (HTML; print to PDF from the browser)."""
    record = notifications.notification_record(db, actor=actor, case_id=case_id)
    return state.templates.TemplateResponse(request, "record.html", {"r": record})
