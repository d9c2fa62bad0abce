"""Video probes: a video uploaded to a case is analysed as a job, and each person seen in
it becomes one searchable probe face (origin ``track``: the person's template, the best
frame's box and time, the intervals and key frames in ``extra``).

The request checks the case (open, in the actor's department, the right to search) and
the video itself (not a video, truncated, no video stream, unsupported codec, over the
size, duration or frame-area limits) before anything is queued, so bad input gets a clear
error at once and stores nothing. The job then runs in one worker thread, outside any
transaction; only when it has found at least one person are the video and its persons
stored with the case, in one transaction, audited like a photo probe's faces. A failed or
cancelled job stores nothing. Searching a person is then :func:`searches.search_probe`,
so purpose, legal basis, rate limit, audit and candidate snapshots are a photo's.

Jobs live in memory: a restart forgets queued and running jobs (the upload is not yet
evidence until its analysis is stored); finished ones point at their stored probe.
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import secrets
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from sqlalchemy.orm import Session, sessionmaker

from facetrace.errors import FacetraceError, ImageTooLarge, NotFound
from facetrace.service.accounts import Actor, Perm, require
from facetrace.service.cases import require_open, scoped_case
from facetrace.service.searches import FaceOrigin, FoundFace, PhotoFaces, add_probe, add_probe_faces
from facetrace.store.models import FaceRow
from facetrace.store.service_models import Search, SearchCandidate

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class VideoCheck:
    """What the container says, once it passed the checks."""

    width: int
    height: int
    duration_s: float
    codec: str


@dataclass(frozen=True, slots=True)
class VideoPersons:
    """The engine's answer for a video: its size and one face per person seen."""

    width: int
    height: int
    persons: tuple[FoundFace, ...]


@dataclass(frozen=True, slots=True)
class Progress:
    """Video seconds done of the total, sampled frames per wall second, seconds left."""

    video_s: float = 0.0
    duration_s: float = 0.0
    fps: float = 0.0
    eta_s: float | None = None


class VideoAnalyser(Protocol):
    """What this module needs from the engine (:class:`facetrace.service.video_port.VideoPort`)."""

    def check(self, path: Path, *, source: str) -> VideoCheck:
        """Refuse a file that cannot be analysed (ImageError, ImageTooLarge); cheap."""
        ...

    def persons(
        self,
        path: Path,
        *,
        source: str,
        progress: Callable[[Progress], None],
        cancelled: Callable[[], bool],
    ) -> VideoPersons:
        """Every person of the video (NoFaceFound when none, Cancelled when asked)."""
        ...


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(eq=False)
class VideoJob:
    """One video's analysis. ``id`` is an unguessable token; reads check the case too."""

    id: str
    case_id: int
    filename: str
    actor: Actor
    duration_s: float
    state: JobState = JobState.QUEUED
    progress: Progress = field(default_factory=Progress)
    error: str = ""
    probe_id: int | None = None
    persons: int = 0
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    cancel_requested: bool = False

    @property
    def finished(self) -> bool:
        return self.state in (JobState.DONE, JobState.FAILED, JobState.CANCELLED)


class VideoJobs:
    """Queued video analyses, run one at a time in a worker thread.

    Args:
        sessions: where finished jobs store their probe.
        analyser: the engine.
        work_dir: where uploads wait for their job (deleted when it ends).
        max_bytes: the largest video accepted.
    """

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        analyser: VideoAnalyser,
        work_dir: Path,
        max_bytes: int,
    ) -> None:
        self.sessions = sessions
        self.analyser = analyser
        self.work_dir = work_dir
        self.max_bytes = max_bytes
        self._jobs: dict[str, VideoJob] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="video")

    def shutdown(self) -> None:
        """Cancel what has not finished and stop the worker."""
        with self._lock:
            for job in self._jobs.values():
                job.cancel_requested = True
        self._pool.shutdown(wait=True, cancel_futures=True)

    def start(
        self, session: Session, *, actor: Actor, case_id: int, data: bytes, filename: str
    ) -> VideoJob:
        """Check the case and the video, then queue its analysis. Refused with nothing
        stored or queued: no right to search, a closed case or another department's,
        a file over the size limit, anything the analyser's check refuses."""
        require(actor, Perm.SEARCH)
        filename = Path(filename or "video").name[:300]
        require_open(scoped_case(session, actor=actor, case_id=case_id, perm=Perm.SEARCH))
        session.commit()
        if len(data) > self.max_bytes:
            raise ImageTooLarge(filename, f"the video is over the limit of {self.max_bytes} bytes")
        self.work_dir.mkdir(parents=True, exist_ok=True)
        suffix = Path(filename).suffix[:10] or ".video"
        fd, name = tempfile.mkstemp(dir=self.work_dir, suffix=suffix)
        path = Path(name)
        try:
            with open(fd, "wb") as handle:
                handle.write(data)
            check = self.analyser.check(path, source=filename)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        job = VideoJob(
            id=secrets.token_urlsafe(12),
            case_id=case_id,
            filename=filename,
            actor=actor,
            duration_s=check.duration_s,
            progress=Progress(duration_s=check.duration_s),
        )
        with self._lock:
            self._jobs[job.id] = job
        self._pool.submit(self._run, job, path)
        return job

    def get(self, session: Session, *, actor: Actor, job_id: str) -> VideoJob:
        """A job of a case the actor may see (NotFound otherwise, as for a wrong id)."""
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise NotFound(f"no video job {job_id!r}")
        scoped_case(session, actor=actor, case_id=job.case_id, perm=Perm.RESULTS_VIEW)
        return job

    def for_case(self, case_id: int) -> list[VideoJob]:
        """The case's jobs, newest first (the caller has checked the case)."""
        with self._lock:
            jobs = [j for j in self._jobs.values() if j.case_id == case_id]
        return sorted(jobs, key=lambda j: j.created_at, reverse=True)

    def cancel(self, session: Session, *, actor: Actor, job_id: str) -> VideoJob:
        """Ask a queued or running job to stop; it then stores nothing."""
        job = self.get(session, actor=actor, job_id=job_id)
        scoped_case(session, actor=actor, case_id=job.case_id, perm=Perm.SEARCH)
        job.cancel_requested = True
        return job

    def _run(self, job: VideoJob, path: Path) -> None:
        try:
            if job.cancel_requested:
                job.state = JobState.CANCELLED
                return
            job.state = JobState.RUNNING
            data = path.read_bytes()

            def progress(p: Progress) -> None:
                job.progress = p

            found = self.analyser.persons(
                path,
                source=job.filename,
                progress=progress,
                cancelled=lambda: job.cancel_requested,
            )
            if job.cancel_requested:
                job.state = JobState.CANCELLED
                return
            job.probe_id = self._store(job, data, found)
            job.persons = len(found.persons)
            job.progress = Progress(job.duration_s, job.duration_s, job.progress.fps, 0.0)
            job.state = JobState.DONE
        except FacetraceError as exc:
            cancelled = job.cancel_requested
            job.state = JobState.CANCELLED if cancelled else JobState.FAILED
            job.error = "" if cancelled else str(exc)
        except Exception as exc:  # a bug: the job says so, the worker lives on
            log.exception("video job %s failed", job.id)
            job.state, job.error = JobState.FAILED, f"internal error ({type(exc).__name__})"
        finally:
            path.unlink(missing_ok=True)

    def _store(self, job: VideoJob, data: bytes, found: VideoPersons) -> int:
        with self.sessions.begin() as s:
            probe = add_probe(
                s,
                actor=job.actor,
                case_id=job.case_id,
                data=data,
                filename=job.filename,
                found=PhotoFaces(width=found.width, height=found.height, faces=()),
                kind="video",
            )
            add_probe_faces(
                s, actor=job.actor, probe_id=probe.id, faces=found.persons, origin=FaceOrigin.TRACK
            )
            return int(probe.id)


@dataclass(frozen=True, slots=True)
class KeyFrame:
    """One key frame of a video person, as kept in its track face's ``extra``.

    ``box`` is the face and ``crop_box`` the crop, (x1, y1, x2, y2) in pixels of the
    original frame; ``landmarks`` dlib's five points in frame pixels (empty for rows
    stored before they were kept, and after the retention purge); ``jpeg`` the crop cut
    from the decoded original frame; ``vector`` the face's own vector (None likewise).
    """

    number: int
    frame_index: int
    timestamp_s: float
    box: tuple[int, int, int, int]
    crop_box: tuple[int, int, int, int] | None
    landmarks: tuple[tuple[float, float], ...]
    quality: float
    jpeg: bytes
    vector: npt.NDArray[np.float32] | None

    @property
    def clock(self) -> str:
        """The time as m:ss.s (what a reviewer looks for in a video player)."""
        return clock(self.timestamp_s)


def clock(seconds: float) -> str:
    """Video time as minutes and seconds to a tenth.

    >>> clock(3.26), clock(75.0), clock(3725.55)
    ('0:03.3', '1:15.0', '62:05.5')
    """
    tenths = round(seconds * 10)
    minutes, rest = divmod(tenths, 600)
    return f"{minutes}:{rest // 10:02d}.{rest % 10}"


def key_frames(extra: dict[str, Any]) -> list[KeyFrame]:
    """A track face's key frames, best first (none for other faces)."""
    out = []
    for i, k in enumerate(extra.get("key_frames", [])):
        vec = k.get("vector")
        crop = k.get("crop_box")
        out.append(
            KeyFrame(
                number=i,
                frame_index=int(k.get("frame_index", 0)),
                timestamp_s=float(k.get("timestamp_s", 0.0)),
                box=_box(k.get("box")),
                crop_box=_box(crop) if crop else None,
                landmarks=tuple((float(x), float(y)) for x, y in k.get("landmarks", [])),
                quality=float(k.get("quality", 0.0)),
                jpeg=base64.b64decode(k.get("jpeg", "")),
                vector=np.frombuffer(base64.b64decode(vec), dtype=np.float32) if vec else None,
            )
        )
    return out


def _box(value: Any) -> tuple[int, int, int, int]:
    x1, y1, x2, y2 = (int(v) for v in (value or (0, 0, 0, 0)))
    return (x1, y1, x2, y2)


def best_key_frame(
    session: Session,
    *,
    search: Search,
    frames: list[KeyFrame],
    candidate: SearchCandidate | None = None,
) -> int | None:
    """The key frame that matches ``candidate`` (default: the search's first) best, by
    cosine of the key frame's own vector with the candidate's gallery vector, so a
    reviewer opens a person's candidate list at the frame most like the candidate.
    Without a candidate, or vectors (purged), None: the best-quality frame is shown."""
    usable = [f for f in frames if f.vector is not None]
    if candidate is None and search.candidates:
        candidate = min(search.candidates, key=lambda c: c.rank)
    if not usable or candidate is None:
        return None
    row = session.get(FaceRow, candidate.face_id)
    if row is None or row.vector is None:
        return None
    ref = np.frombuffer(row.vector, dtype=np.float32)
    scored = [
        (float(np.dot(f.vector, ref)), f.number)
        for f in usable
        if f.vector is not None and f.vector.shape == ref.shape
    ]
    return max(scored)[1] if scored else None


def jpeg_b64(pixels: Any) -> str:
    """An RGB crop as base64 JPEG text (kept in a track face's ``extra``)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=88)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def vector_b64(vector: Any) -> str:
    """A face vector as base64 of its float32 bytes (kept per key frame)."""
    return base64.b64encode(np.asarray(vector, dtype=np.float32).tobytes()).decode("ascii")


def video_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
