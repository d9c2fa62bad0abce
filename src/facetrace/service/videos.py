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

Jobs are rows in SQL (:class:`~facetrace.store.service_models.VideoJobRow`): a job the
service left queued or running (a crash, ``kill -9``) is marked interrupted at the next
start and its upload deleted (the upload is not evidence until its analysis is stored);
finished ones point at their stored probe.
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from facetrace.errors import Cancelled, FacetraceError, ImageTooLarge, NotFound
from facetrace.service import audit
from facetrace.service.accounts import Actor, Perm, require
from facetrace.service.cases import require_open, scoped_case
from facetrace.service.searches import (
    FaceOrigin,
    FoundFace,
    Limiter,
    PhotoFaces,
    Searcher,
    add_probe,
    add_probe_faces,
    search_probe,
)
from facetrace.store.models import FaceRow
from facetrace.store.service_models import ProbeFaceRow, Search, SearchCandidate, VideoJobRow

if TYPE_CHECKING:
    from facetrace.config import SearchMode
    from facetrace.video import Person, VideoOptions

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
    """The engine's answer for a video: its size and one face per person seen; the
    persons themselves (``people``, same order) and the analysis's options, for the join
    of persons the gallery finds as one subject (:meth:`VideoJobs._join`)."""

    width: int
    height: int
    persons: tuple[FoundFace, ...]
    people: tuple[Person, ...] = ()
    options: VideoOptions | None = None


def person_face(p: Person, extra: dict[str, Any] | None = None) -> FoundFace:
    """A video person as a probe face: the template, the best frame's box, landmarks,
    quality and time; intervals, tracks and key frames (crop and vector) in ``extra``."""
    best = p.thumbnail
    d = best.face.detection
    return FoundFace(
        box=(d.box.x1, d.box.y1, d.box.x2, d.box.y2),
        landmarks=tuple((float(x), float(y)) for x, y in d.landmarks.as_array()),
        detector_score=float(d.score),
        quality=max(float(k.face.quality.score) for k in p.key_frames),
        quality_reasons=tuple(str(r) for r in best.face.quality.reasons),
        vector=p.template,
        model_id=best.face.model_id,
        frame_index=best.frame_index,
        timestamp_s=round(best.timestamp_s, 3),
        extra={
            "person": p.number,
            "intervals": [[round(a, 3), round(b, 3)] for a, b in p.intervals],
            "tracks": list(p.tracks),
            "faces": p.faces,
            "key_frames": [
                {
                    "frame_index": k.frame_index,
                    "timestamp_s": round(k.timestamp_s, 3),
                    "box": k.box.as_list(),
                    "quality": round(float(k.face.quality.score), 4),
                    "crop_box": k.crop_box.as_list(),
                    "landmarks": [
                        [round(float(x), 2), round(float(y), 2)]
                        for x, y in k.face.detection.landmarks.as_array()
                    ],
                    "vector": vector_b64(k.face.vector),
                    "jpeg": jpeg_b64(k.crop),
                }
                for k in p.key_frames
            ],
            **(extra or {}),
        },
    )


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

    def close(self) -> None:
        """Stop what the analyses keep running between videos (worker processes)."""
        ...


class PersonSearch(Protocol):
    """Searches one person of a stored video probe (the one-shot search's rules:
    permission, rate limit, quality; audited), in ``session``; the caller commits."""

    def __call__(self, session: Session, actor: Actor, probe_id: int, face: int, /) -> Any: ...


def person_search(
    *,
    searcher: Searcher,
    sessions: sessionmaker[Session],
    limiter: Limiter,
    force: bool = False,
    mode: SearchMode | None = None,
) -> PersonSearch:
    """The search a job makes of each person it stored (:func:`searches.search_probe`,
    with the one-shot search's ``force`` and ``mode``): what the one-shot search and the
    web's "search every person" upload pass to :meth:`VideoJobs.start`."""

    def search(session: Session, actor: Actor, probe_id: int, face: int, /) -> Search:
        return search_probe(
            session,
            actor=actor,
            probe_id=probe_id,
            face=face,
            force=force,
            searcher=searcher,
            sessions=sessions,
            limiter=limiter,
            mode=mode,
        )

    return search


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"


ENDED = (JobState.DONE, JobState.FAILED, JobState.CANCELLED, JobState.INTERRUPTED)
PROGRESS_EVERY_S = 1.0  # progress is written to the job's row at most this often
STOPPED = "the service stopped before the analysis ended"


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class VideoJob:
    """A video's analysis as the API and the pages show it: a snapshot of its row.
    ``id`` is an unguessable token; reads check the case too."""

    id: str
    case_id: int
    filename: str
    user: str
    duration_s: float
    state: JobState
    progress: Progress
    error: str
    probe_id: int | None
    persons: int
    created_at: datetime
    cancel_requested: bool

    @property
    def finished(self) -> bool:
        return self.state in ENDED

    @classmethod
    def of(cls, row: VideoJobRow) -> VideoJob:
        return cls(
            id=row.id,
            case_id=row.case_id,
            filename=row.filename,
            user=row.username,
            duration_s=row.duration_s,
            state=JobState(row.state),
            progress=Progress(row.video_s, row.duration_s, row.fps, row.eta_s),
            error=row.error,
            probe_id=row.probe_id,
            persons=row.persons,
            created_at=row.created_at,
            cancel_requested=row.cancel_requested,
        )


class VideoJobs:
    """Video analyses kept in SQL (:class:`VideoJobRow`), run one at a time in a worker
    thread of this process.

    A job left queued or running by a stopped service (a crash, ``kill -9``) is marked
    interrupted by :meth:`recover` at the next start, and its upload deleted: until its
    analysis is stored the upload is not evidence of the case, so nothing of it is kept
    and the user uploads it again. The probe and the job's ``done`` are written in one
    transaction, so a job is done exactly when its probe exists.

    Args:
        sessions: where the jobs and their probes are stored.
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
        # per job started by this process: who started it and its cancel flag
        self._actors: dict[str, Actor] = {}
        self._cancel: dict[str, threading.Event] = {}
        self._searches: dict[str, PersonSearch] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="video")

    def recover(self) -> list[str]:
        """At start: mark the jobs a stopped service left queued or running interrupted
        (audited) and delete every upload left in the work folder. Returns their ids."""
        with self.sessions.begin() as s:
            rows = list(
                s.execute(
                    select(VideoJobRow).where(
                        VideoJobRow.state.in_((JobState.QUEUED, JobState.RUNNING))
                    )
                ).scalars()
            )
            for row in rows:
                row.state = JobState.INTERRUPTED
                row.error = STOPPED
                row.finished_at = _now()
                audit.append(
                    s,
                    actor=row.username,
                    action=audit.Action.VIDEO_INTERRUPTED,
                    target=f"video_job:{row.id}",
                    detail={"case": row.case_id, "filename": row.filename},
                )
            ids = [r.id for r in rows]
        if self.work_dir.is_dir():
            for leftover in self.work_dir.iterdir():
                if leftover.is_file():
                    leftover.unlink(missing_ok=True)
        if ids:
            log.warning("video analyses interrupted by the last stop: %s", ", ".join(ids))
        return ids

    def shutdown(self) -> None:
        """Stop the worker: the running analysis stops and is left interrupted, as are
        the queued ones (marked so at the next start)."""
        self._stopping.set()
        with self._lock:
            for event in self._cancel.values():
                event.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self.analyser.close()

    def start(
        self,
        session: Session,
        *,
        actor: Actor,
        case_id: int,
        data: bytes,
        filename: str,
        search: PersonSearch | None = None,
    ) -> VideoJob:
        """Check the case and the video, then queue its analysis (the job's row is
        committed before the worker sees it). Refused with nothing stored or queued: no
        right to search, a closed case or another department's, a file over the size
        limit, anything the analyser's check refuses. With ``search`` (the one-shot
        search), each person is searched once stored, before the job says done; a person
        the search refuses (low quality, rate limit) is left to search by hand."""
        require(actor, Perm.SEARCH)
        filename = Path(filename or "video").name[:300]
        require_open(scoped_case(session, actor=actor, case_id=case_id, perm=Perm.SEARCH))
        session.commit()
        if len(data) > self.max_bytes:
            raise ImageTooLarge(filename, f"the video is over the limit of {self.max_bytes} bytes")
        self.work_dir.mkdir(parents=True, exist_ok=True)
        job_id = secrets.token_hex(12)
        suffix = "".join(c for c in Path(filename).suffix[:10] if c.isalnum() or c == ".")
        path = self.work_dir / f"{job_id}{suffix or '.video'}"
        try:
            path.write_bytes(data)
            check = self.analyser.check(path, source=filename)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        row = VideoJobRow(
            id=job_id,
            case_id=case_id,
            user_id=actor.id,
            username=actor.username,
            filename=filename,
            state=JobState.QUEUED,
            cancel_requested=False,
            duration_s=check.duration_s,
            video_s=0.0,
            fps=0.0,
            error="",
            persons=0,
            upload_bytes=len(data),
            created_at=_now(),
        )
        try:
            session.add(row)
            audit.append(
                session,
                actor=actor.username,
                action=audit.Action.VIDEO_QUEUED,
                target=f"video_job:{job_id}",
                detail={"case": case_id, "filename": filename, "bytes": len(data)},
            )
            session.commit()
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        job = VideoJob.of(row)
        with self._lock:
            self._actors[job_id] = actor
            self._cancel[job_id] = threading.Event()
            if search is not None:
                self._searches[job_id] = search
        self._pool.submit(self._run, job_id, path)
        return job

    def _row(self, session: Session, job_id: str) -> VideoJobRow:
        row = session.get(VideoJobRow, job_id) if len(job_id) <= 32 else None
        if row is None:
            raise NotFound(f"no video job {job_id!r}")
        return row

    def get(self, session: Session, *, actor: Actor, job_id: str) -> VideoJob:
        """A job of a case the actor may see (NotFound otherwise, as for a wrong id)."""
        row = self._row(session, job_id)
        scoped_case(session, actor=actor, case_id=row.case_id, perm=Perm.RESULTS_VIEW)
        return VideoJob.of(row)

    def for_case(self, session: Session, case_id: int) -> list[VideoJob]:
        """The case's jobs, newest first (the caller has checked the case)."""
        rows = session.execute(
            select(VideoJobRow)
            .where(VideoJobRow.case_id == case_id)
            .order_by(VideoJobRow.created_at.desc())
        ).scalars()
        return [VideoJob.of(r) for r in rows]

    def cancel(self, session: Session, *, actor: Actor, job_id: str) -> VideoJob:
        """Cancel a job: a queued one ends now, a running one stops at its next frame;
        either stores nothing. A finished job is left as it is."""
        row = self._row(session, job_id)
        scoped_case(session, actor=actor, case_id=row.case_id, perm=Perm.SEARCH)
        if row.state in (JobState.QUEUED, JobState.RUNNING):
            row.cancel_requested = True
            if row.state == JobState.QUEUED:
                row.state, row.finished_at = JobState.CANCELLED, _now()
            audit.append(
                session,
                actor=actor.username,
                action=audit.Action.VIDEO_CANCEL,
                target=f"video_job:{row.id}",
                detail={"case": row.case_id},
            )
            session.commit()
            with self._lock:
                event = self._cancel.get(job_id)
            if event is not None:
                event.set()
        return VideoJob.of(row)

    def _update(self, job_id: str, **values: Any) -> int:
        """Write ``values`` to the job's row in a transaction of its own; rowcount."""
        where = values.pop("where_state", None)
        stmt = update(VideoJobRow).where(VideoJobRow.id == job_id)
        if where is not None:
            stmt = stmt.where(VideoJobRow.state == where)
        with self.sessions.begin() as s:
            result: Any = s.execute(stmt.values(**values))
            return int(result.rowcount)

    def _run(self, job_id: str, path: Path) -> None:
        with self._lock:
            actor = self._actors.get(job_id)
            event = self._cancel.get(job_id) or threading.Event()
            search = self._searches.get(job_id)
        try:
            if self._stopping.is_set() or actor is None:
                return  # left queued: the next start marks it interrupted
            # only a job still queued starts (a cancel may have ended it meanwhile)
            if not self._update(
                job_id, where_state=JobState.QUEUED, state=JobState.RUNNING, started_at=_now()
            ):
                return
            with self.sessions() as s:
                filename = self._row(s, job_id).filename
            data = path.read_bytes()
            last = [0.0]

            def progress(p: Progress) -> None:
                now = time.monotonic()
                if now - last[0] >= PROGRESS_EVERY_S:
                    last[0] = now
                    self._update(job_id, video_s=p.video_s, fps=p.fps, eta_s=p.eta_s)

            found = self.analyser.persons(
                path, source=filename, progress=progress, cancelled=event.is_set
            )
            if event.is_set():
                raise Cancelled("cancelled")
            probe_id = self._store(job_id, actor, filename, data, found, done=search is None)
            if search is not None:
                rows = self._search_persons(job_id, actor, probe_id, len(found.persons), search)
                self._join(job_id, actor, probe_id, found, rows, search)
                self._update(job_id, state=JobState.DONE)
        except FacetraceError as exc:
            if event.is_set() and self._stopping.is_set():
                state, error = JobState.INTERRUPTED, STOPPED
            elif event.is_set():
                state, error = JobState.CANCELLED, ""
            else:
                state, error = JobState.FAILED, str(exc)
            self._update(job_id, state=state, error=error, finished_at=_now(), eta_s=None)
        except Exception as exc:  # a bug: the job says so, the worker lives on
            log.exception("video job %s failed", job_id)
            self._update(
                job_id,
                state=JobState.FAILED,
                error=f"internal error ({type(exc).__name__})",
                finished_at=_now(),
            )
        finally:
            path.unlink(missing_ok=True)
            with self._lock:
                self._actors.pop(job_id, None)
                self._cancel.pop(job_id, None)
                self._searches.pop(job_id, None)

    def _search_persons(
        self,
        job_id: str,
        actor: Actor,
        probe_id: int,
        persons: int,
        search: PersonSearch,
        first: int = 0,
    ) -> list[Searched]:
        """Search each stored person once (audited by the search itself); a refusal
        leaves that person to be searched by hand and the others go on. Returns, per
        person, its face number and first subject above the threshold (None: no search)."""
        out: list[Searched] = []
        for face in range(first, first + persons):
            with self.sessions() as s:
                try:
                    made = search(s, actor, probe_id, face)
                    subject = first_subject(made) if isinstance(made, Search) else None
                    s.commit()
                    out.append((face, subject))
                except FacetraceError as exc:
                    s.rollback()
                    log.info("video job %s: person %d not searched: %s", job_id, face + 1, exc)
                    out.append(None)
        return out

    def _join(
        self,
        job_id: str,
        actor: Actor,
        probe_id: int,
        found: VideoPersons,
        rows: list[Searched],
        search: PersonSearch,
    ) -> None:
        """Once every person was searched: join the persons the gallery found as one
        subject, by :func:`facetrace.gallery.video.join_same_subject`'s rule (never on
        screen together, templates close enough, the joined template's own search still
        finding that subject first above the threshold). A joined person is a new track
        face of the probe (``extra["joins"]``: the face numbers of its fragments),
        searched like any person of the case (audited); once the rule ends, each joined
        face says whether it was kept (``extra["join"]``: "kept" or "refused", a
        refusal or a step joined again). Nothing is deleted: the fragments and their
        searches stay, and :func:`listed_faces` lists each person once."""
        from facetrace.gallery.video import join_same_subject

        originals = list(found.people)
        if len(originals) != len(rows) or len(originals) < 2 or found.options is None:
            return
        options = found.options
        made: list[int] = []

        def search_joined(persons: list[Person]) -> list[Searched]:
            (joined,) = persons
            tracks = set(joined.tracks)
            covers = [row[0] for o, row in zip(originals, rows, strict=True)
                      if row is not None and set(o.tracks) <= tracks]  # fmt: skip
            with self.sessions.begin() as s:
                (face,) = add_probe_faces(
                    s,
                    actor=actor,
                    probe_id=probe_id,
                    faces=[person_face(joined, {"joins": covers, "join": "refused"})],
                    origin=FaceOrigin.TRACK,
                )
                index = int(face.face_index)
            made.append(index)
            return self._search_persons(job_id, actor, probe_id, 1, search, first=index)

        def subject(row: Searched) -> str | None:
            return None if row is None else row[1]

        kept = join_same_subject(originals, rows, search_joined, options, subject)
        final = {row[0] for _, row in kept if row is not None}
        if not made:
            return
        with self.sessions.begin() as s:
            for face_row in s.execute(
                select(ProbeFaceRow).where(
                    ProbeFaceRow.probe_id == probe_id, ProbeFaceRow.face_index.in_(made)
                )
            ).scalars():
                extra = dict(face_row.extra or {})
                extra["join"] = "kept" if face_row.face_index in final else "refused"
                face_row.extra = extra
            self._row(s, job_id).persons = len(kept)

    def _store(
        self,
        job_id: str,
        actor: Actor,
        filename: str,
        data: bytes,
        found: VideoPersons,
        *,
        done: bool,
    ) -> int:
        """The probe, its persons and (``done``) the job's end in one transaction."""
        with self.sessions.begin() as s:
            row = self._row(s, job_id)
            probe = add_probe(
                s,
                actor=actor,
                case_id=row.case_id,
                data=data,
                filename=filename,
                found=PhotoFaces(width=found.width, height=found.height, faces=()),
                kind="video",
            )
            add_probe_faces(
                s, actor=actor, probe_id=probe.id, faces=found.persons, origin=FaceOrigin.TRACK
            )
            if done:
                row.state = JobState.DONE
            row.probe_id = int(probe.id)
            row.persons = len(found.persons)
            row.video_s, row.eta_s, row.finished_at = row.duration_s, 0.0, _now()
            return int(probe.id)


# A searched person of a video job: its face number and the subject its search found
# first above the threshold (None when none); None for a person whose search was refused.
Searched = tuple[int, str | None] | None


def first_subject(search: Search) -> str | None:
    """The subject of a search's best candidate at or above its threshold, if any."""
    above = [c for c in search.candidates if c.above_threshold]
    return min(above, key=lambda c: c.rank).subject_external_id if above else None


def listed_faces(faces: list[ProbeFaceRow]) -> list[ProbeFaceRow]:
    """A probe's faces with each person once: a joined person (``extra["join"] ==
    "kept"``) stands for its fragments (``extra["joins"]``), which are left out, as is
    a join that was refused; in order of first appearance. The rows themselves all
    stay, with their searches."""
    joined = {
        int(i)
        for f in faces
        if (f.extra or {}).get("join") == "kept"
        for i in (f.extra or {}).get("joins", [])
    }
    kept = [
        f
        for f in faces
        if f.face_index not in joined and (f.extra or {}).get("join", "kept") == "kept"
    ]
    return sorted(kept, key=_first_seen)


def person_names(faces: list[ProbeFaceRow]) -> dict[int, str]:
    """What pages call each face of a video probe: the persons listed
    (:func:`listed_faces`) are "Person 1" to "Person n" in order of first appearance, the
    fragments a kept join stands for "Person k (one appearance)", a join not kept "a join
    not kept". A joined person is stored after its fragments, so its face number says
    nothing to a reader; the stored numbers stay what forms and the API use."""
    listed = listed_faces(faces)
    names = {f.face_index: f"Person {k}" for k, f in enumerate(listed, 1)}
    for k, f in enumerate(listed, 1):
        extra = f.extra or {}
        if extra.get("join") == "kept":
            for j in extra.get("joins", []):
                names[int(j)] = f"Person {k} (one appearance)"
    for f in faces:
        names.setdefault(f.face_index, "a join not kept")
    return names


def _first_seen(face: ProbeFaceRow) -> float:
    """When a video person is first on screen (a joined one is stored after the others)."""
    intervals = (face.extra or {}).get("intervals") or [[face.timestamp_s or 0.0]]
    return float(intervals[0][0])


def probe_searches(session: Session, *, probe_id: int) -> list[int]:
    """The ids of the searches made of a probe's faces, oldest first."""
    return [
        int(i)
        for i in session.execute(
            select(Search.id).where(Search.probe_id == probe_id).order_by(Search.id)
        ).scalars()
    ]


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
