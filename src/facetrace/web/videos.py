"""Video probes in the web UI: the upload on the case page, the job's live progress
(frames per second, time left, cancel) and, when it is done, the probe's page with one
entry per person seen (see ``probe_video.html``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response

from facetrace.fields import Id
from facetrace.server.deps import CurrentActor, Db, Limits, Searching, State, read_upload
from facetrace.service import cases, videos
from facetrace.service.accounts import Perm, require
from facetrace.web.render import back, page

router = APIRouter()


@router.post("/cases/{case_id}/videos")
async def upload_video(
    case_id: Id,
    actor: CurrentActor,
    db: Db,
    state: State,
    limits: Limits,
    searcher: Searching,
    video: Annotated[UploadFile, File()],
    search_all: Annotated[bool, Form()] = False,
) -> Response:
    """Check the video (refused at once with nothing kept: not a video, damaged, over the
    limits) and queue its analysis; show the job's progress. With ``search_all``, each
    person is searched once stored, and persons the gallery finds as one subject are
    joined (as the API's one-shot search of a video does)."""
    require(actor, Perm.SEARCH)
    data = await read_upload(video, limit=state.max_video, what="video")
    job = await run_in_threadpool(
        state.videos.start,
        db,
        actor=actor,
        case_id=case_id,
        data=data,
        filename=video.filename or "",
        search=videos.person_search(searcher=searcher, sessions=state.sessions, limiter=limits)
        if search_all
        else None,
    )
    return back(f"/video-jobs/{job.id}")


@router.get("/video-jobs/{job_id}", response_class=HTMLResponse)
def video_job_page(
    request: Request, job_id: str, actor: CurrentActor, db: Db, state: State
) -> HTMLResponse:
    """A video's analysis as it runs (polled by ``video.js``); done, it links the persons."""
    job = state.videos.get(db, actor=actor, job_id=job_id)
    case = cases.get_case(db, actor=actor, case_id=job.case_id)
    return page(request, "video_job.html", actor, job=job, case=case)


@router.post("/video-jobs/{job_id}/cancel")
def cancel_video_job(job_id: str, actor: CurrentActor, db: Db, state: State) -> Response:
    """Stop an analysis; nothing of the video is kept."""
    job = state.videos.cancel(db, actor=actor, job_id=job_id)
    return back(f"/video-jobs/{job.id}", "Cancelling: nothing of this video will be kept.")
