"""Video probes: upload a video to a case (202 and a job), follow the job's progress,
cancel it; when it is done its probe holds one searchable face per person (origin
``track``), searched with ``POST /probes/{probe_id}/search`` like a photo's faces."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, UploadFile
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from facetrace.api.routes.probes import ProbeOut, probe_out
from facetrace.fields import Id
from facetrace.server.deps import CurrentActor, Db, State, read_upload
from facetrace.service import searches, videos
from facetrace.service.accounts import Perm, require
from facetrace.service.videos import JobState, VideoJob

router = APIRouter(tags=["videos"])


class VideoJobOut(BaseModel):
    """A video's analysis: its state, progress and, when done, the probe it made."""

    id: str
    case_id: int
    filename: str
    state: JobState
    duration_s: float = Field(description="the video's length")
    video_s: float = Field(description="video seconds analysed so far")
    fps: float = Field(description="sampled frames analysed per second of wall time")
    eta_s: float | None = Field(description="seconds left, when it can be told")
    error: str = Field(description="why it failed (nothing was stored)")
    persons: int
    probe: ProbeOut | None = Field(description="the stored probe, with a face per person")
    searches: list[int] = Field(
        default_factory=list,
        description="searches of the probe's persons so far (GET /searches/{id}); a video "
        "sent to POST /search has each person searched before it is done, and persons the "
        "gallery finds as one subject joined: the joined person's search and its fragments' "
        "searches are all listed (each names its face number)",
    )


def job_out(
    job: VideoJob, probe: ProbeOut | None = None, search_ids: list[int] | None = None
) -> VideoJobOut:
    """The public form of a job."""
    p = job.progress
    return VideoJobOut(
        id=job.id,
        case_id=job.case_id,
        filename=job.filename,
        state=job.state,
        duration_s=round(job.duration_s, 3),
        video_s=round(p.video_s, 3),
        fps=round(p.fps, 2),
        eta_s=None if p.eta_s is None else round(p.eta_s, 1),
        error=job.error,
        persons=job.persons,
        probe=probe,
        searches=search_ids or [],
    )


@router.post("/cases/{case_id}/videos", status_code=202, response_model=VideoJobOut)
async def upload_video(
    case_id: Id,
    actor: CurrentActor,
    db: Db,
    state: State,
    video: Annotated[UploadFile, File(description="the probe video")],
) -> VideoJobOut:
    """Check a probe video (refused at once, nothing stored: not a video, truncated, no
    video stream, unsupported codec, over the size, duration or resolution limits) and
    queue its analysis; follow it with ``GET /video-jobs/{id}``."""
    require(actor, Perm.SEARCH)
    data = await read_upload(video, limit=state.max_video, what="video")
    job = await run_in_threadpool(
        state.videos.start,
        db,
        actor=actor,
        case_id=case_id,
        data=data,
        filename=video.filename or "",
    )
    return job_out(job)


@router.get("/video-jobs/{job_id}", response_model=VideoJobOut)
def get_video_job(job_id: str, actor: CurrentActor, db: Db, state: State) -> VideoJobOut:
    """A video job: progress while it runs; when done, the probe and its persons."""
    job = state.videos.get(db, actor=actor, job_id=job_id)
    probe, made = None, []
    if job.probe_id is not None:
        probe = probe_out(searches.get_probe(db, actor=actor, probe_id=job.probe_id))
        made = videos.probe_searches(db, probe_id=job.probe_id)
    return job_out(job, probe, made)


@router.delete("/video-jobs/{job_id}", response_model=VideoJobOut)
def cancel_video_job(job_id: str, actor: CurrentActor, db: Db, state: State) -> VideoJobOut:
    """Cancel a queued or running analysis (a finished one is left as it is)."""
    return job_out(state.videos.cancel(db, actor=actor, job_id=job_id))
