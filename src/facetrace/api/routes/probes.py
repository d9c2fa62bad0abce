"""Probes: a photo uploaded once to a case, its faces (found at upload, or drawn by the
user), and the search of any of those faces, each a vector search."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, UploadFile
from pydantic import BaseModel, Field

from facetrace.api.routes.cases import DETECTOR_HELP, MODE_HELP, SearchOut, search_json
from facetrace.config import DetectorKind, SearchMode
from facetrace.fields import Coordinate, Id, Index
from facetrace.server.deps import CurrentActor, Db, Limits, Searching, State, probe_from_upload
from facetrace.service import searches, videos
from facetrace.store.service_models import Probe, ProbeFaceRow

router = APIRouter(tags=["probes"])


class ProbeFaceOut(BaseModel):
    """One searchable face of a probe."""

    index: int = Field(description="the face number to search (0 = the largest found)")
    origin: searches.FaceOrigin
    box: tuple[int, int, int, int] = Field(description="x1, y1, x2, y2 in pixels")
    quality: float = Field(description="0 (unusable) to 1 (best)")
    quality_reasons: list[str]
    detector_score: float | None
    frame_index: int | None = None
    timestamp_s: float | None = None
    intervals: list[tuple[float, float]] = Field(
        default_factory=list, description="a video person: when on screen, in seconds"
    )
    joins: list[int] = Field(
        default_factory=list,
        description="a video person joined from persons the gallery found as one subject: "
        "their face numbers (left out of the probe's faces; they and their searches stay)",
    )


class ProbeOut(BaseModel):
    """A probe kept with its case and the faces found in it."""

    id: int
    case_id: Id
    kind: str
    filename: str
    sha256: str
    width: int
    height: int
    purged: bool = Field(description="the photo was deleted at the end of its retention")
    faces: list[ProbeFaceOut]


class BoxIn(BaseModel):
    """A box drawn around a face the detector missed."""

    box: tuple[Coordinate, Coordinate, Coordinate, Coordinate] = Field(
        description="x1, y1, x2, y2 in pixels"
    )


class SearchIn(BaseModel):
    """Which face of the probe to search."""

    face: Index = 0
    force: bool = Field(False, description="search a face below the minimum quality")
    mode: SearchMode | None = Field(None, description=MODE_HELP)


def face_out(f: ProbeFaceRow) -> ProbeFaceOut:
    """The public form of a probe face."""
    return ProbeFaceOut(
        index=f.face_index,
        origin=searches.FaceOrigin(f.origin),
        box=f.box,
        quality=round(f.quality, 4),
        quality_reasons=list(f.quality_reasons),
        detector_score=f.detector_score,
        frame_index=f.frame_index,
        timestamp_s=f.timestamp_s,
        intervals=[(float(a), float(b)) for a, b in (f.extra or {}).get("intervals", [])],
        joins=[int(i) for i in (f.extra or {}).get("joins", [])],
    )


def probe_out(p: Probe) -> ProbeOut:
    """The public form of a probe."""
    return ProbeOut(
        id=p.id,
        case_id=p.case_id,
        kind=p.kind,
        filename=p.filename,
        sha256=p.sha256,
        width=p.width,
        height=p.height,
        purged=p.data is None,
        faces=[
            face_out(f) for f in (videos.listed_faces(p.faces) if p.kind == "video" else p.faces)
        ],
    )


@router.post("/cases/{case_id}/probes", status_code=201, response_model=ProbeOut)
async def upload_probe(
    case_id: Id,
    actor: CurrentActor,
    db: Db,
    state: State,
    limits: Limits,
    searcher: Searching,
    image: Annotated[UploadFile, File(description="the probe photo")],
    detector: Annotated[DetectorKind | None, Form(description=DETECTOR_HELP)] = None,
) -> ProbeOut:
    """Keep a probe photo with a case and find its faces, once; search any of them
    with ``POST /probes/{probe_id}/search``. A photo without a face is refused."""
    probe = await probe_from_upload(
        state,
        db,
        actor=actor,
        searcher=searcher,
        case_id=case_id,
        upload=image,
        limiter=limits,
        detector=None if detector is None else detector.value,
    )
    return probe_out(probe)


@router.get("/probes/{probe_id}", response_model=ProbeOut)
def get_probe(probe_id: Id, actor: CurrentActor, db: Db) -> ProbeOut:
    """A probe and its faces."""
    return probe_out(searches.get_probe(db, actor=actor, probe_id=probe_id))


@router.post("/probes/{probe_id}/faces", status_code=201, response_model=ProbeFaceOut)
def add_face(
    probe_id: Id, body: BoxIn, actor: CurrentActor, db: Db, limits: Limits, searcher: Searching
) -> ProbeFaceOut:
    """Add a face the detector missed from a box drawn around it; it gets the next face
    number and is searched like the others."""
    row = searches.add_manual_face(
        db, actor=actor, probe_id=probe_id, box=body.box, searcher=searcher, limiter=limits
    )
    return face_out(row)


@router.post("/probes/{probe_id}/search", status_code=201, response_model=SearchOut)
def search_face(
    probe_id: Id,
    body: SearchIn,
    actor: CurrentActor,
    db: Db,
    state: State,
    limits: Limits,
    searcher: Searching,
) -> dict[str, Any]:
    """Search one face of a stored probe: a vector search, no model runs again."""
    result = searches.search_probe(
        db,
        actor=actor,
        probe_id=probe_id,
        face=body.face,
        force=body.force,
        searcher=searcher,
        sessions=state.sessions,
        limiter=limits,
        mode=body.mode,
    )
    return search_json(result)
