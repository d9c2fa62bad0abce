"""Imports into a collection: a zip (photos in per-subject folders, or with a manifest
inside) or a manifest naming files under the server's import folder, unpacked with
limits and run as durable background jobs.

A job lives in SQL (:class:`facetrace.store.service_models.ImportJobRow`): queued,
running, then done, failed or cancelled; a job the service left queued or running
(a crash, ``kill -9``) is marked interrupted when the service starts again and can be
resumed, skipping the photos already committed (by hash). Each committed batch writes
the job's counters and an audit entry in its own transaction, so the log and the
progress never run ahead of the gallery nor behind it. The upload's folder is deleted
when the job ends, whatever the outcome; the stored photos are kept in the data
directory's photo store. Uploads are bounded per job (files, bytes) and per department
(what its unfinished jobs hold on disk). The vector work goes through
:class:`facetrace.service.gallery_port.GalleryPort`.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import shutil
import threading
import uuid
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from facetrace.errors import (
    FacetraceError,
    InvalidRequest,
    ManifestError,
    NotFound,
    QuotaExceeded,
    RuleViolation,
)
from facetrace.service import audit
from facetrace.service.accounts import Actor, Perm, require
from facetrace.service.collections import get_collection
from facetrace.store.models import Collection
from facetrace.store.service_models import ImportJobRow

if TYPE_CHECKING:
    from facetrace.gallery.ingest import Batch
    from facetrace.service.gallery_port import GalleryPort

log = logging.getLogger(__name__)

MANIFEST_NAMES = ("manifest.csv", "manifest.jsonl", "manifest.json")
MANIFEST_SUFFIXES = (".csv", ".jsonl", ".json")

QUEUED, RUNNING, DONE, FAILED, CANCELLED, INTERRUPTED = (
    "queued", "running", "done", "failed", "cancelled", "interrupted",
)  # fmt: skip
UNFINISHED = (QUEUED, RUNNING, INTERRUPTED)  # these hold their upload on disk
MARKER = ".facetrace-upload"  # in every job folder: swept at start when its job has ended
CHUNK = 1 << 20


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class ImportJob:
    """An import as the API and the pages show it (a snapshot of its row, plus the
    photo count reached in memory between two committed batches)."""

    id: str
    collection: str
    collection_id: int
    user: str
    filename: str
    state: str
    cancel_requested: bool
    runs: int
    batches: int
    done: int
    total: int
    photos_added: int
    faces_added: int
    already_present: int
    skipped: int
    skipped_list: tuple[tuple[str, str], ...]
    error: str
    # every problem of a refused manifest: (line or None, reason), the user's file name
    problems: tuple[tuple[int | None, str], ...]
    created_at: datetime
    finished_at: datetime | None

    @property
    def finished(self) -> bool:
        """Done, failed or cancelled: its upload is gone."""
        return self.state not in UNFINISHED

    def as_dict(self) -> dict[str, Any]:
        """JSON for the progress endpoint. ``summary.skipped_files`` lists each photo
        left out as [name in the upload, reason]; ``problems`` a refused manifest's
        rows as {line, reason}."""
        return {
            "id": self.id,
            "collection": self.collection,
            "collection_id": self.collection_id,
            "user": self.user,
            "filename": self.filename,
            "state": self.state,
            "cancel_requested": self.cancel_requested,
            "runs": self.runs,
            "batches": self.batches,
            "done": self.done,
            "total": self.total,
            "summary": {
                "photos_added": self.photos_added,
                "faces_added": self.faces_added,
                "already_present": self.already_present,
                "skipped": self.skipped,
                "skipped_files": [list(p) for p in self.skipped_list],
            },
            "error": self.error,
            "problems": [{"line": n, "reason": r} for n, r in self.problems],
            "created_at": self.created_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
        }

    def skipped_files(self) -> list[tuple[str, str]]:
        """(file name in the upload, reason) of every photo the import left out."""
        return list(self.skipped_list)

    def skipped_csv(self) -> str:
        """The photos left out and why, as CSV (names as in the user's upload)."""
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["file", "reason"])
        writer.writerows(self.skipped_list)
        return out.getvalue()


def _view(row: ImportJobRow, collection: str, live_done: int | None = None) -> ImportJob:
    return ImportJob(
        id=row.id,
        collection=collection,
        collection_id=row.collection_id,
        user=row.username,
        filename=row.filename,
        state=row.state,
        cancel_requested=row.cancel_requested,
        runs=row.runs,
        batches=row.batches,
        done=max(row.done, live_done or 0) if row.state == RUNNING else row.done,
        total=row.total,
        photos_added=row.photos_added,
        faces_added=row.faces_added,
        already_present=row.already_present,
        skipped=row.skipped,
        skipped_list=tuple((str(n), str(r)) for n, r in row.skipped_files or []),
        error=row.error,
        problems=tuple((p[0], str(p[1])) for p in row.problems or []),
        created_at=row.created_at,
        finished_at=row.finished_at,
    )


# -- unpacking ---------------------------------------------------------------


def _check_members(zf: zipfile.ZipFile, *, max_files: int, max_bytes: int) -> list[zipfile.ZipInfo]:
    members = [m for m in zf.infolist() if not m.is_dir()]
    if not members:
        raise InvalidRequest("the zip holds no files")
    if len(members) > max_files:
        raise QuotaExceeded(f"the zip holds {len(members)} files; the limit is {max_files}")
    total = sum(m.file_size for m in members)
    if total > max_bytes:
        raise QuotaExceeded(
            f"the zip unpacks to {total / 1e6:.0f} MB; the limit is {max_bytes / 1e6:.0f} MB"
        )
    for m in members:
        p = PurePosixPath(m.filename)
        if p.is_absolute() or ".." in p.parts or (m.external_attr >> 16) & 0o170000 == 0o120000:
            raise InvalidRequest(f"unsafe path in the zip: {m.filename!r}")
    return members


def safe_extract(archive: Path, dest: Path, *, max_files: int, max_bytes: int) -> Path:
    """Unpack a zip with limits on member count and unpacked size (counted as written,
    so a forged size field cannot get past it), refusing absolute or ``..`` paths and
    links. Returns the manifest if the zip has one at its top (or in a single top
    folder), else ``dest`` for a folder scan. Raises InvalidRequest (or QuotaExceeded
    past a limit); the caller removes ``dest``."""
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise InvalidRequest("the upload is not a valid zip file") from exc
    written = 0
    with zf:
        members = _check_members(zf, max_files=max_files, max_bytes=max_bytes)
        dest.mkdir(parents=True, exist_ok=True)
        for m in members:
            target = dest.joinpath(*PurePosixPath(m.filename).parts)
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(m) as src, open(target, "wb") as out:
                    while block := src.read(CHUNK):
                        written += len(block)
                        if written > max_bytes:
                            raise QuotaExceeded(
                                "the zip unpacks to more than its stated size and the limit "
                                f"of {max_bytes / 1e6:.0f} MB"
                            )
                        out.write(block)
            except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as exc:
                raise InvalidRequest(f"the zip is damaged at {m.filename!r}: {exc}") from exc
            except (NotImplementedError, RuntimeError) as exc:  # unsupported method, encrypted
                raise InvalidRequest(f"cannot unpack {m.filename!r}: {exc}") from exc
            except OSError as exc:  # a name too long, a file where a folder is, ...
                raise InvalidRequest(
                    f"cannot unpack {m.filename!r}: {exc.strerror or exc}"
                ) from exc
    for base in [dest, *[d for d in dest.iterdir() if d.is_dir()]]:
        for name in MANIFEST_NAMES:
            if (base / name).is_file():
                return base / name
    # A zip of one folder that holds the per-person folders: scan inside it.
    entries = [p for p in dest.iterdir() if not p.name.startswith((".", "__MACOSX"))]
    if len(entries) == 1 and entries[0].is_dir():
        inner = entries[0]
        if any(p.is_dir() for p in inner.iterdir()):
            return inner
    return dest


def _disk_bytes(folder: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(folder):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except OSError:
                continue
    return total


# -- the jobs ------------------------------------------------------------------


class ImportJobs:
    """Durable background imports, run one at a time in this process (the pipeline
    itself uses ``workers`` processes).

    Args:
        root: where the job folders are made (``<data>/imports``).
        sessions: the service's database sessions (jobs, audit).
        gallery: the gallery port that does the vector work.
        photo_store: where stored photos are kept once their upload is gone.
        workers: pipeline processes per import.
        batch_size: photos per committed batch.
    """

    def __init__(
        self,
        *,
        root: Path,
        sessions: sessionmaker[Session],
        gallery: GalleryPort,
        photo_store: Path,
        workers: int = 1,
        batch_size: int = 32,
    ) -> None:
        self.root = root
        self.batch_size = batch_size
        self.photo_store = photo_store
        self.workers = max(1, workers)
        self._sessions = sessions
        self._gallery = gallery
        self._lock = threading.Lock()
        self._cancel: dict[str, threading.Event] = {}
        self._live: dict[str, int] = {}  # photos done between two batches, for the bar
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="import")

    # -- start-up -------------------------------------------------------------

    def recover(self) -> list[str]:
        """At service start: mark the jobs a previous process left queued or running as
        interrupted (audited), and delete the folders of jobs that have ended and of
        uploads that never became a job. Returns the interrupted jobs' ids."""
        with self._sessions.begin() as s:
            rows = s.scalars(
                select(ImportJobRow).where(ImportJobRow.state.in_((QUEUED, RUNNING)))
            ).all()
            for row in rows:
                audit.append(
                    s,
                    actor="system",
                    action=audit.Action.IMPORT_INTERRUPTED,
                    target=f"import:{row.id}",
                    detail={"job": row.id, "was": row.state, "photos_added": row.photos_added},
                )
                row.state, row.cancel_requested = INTERRUPTED, False
            interrupted = [r.id for r in rows]
            keep = set(
                s.scalars(select(ImportJobRow.id).where(ImportJobRow.state.in_(UNFINISHED))).all()
            )
        if self.root.is_dir():
            for folder in self.root.iterdir():
                if (folder / MARKER).is_file() and folder.name not in keep:
                    shutil.rmtree(folder, ignore_errors=True)
        if interrupted:
            log.warning("imports interrupted by the last stop: %s", ", ".join(interrupted))
        return interrupted

    # -- reading ----------------------------------------------------------------

    def get(self, session: Session, *, actor: Actor, job_id: str) -> ImportJob:
        """A job of a collection the actor may manage; raises NotFound (also for another
        department's)."""
        require(actor, Perm.COLLECTIONS_MANAGE)
        row = session.get(ImportJobRow, job_id[:32])
        if row is None:
            raise NotFound(f"no import {job_id}")
        try:
            coll = get_collection(session, actor=actor, collection_id=row.collection_id)
        except NotFound as exc:
            raise NotFound(f"no import {job_id}") from exc
        return _view(row, coll.name, self._live.get(row.id))

    def list_for(
        self, session: Session, *, actor: Actor, collection_id: int, limit: int = 20
    ) -> list[ImportJob]:
        """The collection's latest imports, newest first."""
        require(actor, Perm.COLLECTIONS_MANAGE)
        coll = get_collection(session, actor=actor, collection_id=collection_id)
        rows = session.scalars(
            select(ImportJobRow)
            .where(ImportJobRow.collection_id == coll.id)
            .order_by(ImportJobRow.created_at.desc())
            .limit(limit)
        ).all()
        return [_view(r, coll.name, self._live.get(r.id)) for r in rows]

    # -- control ----------------------------------------------------------------

    def folder(self, job_id: str) -> Path:
        """The job's folder (its upload, while it has not ended)."""
        return self.root / job_id

    def new_dir(self) -> tuple[str, Path]:
        """A fresh job id and its folder, marked as an upload (swept at start unless
        its job is unfinished)."""
        job_id = uuid.uuid4().hex[:12]
        path = self.folder(job_id)
        path.mkdir(parents=True)
        (path / MARKER).touch()
        return job_id, path

    def submit(self, job_id: str) -> None:
        """Run a queued job in the background (after the transaction that queued it has
        committed)."""
        with self._lock:
            self._cancel.setdefault(job_id, threading.Event())
        self._pool.submit(self._run, job_id)

    def cancel(self, session: Session, *, actor: Actor, job_id: str) -> ImportJob:
        """Cancel a job: a queued or interrupted one ends now (its upload is deleted), a
        running one after the batch it is on (its committed batches stay). Raises
        RuleViolation for a job that has ended."""
        job = self.get(session, actor=actor, job_id=job_id)
        row = session.get(ImportJobRow, job.id, with_for_update=True)
        assert row is not None  # read just above, in this transaction
        if row.state not in UNFINISHED:
            raise RuleViolation(f"the import has ended ({row.state}); nothing to cancel")
        audit.append(
            session,
            actor=actor.username,
            action=audit.Action.IMPORT_CANCEL,
            target=f"import:{row.id}",
            detail={"job": row.id, "state": row.state, "photos_added": row.photos_added},
        )
        if row.state == RUNNING:
            row.cancel_requested = True
            with self._lock:
                event = self._cancel.get(row.id)
            if event is not None:
                event.set()
        else:
            self._finish(session, row, CANCELLED, collection=job.collection)
            session.flush()
            self.discard(self.folder(row.id))
        return _view(row, job.collection)

    def resume(self, session: Session, *, actor: Actor, job_id: str) -> ImportJob:
        """Queue an interrupted job again (the caller commits, then :meth:`submit`): the
        photos it committed are skipped by hash. Raises RuleViolation unless interrupted."""
        job = self.get(session, actor=actor, job_id=job_id)
        row = session.get(ImportJobRow, job.id, with_for_update=True)
        assert row is not None
        if row.state != INTERRUPTED:
            raise RuleViolation(
                f"only an interrupted import can be resumed; this one is {row.state}"
            )
        row.state = QUEUED
        audit.append(
            session,
            actor=actor.username,
            action=audit.Action.IMPORT_RESUME,
            target=f"import:{row.id}",
            detail={"job": row.id, "photos_added": row.photos_added, "batches": row.batches},
        )
        return _view(row, job.collection)

    def shutdown(self) -> None:
        """Stop: the running job stops after its current batch and is left interrupted
        (resumable), queued ones are left as they are (marked interrupted at start)."""
        with self._lock:
            for event in self._cancel.values():
                event.set()
            self._stopping = True
        self._pool.shutdown(wait=True, cancel_futures=True)

    @staticmethod
    def discard(path: Path) -> None:
        """Remove a job folder (a refused upload, or a job that has ended)."""
        shutil.rmtree(path, ignore_errors=True)

    # -- running ------------------------------------------------------------------

    _stopping = False

    def _run(self, job_id: str) -> None:
        with self._sessions.begin() as s:
            row = s.get(ImportJobRow, job_id, with_for_update=True)
            if row is None or row.state != QUEUED:
                return
            coll = s.get(Collection, row.collection_id)
            if coll is None:  # pragma: no cover - collections are never deleted as rows
                self._finish(s, row, FAILED, collection="", error="the collection is gone")
                return
            row.state, row.started_at = RUNNING, _now()
            row.runs += 1
            row.skipped, row.skipped_files = 0, []  # a resumed run looks at each again
            name, basis, user = coll.name, coll.legal_basis, row.username
            run, before = row.runs, row.photos_added
            source, root = self.folder(job_id) / row.source, Path(row.root)
        with self._lock:
            event = self._cancel.setdefault(job_id, threading.Event())

        def on_batch(session: Session, batch: Batch) -> None:
            r = session.get(ImportJobRow, job_id)
            assert r is not None
            r.batches += 1
            r.done, r.total = batch.done, batch.total
            r.photos_added += batch.photos_added
            r.faces_added += batch.faces_added
            r.skipped += batch.skipped
            audit.append(
                session,
                actor=user,
                action=audit.Action.IMPORT_BATCH,
                target=f"collection:{name}",
                detail={
                    "job": job_id,
                    "run": run,
                    "batch": batch.number,
                    "photos": batch.photos,
                    "photos_added": batch.photos_added,
                    "faces_added": batch.faces_added,
                    "skipped": batch.skipped,
                    "done": batch.done,
                    "total": batch.total,
                },
            )

        def progress(done: int, total: int) -> None:
            self._live[job_id] = done

        state, error, problems = DONE, "", []
        summary: dict[str, Any] = {}
        try:
            if not source.exists():
                raise InvalidRequest("the upload's files are gone; upload them again")
            summary = self._gallery.ingest(
                source,
                collection=name,
                legal_basis=basis,
                allowed_root=root,
                progress=progress,
                on_batch=on_batch,
                should_stop=event.is_set,
                photo_store=self.photo_store,
                workers=self.workers,
                batch_size=self.batch_size,
            )
            if summary.get("stopped"):
                state = INTERRUPTED if self._stopping else CANCELLED
        except ManifestError as exc:
            state, error, problems = FAILED, str(exc), [list(p) for p in exc.problems]
        except FacetraceError as exc:
            state, error = FAILED, str(exc)
        except Exception:  # a worker thread must record, not vanish
            log.exception("import %s failed", job_id)
            state, error = FAILED, "the import failed; see the server log"
        finally:
            self._live.pop(job_id, None)
            with self._lock:
                self._cancel.pop(job_id, None)
        if state != INTERRUPTED:
            # gone before the job reads as ended (a crash in between leaves it
            # interrupted, and a resume then fails saying the files are gone)
            self.discard(self.folder(job_id))
        with self._sessions.begin() as s:
            row = s.get(ImportJobRow, job_id, with_for_update=True)
            assert row is not None
            if state == INTERRUPTED:  # the service is stopping: resumable at next start
                row.state = INTERRUPTED
                return
            row.skipped_files = [list(p) for p in summary.get("skipped_files", [])]
            # photos a previous run committed are "already present" to this one
            row.already_present = max(0, int(summary.get("already_present") or 0) - before)
            self._finish(s, row, state, collection=name, error=error, problems=problems)

    @staticmethod
    def _finish(
        session: Session,
        row: ImportJobRow,
        state: str,
        *,
        collection: str,
        error: str = "",
        problems: list[Any] | None = None,
    ) -> None:
        """End a job in ``session``: its final state and the audit entry (its upload is
        deleted by the caller once this has committed)."""
        row.state, row.error, row.finished_at = state, error, _now()
        row.problems = problems or []
        row.upload_bytes = 0
        row.cancel_requested = False
        audit.append(
            session,
            actor=row.username,
            action=audit.Action.IMPORT,
            target=f"collection:{collection}",
            detail={
                "job": row.id,
                "state": state,
                "error": error,
                "photos_added": row.photos_added,
                "faces_added": row.faces_added,
                "skipped": row.skipped,
                "batches": row.batches,
            },
        )


@dataclass(frozen=True, slots=True)
class ImportLimits:
    """What an import upload may hold: files and unpacked bytes of one job, what one
    department's unfinished jobs may hold on disk together, and the folder a bare
    manifest may name files under (None: manifests only inside a zip)."""

    max_files: int
    max_bytes: int
    import_root: Path | None
    department_bytes: int = 2_000_000_000


def _held(session: Session, department_id: int | None) -> int:
    """Bytes the department's unfinished imports hold on disk."""
    dept = (
        ImportJobRow.department_id.is_(None)
        if department_id is None
        else ImportJobRow.department_id == department_id
    )
    total = session.scalar(
        select(func.coalesce(func.sum(ImportJobRow.upload_bytes), 0)).where(
            dept, ImportJobRow.state.in_(UNFINISHED)
        )
    )
    return int(total or 0)


def _save_upload(upload: IO[bytes], target: Path, *, limit: int) -> int:
    """Copy the upload to ``target``, refusing more than ``limit`` bytes; returns its size."""
    size = 0
    with open(target, "wb") as out:
        while block := upload.read(CHUNK):
            size += len(block)
            if size > limit:
                raise QuotaExceeded(
                    f"the import file is larger than the limit of {limit / 1e6:.0f} MB"
                )
            out.write(block)
    if not size:
        raise InvalidRequest("the import file is empty")
    return size


def queue_import(
    session: Session,
    *,
    actor: Actor,
    collection_id: int,
    filename: str,
    upload: IO[bytes],
    jobs: ImportJobs,
    limits: ImportLimits,
) -> ImportJob:
    """Unpack an uploaded zip (or keep a manifest) into a new job folder and queue its
    import into the collection, in the caller's transaction (the caller commits, then
    calls ``jobs.submit``). Raises InvalidRequest for an unusable upload and
    QuotaExceeded past the job's or the department's quota, leaving no folder behind."""
    require(actor, Perm.COLLECTIONS_MANAGE)
    name = Path(filename or "upload").name[:200]
    collection = get_collection(session, actor=actor, collection_id=collection_id)
    lower = name.lower()
    if not lower.endswith((".zip", *MANIFEST_SUFFIXES)):
        raise InvalidRequest("upload a .zip of photos or a manifest (.csv, .jsonl)")
    if not lower.endswith(".zip") and limits.import_root is None:
        raise InvalidRequest(
            "a manifest alone can only name files under the server's import folder, "
            "and none is configured (FACETRACE_SERVICE__IMPORT_ROOT); upload a zip "
            "holding the manifest and its photos instead"
        )
    coll_id, dept, coll_name = collection.id, collection.department_id, collection.name
    room = limits.department_bytes - _held(session, dept)
    # the file work runs with no transaction open (on SQLite it would hold the write
    # lock for the whole unpacking); the quota is checked again with the insert
    session.commit()
    job_id, folder = jobs.new_dir()
    try:
        target = folder / name
        _save_upload(upload, target, limit=limits.max_bytes)
        if lower.endswith(".zip"):
            try:
                with zipfile.ZipFile(target) as zf:
                    members = _check_members(
                        zf, max_files=limits.max_files, max_bytes=limits.max_bytes
                    )
                    stated = sum(m.file_size for m in members)
            except (zipfile.BadZipFile, OSError) as exc:
                raise InvalidRequest("the upload is not a valid zip file") from exc
            if stated > room:
                held = limits.department_bytes - room
                raise QuotaExceeded(_department_words(stated, held, limits.department_bytes))
            source = safe_extract(
                target, folder / "files", max_files=limits.max_files, max_bytes=limits.max_bytes
            )
            target.unlink()
            root = folder / "files"  # the photos' root: names are shown relative to it
        else:
            source, root = target, Path(str(limits.import_root))
        size = _disk_bytes(folder)
        held = _held(session, dept)
        if size > limits.department_bytes - held:
            raise QuotaExceeded(_department_words(size, held, limits.department_bytes))
    except Exception:
        jobs.discard(folder)
        raise
    row = ImportJobRow(
        id=job_id,
        collection_id=coll_id,
        department_id=dept,
        username=actor.username,
        filename=name,
        source=source.relative_to(folder).as_posix(),
        root=str(root),
        state=QUEUED,
        cancel_requested=False,
        runs=0,
        batches=0,
        done=0,
        total=0,
        photos_added=0,
        faces_added=0,
        already_present=0,
        skipped=0,
        skipped_files=[],
        problems=[],
        error="",
        upload_bytes=size,
        created_at=_now(),
    )
    session.add(row)
    audit.append(
        session,
        actor=actor.username,
        action=audit.Action.IMPORT_QUEUED,
        target=f"collection:{coll_name}",
        detail={"job": job_id, "file": name, "bytes": size},
    )
    session.flush()
    return _view(row, coll_name)


def _mb(n: int) -> str:
    return f"{n / 1e6:.0f} MB" if n >= 10e6 else f"{n / 1e6:.2f} MB"


def _department_words(size: int, held: int, limit: int) -> str:
    return (
        f"this upload needs {_mb(size)} on disk and the department's unfinished imports "
        f"already hold {_mb(held)} of its {_mb(limit)} quota; wait for them to finish, "
        "or cancel an interrupted one"
    )
