"""Gallery management for the service: collections with their legal basis and retention
rule, imports (zip or manifest) run in the background with progress, browsing with
provenance, and deletions with tombstones. Permission checks and audit entries here;
the vector work goes through :class:`facetrace.gallery_port.GalleryPort`.
"""

from __future__ import annotations

import logging
import shutil
import threading
import uuid
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from facetrace import audit
from facetrace.accounts import Actor, Perm, require
from facetrace.errors import Conflict, FacetraceError, InvalidRequest, NotFound
from facetrace.store.models import Collection, FaceRow, Photo, Subject

log = logging.getLogger(__name__)

MANIFEST_NAMES = ("manifest.csv", "manifest.jsonl", "manifest.json")


def create_collection(
    session: Session,
    *,
    actor: Actor,
    name: str,
    legal_basis: str,
    retention: str,
    description: str = "",
    department_id: int | None = None,
) -> Collection:
    """A new collection; the legal basis and the retention rule are required."""
    require(actor, Perm.COLLECTIONS_MANAGE)
    name, legal_basis, retention = name.strip(), legal_basis.strip(), retention.strip()
    if not name or len(name) > 200:
        raise InvalidRequest("a collection needs a name (at most 200 characters)")
    if not legal_basis:
        raise InvalidRequest("a collection needs the legal basis under which it is held")
    if not retention:
        raise InvalidRequest("a collection needs its retention rule")
    if session.execute(select(Collection.id).where(Collection.name == name)).first():
        raise Conflict(f"collection {name!r} exists already")
    row = Collection(
        name=name,
        legal_basis=legal_basis,
        retention=retention,
        description=description.strip(),
        department_id=department_id,
    )
    session.add(row)
    session.flush()
    audit.append(
        session,
        actor=actor.username,
        action=audit.Action.ADMIN,
        target=f"collection:{row.id}",
        detail={"op": "collection_create", "name": name, "legal_basis": legal_basis},
    )
    return row


@dataclass(frozen=True, slots=True)
class CollectionView:
    """A collection with its counts."""

    collection: Collection
    subjects: int
    photos: int


def list_collections(session: Session, *, actor: Actor) -> list[CollectionView]:
    """Every collection with subject and photo counts."""
    require(actor, Perm.GALLERY_BROWSE)
    subjects: dict[int, int] = dict(
        session.execute(
            select(Subject.collection_id, func.count(Subject.id)).group_by(Subject.collection_id)
        ).all()
    )
    photos: dict[int, int] = dict(
        session.execute(
            select(Photo.collection_id, func.count(Photo.id)).group_by(Photo.collection_id)
        ).all()
    )
    rows = session.execute(select(Collection).order_by(Collection.name)).scalars()
    return [CollectionView(c, subjects.get(c.id, 0), photos.get(c.id, 0)) for c in rows]


def searchable_collections(session: Session, *, actor: Actor) -> list[str]:
    """Names of the collections the actor's searches cover: those shared with every
    department (no department set) and those of the actor's own department."""
    stmt = select(Collection.name).where(
        (Collection.department_id.is_(None)) | (Collection.department_id == actor.department_id)
    )
    return list(session.execute(stmt).scalars())


def get_collection(session: Session, *, actor: Actor, collection_id: int) -> Collection:
    """One collection; raises NotFound."""
    require(actor, Perm.GALLERY_BROWSE)
    row = session.get(Collection, collection_id)
    if row is None:
        raise NotFound(f"no collection {collection_id}")
    return row


def list_subjects(
    session: Session, *, actor: Actor, collection_id: int, limit: int = 500, offset: int = 0
) -> list[tuple[Subject, int]]:
    """Subjects of a collection with their photo counts, by name."""
    get_collection(session, actor=actor, collection_id=collection_id)
    counts = (
        select(Photo.subject_id, func.count(Photo.id).label("n"))
        .group_by(Photo.subject_id)
        .subquery()
    )
    rows = session.execute(
        select(Subject, func.coalesce(counts.c.n, 0))
        .outerjoin(counts, counts.c.subject_id == Subject.id)
        .where(Subject.collection_id == collection_id)
        .order_by(Subject.name, Subject.external_id)
        .limit(limit)
        .offset(offset)
    ).all()
    return [(s, int(n)) for s, n in rows]


def get_subject(session: Session, *, actor: Actor, subject_id: int) -> tuple[Subject, list[Photo]]:
    """A subject and its photos with provenance."""
    require(actor, Perm.GALLERY_BROWSE)
    subject = session.get(Subject, subject_id)
    if subject is None:
        raise NotFound(f"no subject {subject_id}")
    photos = list(
        session.execute(
            select(Photo).where(Photo.subject_id == subject.id).order_by(Photo.id)
        ).scalars()
    )
    return subject, photos


def get_photo(session: Session, *, actor: Actor, photo_id: int) -> Photo:
    """A reference photo. Reviewers and investigators see them through results too."""
    if not (actor.can(Perm.GALLERY_BROWSE) or actor.can(Perm.RESULTS_VIEW)):
        require(actor, Perm.GALLERY_BROWSE)
    photo = session.get(Photo, photo_id)
    if photo is None:
        raise NotFound(f"no photo {photo_id}")
    return photo


def subject_face(session: Session, *, photo_id: int) -> FaceRow | None:
    """The face marked as the photo's subject, for cropping."""
    return session.execute(
        select(FaceRow).where(FaceRow.photo_id == photo_id, FaceRow.is_subject.is_(True))
    ).scalar_one_or_none()


def audit_deletion(session: Session, *, actor: Actor, target: str, faces: int) -> None:
    """Record a deletion done by the gallery (which tombstones the photos)."""
    require(actor, Perm.COLLECTIONS_MANAGE)
    audit.append(
        session,
        actor=actor.username,
        action=audit.Action.DELETE,
        target=target,
        detail={"faces_removed": faces},
    )


# --- imports ----------------------------------------------------------------------------


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

    def as_dict(self) -> dict[str, Any]:
        """JSON for the progress endpoint."""
        return {
            "id": self.id,
            "collection": self.collection,
            "state": self.state,
            "done": self.done,
            "total": self.total,
            "summary": self.summary,
            "error": self.error,
        }


def safe_extract(archive: Path, dest: Path, *, max_files: int, max_bytes: int) -> Path:
    """Unpack a zip with limits on member count and unpacked size, refusing absolute or
    ``..`` paths and links. Returns the manifest if the zip has one at its top (or in a
    single top folder), else ``dest`` for a folder scan."""
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile as exc:
        raise InvalidRequest("the upload is not a valid zip file") from exc
    with zf:
        members = [m for m in zf.infolist() if not m.is_dir()]
        if len(members) > max_files:
            raise InvalidRequest(f"the zip holds {len(members)} files; the limit is {max_files}")
        total = sum(m.file_size for m in members)
        if total > max_bytes:
            raise InvalidRequest(
                f"the zip unpacks to {total / 1e6:.0f} MB; the limit is {max_bytes / 1e6:.0f} MB"
            )
        for m in members:
            p = PurePosixPath(m.filename)
            if p.is_absolute() or ".." in p.parts or (m.external_attr >> 16) & 0o170000 == 0o120000:
                raise InvalidRequest(f"unsafe path in the zip: {m.filename!r}")
        zf.extractall(dest)
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


class ImportJobs:
    """Background imports, one at a time (the engine uses the machine's cores itself)."""

    def __init__(self, *, root: Path) -> None:
        self.root = root
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
        sessions: sessionmaker[Session],
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
                job.state = "done"
            except FacetraceError as exc:
                job.error, job.state = str(exc), "failed"
            except Exception:  # a worker thread must record, not vanish
                log.exception("import %s failed", job_id)
                job.error, job.state = "the import failed; see the server log", "failed"
            with sessions.begin() as s:
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
