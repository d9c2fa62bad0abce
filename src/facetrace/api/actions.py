"""Steps shared by the API and the web pages that involve more than the database:
uploads to the gallery engine, imports, deletions."""

from __future__ import annotations

from pathlib import Path

from fastapi import UploadFile
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from facetrace import cases, gallery_admin
from facetrace.accounts import Actor, Perm, require
from facetrace.api.deps import read_upload
from facetrace.api.problems import TooManyRequests
from facetrace.api.state import ServiceState
from facetrace.errors import InvalidRequest
from facetrace.store.service_models import Probe, Search

MANIFEST_SUFFIXES = (".csv", ".jsonl", ".json")


async def start_import(
    state: ServiceState, db: Session, *, actor: Actor, collection_id: int, upload: UploadFile
) -> gallery_admin.ImportJob:
    """Accept a zip (photos in per-subject folders, or with a manifest inside) or a
    manifest naming files on the server, and queue its import."""
    require(actor, Perm.COLLECTIONS_MANAGE)
    name = Path(upload.filename or "upload").name
    data = await read_upload(upload, limit=state.max_import, what="import file")
    return await run_in_threadpool(_queue_import, state, db, actor, collection_id, name, data)


def _queue_import(
    state: ServiceState, db: Session, actor: Actor, collection_id: int, name: str, data: bytes
) -> gallery_admin.ImportJob:
    collection = gallery_admin.get_collection(db, actor=actor, collection_id=collection_id)
    job_id, folder = state.imports.new_dir()
    try:
        target = folder / name
        target.write_bytes(data)
        if name.lower().endswith(".zip"):
            source = gallery_admin.safe_extract(
                target,
                folder / "files",
                max_files=state.settings.service.max_import_files,
                max_bytes=state.max_import,
            )
            target.unlink()
        elif name.lower().endswith(MANIFEST_SUFFIXES):
            if state.settings.service.import_root is None:
                raise InvalidRequest(
                    "a manifest alone can only name files under the server's import folder, "
                    "and none is configured (FACETRACE_SERVICE__IMPORT_ROOT); upload a zip "
                    "holding the manifest and its photos instead"
                )
            source = target
        else:
            raise InvalidRequest("upload a .zip of photos or a manifest (.csv, .jsonl)")
    except Exception:
        state.imports.discard(folder)
        raise
    root = folder if source != target else Path(str(state.settings.service.import_root))
    db.commit()  # the import thread writes through the gallery's own connection
    return state.imports.submit(
        job_id=job_id,
        collection=collection,
        user=actor.username,
        source=source,
        run=lambda path, coll, basis, progress: state.gallery.ingest(
            path, collection=coll, legal_basis=basis, progress=progress, allowed_root=root
        ),
        sessions=state.sessions,
    )


def delete_target(state: ServiceState, db: Session, *, actor: Actor, kind: str, ident: int) -> int:
    """Delete a collection, subject or photo from the gallery (tombstoned) and audit it.
    Returns the number of faces removed."""
    require(actor, Perm.COLLECTIONS_MANAGE)
    name = ""
    if kind == "collection":
        name = gallery_admin.get_collection(db, actor=actor, collection_id=ident).name
    elif kind == "subject":
        name = gallery_admin.get_subject(db, actor=actor, subject_id=ident)[0].external_id
    else:
        gallery_admin.get_photo(db, actor=actor, photo_id=ident)
    # The gallery writes through its own connection: end this transaction first so
    # SQLite's single writer lock is free for it.
    db.commit()
    if kind == "collection":
        faces = state.gallery.delete_collection(name)
    elif kind == "subject":
        faces = state.gallery.delete_subject(name)
    else:
        faces = state.gallery.delete_photo(ident)
    gallery_admin.audit_deletion(db, actor=actor, target=f"{kind}:{ident}", faces=faces)
    return faces


async def submit_probe(
    state: ServiceState, db: Session, *, actor: Actor, case_id: int, upload: UploadFile
) -> Probe:
    """Find the faces of a probe photo, then keep it with its case (committed, so a
    search that follows can read it). The engine runs before the first database
    statement of the request, so no lock is held meanwhile."""
    require(actor, Perm.SEARCH)
    data = await read_upload(upload, limit=state.max_upload, what="photo")
    filename = Path(upload.filename or "probe").name
    return await run_in_threadpool(_store_probe, state, db, actor, case_id, data, filename)


def _store_probe(
    state: ServiceState, db: Session, actor: Actor, case_id: int, data: bytes, filename: str
) -> Probe:
    found = state.gallery.find_faces(data, source=filename)
    probe = cases.add_probe(
        db, actor=actor, case_id=case_id, data=data, filename=filename, found=found
    )
    db.commit()
    return probe


def search_probe(
    state: ServiceState, db: Session, *, actor: Actor, probe_id: int, face: int, force: bool
) -> Search:
    """Search one face of a stored probe (rate limited per user). Commits the request's
    work so far, reads the probe in a short transaction, runs the engine holding no
    database lock, then records the result in ``db``."""
    require(actor, Perm.SEARCH)
    wait = state.search_limiter.hit(actor.username)
    if wait is not None:
        raise TooManyRequests(wait)
    db.commit()
    with state.sessions.begin() as s:
        data, filename = cases.search_input(s, actor=actor, probe_id=probe_id, face=face)
        scope = gallery_admin.searchable_collections(s, actor=actor)
    result = state.gallery.search_face(
        data, source=filename, face=face, force=force, collections=scope
    )
    return cases.record_search(
        db, actor=actor, probe_id=probe_id, face=face, force=force, result=result
    )
