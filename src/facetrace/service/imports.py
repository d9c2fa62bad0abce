"""Imports into a collection: a zip (photos in per-subject folders, or with a manifest
inside) or a manifest naming files under the server's import folder, unpacked with
limits and run in the background with progress. The vector work goes through
:class:`facetrace.service.gallery_port.GalleryPort`; permission checks and audit
entries are here.
"""

from __future__ import annotations

import csv
import errno
import logging
import lzma
import shutil
import struct
import threading
import uuid
import zipfile
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session, sessionmaker

from facetrace.errors import FacetraceError, InvalidRequest, ManifestError, NotFound
from facetrace.service import audit
from facetrace.service.accounts import Actor, Perm, require
from facetrace.service.collections import get_collection
from facetrace.store.models import Collection

if TYPE_CHECKING:
    from facetrace.service.gallery_port import GalleryPort

log = logging.getLogger(__name__)

MANIFEST_NAMES = ("manifest.csv", "manifest.jsonl", "manifest.json")
MANIFEST_SUFFIXES = (".csv", ".jsonl", ".json")


@dataclass
class ImportJob:
    """Progress of one import, polled by the browser."""

    id: str
    collection: str
    user: str
    state: str = "queued"  # queued, running, done, failed
    done: int = 0
    total: int = 0
    summary: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    # every problem of a refused manifest: (line or None, reason), the user's file name
    problems: list[tuple[int | None, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON for the progress endpoint. ``summary.skipped_files`` lists each photo
        left out as [name in the upload, reason]; ``problems`` a refused manifest's
        rows as {line, reason}."""
        return {
            "id": self.id,
            "collection": self.collection,
            "state": self.state,
            "done": self.done,
            "total": self.total,
            "summary": self.summary,
            "error": self.error,
            "problems": [{"line": n, "reason": r} for n, r in self.problems],
        }

    def skipped_files(self) -> list[tuple[str, str]]:
        """(file name in the upload, reason) of every photo the import left out."""
        return [(str(n), str(r)) for n, r in self.summary.get("skipped_files", [])]


REPORT_NAME = "skipped-files.csv"


def write_report(job: ImportJob, folder: Path) -> Path | None:
    """Write the job's skipped files and reasons as CSV into its folder (kept with the
    job for the record); None when nothing was skipped."""
    rows = job.skipped_files()
    if not rows:
        return None
    path = folder / REPORT_NAME
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["file", "reason"])
        writer.writerows(rows)
    return path


MAX_NAME_BYTES = 255
"""The longest file or folder name the file systems we run on accept (ext4, XFS)."""
MAX_PATH_BYTES = 1024
"""The longest path inside an upload: far below PATH_MAX once under the data directory."""

# What a damaged or hostile zip raises while it is read: a forged size or CRC, a cut-off
# stream, an unsupported compression method, an encrypted member.
_BROKEN_ZIP = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    EOFError,
    NotImplementedError,
    RuntimeError,
    ValueError,
    struct.error,
    lzma.LZMAError,
)
# File system refusals caused by the upload (its names, its offsets), not by the server.
_NAME_ERRNOS = {
    errno.ENAMETOOLONG,
    errno.ENOTDIR,
    errno.EISDIR,
    errno.EEXIST,
    errno.EILSEQ,
    errno.EINVAL,  # a seek past the start: offsets forged in the central directory
}


def _parts(name: str) -> list[str]:
    """A member's path as :meth:`zipfile.ZipFile.extract` writes it (no empty, ``.`` or
    ``..`` parts)."""
    return [p for p in name.split("/") if p not in ("", ".", "..")]


def check_members(infos: list[zipfile.ZipInfo], *, max_files: int, max_bytes: int) -> None:
    """Refuse, before anything is written, a zip that could not be unpacked safely: no
    files, too many entries or bytes (as declared; :mod:`zipfile` never writes more than
    a member declares), absolute or ``..`` paths, links, names longer than the file
    system allows, and a name that is a file in one entry and a folder in another."""
    members = [m for m in infos if not m.is_dir()]
    if not members:
        raise InvalidRequest("the zip holds no files")
    if len(infos) > max_files:
        raise InvalidRequest(f"the zip holds {len(infos)} entries; the limit is {max_files}")
    total = sum(m.file_size for m in members)
    if total > max_bytes:
        raise InvalidRequest(
            f"the zip unpacks to {total / 1e6:.0f} MB; the limit is {max_bytes / 1e6:.0f} MB"
        )
    files: set[tuple[str, ...]] = set()
    folders: set[tuple[str, ...]] = set()
    for m in infos:
        p = PurePosixPath(m.filename)
        if p.is_absolute() or ".." in p.parts or (m.external_attr >> 16) & 0o170000 == 0o120000:
            raise InvalidRequest(f"unsafe path in the zip: {m.filename!r}")
        parts = _parts(m.filename)
        if any(len(part.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES for part in parts):
            raise InvalidRequest(
                f"a name in the zip is longer than {MAX_NAME_BYTES} bytes: {m.filename[:80]!r}..."
            )
        if len(m.filename.encode("utf-8", "surrogateescape")) > MAX_PATH_BYTES:
            raise InvalidRequest(
                f"a path in the zip is longer than {MAX_PATH_BYTES} bytes: {m.filename[:80]!r}..."
            )
        if not parts:
            continue
        for i in range(1, len(parts)):
            folders.add(tuple(parts[:i]))
        (folders if m.is_dir() else files).add(tuple(parts))
    clash = files & folders
    if clash:
        name = "/".join(sorted(clash)[0])
        raise InvalidRequest(f"the zip holds both a file and a folder named {name!r}")


def safe_extract(archive: Path, dest: Path, *, max_files: int, max_bytes: int) -> Path:
    """Unpack a zip with limits on member count and unpacked size, refusing absolute or
    ``..`` paths and links (see :func:`check_members`); a damaged zip (a forged size or
    checksum, a cut-off stream) is an InvalidRequest too. Returns the manifest if the
    zip has one at its top (or in a single top folder), else ``dest`` for a folder scan."""
    try:
        zf = zipfile.ZipFile(archive)
    except _BROKEN_ZIP as exc:
        raise InvalidRequest("the upload is not a valid zip file") from exc
    with zf:
        check_members(zf.infolist(), max_files=max_files, max_bytes=max_bytes)
        try:
            zf.extractall(dest)
        except _BROKEN_ZIP as exc:
            raise InvalidRequest(f"the zip is damaged and cannot be unpacked ({exc})") from exc
        except OSError as exc:
            if exc.errno not in _NAME_ERRNOS:
                raise
            raise InvalidRequest(f"the zip cannot be unpacked here: {exc.strerror}") from exc
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


def upload_name(filename: str) -> str:
    """The name an upload is kept under in its job folder: the user's base name (so
    messages about a manifest name the user's file) without control characters,
    shortened to what a file system accepts, with its suffix kept."""
    name = "".join(c for c in Path(filename.replace("\\", "/")).name if c.isprintable())
    if name in ("", ".", ".."):
        name = "upload"
    name = name.encode("utf-8", "replace").decode("utf-8")
    suffix = Path(name).suffix if len(Path(name).suffix) <= 16 else ""
    stem = name[: len(name) - len(suffix)]
    budget = MAX_NAME_BYTES - len(suffix.encode("utf-8"))
    return stem.encode("utf-8")[:budget].decode("utf-8", "ignore") + suffix


class ImportJobs:
    """Background imports, one at a time (the engine uses the machine's cores itself)."""

    def __init__(self, *, root: Path, sessions: sessionmaker[Session]) -> None:
        self.root = root
        self._sessions = sessions
        self._jobs: dict[str, ImportJob] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="import")

    def get(self, job_id: str) -> ImportJob:
        """A job by id; raises NotFound."""
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise NotFound(f"no import {job_id}")
        return job

    def new_dir(self) -> tuple[str, Path]:
        """A fresh job id and its folder under the data directory (kept: the gallery
        records the photos' paths there)."""
        job_id = uuid.uuid4().hex[:12]
        path = self.root / job_id
        path.mkdir(parents=True)
        return job_id, path

    def submit(
        self,
        *,
        job_id: str,
        collection: Collection,
        user: str,
        source: Path,
        run: Callable[[Path, str, str, Callable[[int, int], None]], dict[str, Any]],
    ) -> ImportJob:
        """Queue an import of ``source`` (folder or manifest) into ``collection``."""
        job = ImportJob(id=job_id, collection=collection.name, user=user)
        with self._lock:
            self._jobs[job_id] = job
        name, basis = collection.name, collection.legal_basis

        def progress(done: int, total: int) -> None:
            job.done, job.total = done, total

        def work() -> None:
            job.state = "running"
            try:
                job.summary = run(source, name, basis, progress)
                job.summary.pop("report", None)  # a server path; the report is written below
                job.state = "done"
                if write_report(job, self.root / job_id):
                    job.summary["report"] = REPORT_NAME
            except ManifestError as exc:
                job.error, job.state = str(exc), "failed"
                job.problems = list(exc.problems)
            except FacetraceError as exc:
                job.error, job.state = str(exc), "failed"
            except Exception:  # a worker thread must record, not vanish
                log.exception("import %s failed", job_id)
                job.error, job.state = "the import failed; see the server log", "failed"
            with self._sessions.begin() as s:
                audit.append(
                    s,
                    actor=user,
                    action=audit.Action.IMPORT,
                    target=f"collection:{name}",
                    detail={
                        "job": job_id,
                        "state": job.state,
                        "error": job.error,
                        "photos_added": job.summary.get("photos_added"),
                        "skipped": job.summary.get("skipped"),
                    },
                )

        self._pool.submit(work)
        return job

    def shutdown(self) -> None:
        """Wait for the running import and stop."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    @staticmethod
    def discard(path: Path) -> None:
        """Remove a job folder after a refused upload."""
        shutil.rmtree(path, ignore_errors=True)


@dataclass(frozen=True, slots=True)
class ImportLimits:
    """What an import upload may hold: files and unpacked bytes of a zip, and the folder
    a bare manifest may name files under (None: manifests only inside a zip)."""

    max_files: int
    max_bytes: int
    import_root: Path | None


def queue_import(
    session: Session,
    *,
    actor: Actor,
    collection_id: int,
    filename: str,
    data: bytes,
    jobs: ImportJobs,
    gallery: GalleryPort,
    limits: ImportLimits,
) -> ImportJob:
    """Unpack an uploaded zip (or keep a manifest) into a new job folder and queue its
    import into the collection. Raises InvalidRequest for an unusable upload, leaving
    no folder behind."""
    require(actor, Perm.COLLECTIONS_MANAGE)
    name = upload_name(filename)
    collection = get_collection(session, actor=actor, collection_id=collection_id)
    job_id, folder = jobs.new_dir()
    try:
        target = folder / name
        target.write_bytes(data)
        if name.lower().endswith(".zip"):
            source = safe_extract(
                target, folder / "files", max_files=limits.max_files, max_bytes=limits.max_bytes
            )
            target.unlink()
            target = folder / "files"  # the photos' root: names are shown relative to it
        elif name.lower().endswith(MANIFEST_SUFFIXES):
            if limits.import_root is None:
                raise InvalidRequest(
                    "a manifest alone can only name files under the server's import folder, "
                    "and none is configured (FACETRACE_SERVICE__IMPORT_ROOT); upload a zip "
                    "holding the manifest and its photos instead"
                )
            source = target
        else:
            raise InvalidRequest("upload a .zip of photos or a manifest (.csv, .jsonl)")
    except Exception:
        jobs.discard(folder)
        raise
    root = target if name.lower().endswith(".zip") else Path(str(limits.import_root))
    session.commit()  # the import thread writes through the gallery's own connection
    return jobs.submit(
        job_id=job_id,
        collection=collection,
        user=actor.username,
        source=source,
        run=lambda path, coll, basis, progress: gallery.ingest(
            path, collection=coll, legal_basis=basis, progress=progress, allowed_root=root
        ),
    )
