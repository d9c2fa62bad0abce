"""Collections, imports and browsing the gallery."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, UploadFile
from pydantic import BaseModel

from facetrace.fields import Id, JobId, LegalBasis, Limit, Name, Note, Offset, ShortText
from facetrace.server.deps import CurrentActor, Db, State, import_from_upload
from facetrace.service import collections

router = APIRouter(tags=["gallery"])


class CollectionIn(BaseModel):
    """A new collection."""

    name: Name
    legal_basis: LegalBasis
    retention: ShortText
    description: Note = ""
    department_id: Id | None = None


def collection_json(view: collections.CollectionView) -> dict[str, Any]:
    """A collection with counts."""
    c = view.collection
    return {
        "id": c.id,
        "name": c.name,
        "legal_basis": c.legal_basis,
        "retention": c.retention,
        "description": c.description,
        "department_id": c.department_id,
        "subjects": view.subjects,
        "photos": view.photos,
    }


@router.get("/collections")
def list_collections(actor: CurrentActor, db: Db) -> list[dict[str, Any]]:
    """Every collection with its legal basis, retention rule and counts."""
    return [collection_json(v) for v in collections.list_collections(db, actor=actor)]


@router.post("/collections", status_code=201)
def create_collection(body: CollectionIn, actor: CurrentActor, db: Db) -> dict[str, Any]:
    """Create a collection."""
    row = collections.create_collection(db, actor=actor, **body.model_dump())
    return collection_json(collections.CollectionView(row, 0, 0))


@router.delete("/collections/{collection_id}")
def delete_collection(
    collection_id: Id, actor: CurrentActor, db: Db, state: State
) -> dict[str, Any]:
    """Delete a collection's photos and faces (tombstoned)."""
    n = collections.delete_target(
        db, actor=actor, kind="collection", ident=collection_id, gallery=state.gallery
    )
    return {"faces_removed": n}


@router.post("/collections/{collection_id}/imports", status_code=202)
async def import_into(
    collection_id: Id,
    file: Annotated[UploadFile, File()],
    actor: CurrentActor,
    db: Db,
    state: State,
) -> dict[str, Any]:
    """Start importing a zip or manifest; poll ``/imports/{id}`` for progress."""
    job = await import_from_upload(state, db, actor=actor, collection_id=collection_id, upload=file)
    return job.as_dict()


@router.get("/collections/{collection_id}/imports")
def list_imports(
    collection_id: Id, actor: CurrentActor, db: Db, state: State
) -> list[dict[str, Any]]:
    """The collection's latest imports, newest first."""
    jobs = state.imports.list_for(db, actor=actor, collection_id=collection_id)
    return [j.as_dict() for j in jobs]


@router.get("/imports/{job_id}")
def import_progress(job_id: JobId, actor: CurrentActor, db: Db, state: State) -> dict[str, Any]:
    """Progress of an import (its state, counters and, once ended, what was left out)."""
    return state.imports.get(db, actor=actor, job_id=job_id).as_dict()


@router.post("/imports/{job_id}/cancel", status_code=202)
def cancel_import(job_id: JobId, actor: CurrentActor, db: Db, state: State) -> dict[str, Any]:
    """Cancel an import: a queued or interrupted one ends now; a running one after its
    current batch (poll until ``cancelled``); the batches committed stay."""
    return state.imports.cancel(db, actor=actor, job_id=job_id).as_dict()


@router.post("/imports/{job_id}/resume", status_code=202)
def resume_import(job_id: JobId, actor: CurrentActor, db: Db, state: State) -> dict[str, Any]:
    """Resume an interrupted import; the photos it committed are skipped."""
    job = state.imports.resume(db, actor=actor, job_id=job_id)
    db.commit()
    state.imports.submit(job.id)
    return job.as_dict()


@router.get("/collections/{collection_id}/subjects")
def list_subjects(
    collection_id: Id, actor: CurrentActor, db: Db, limit: Limit = 100, offset: Offset = 0
) -> list[dict[str, Any]]:
    """Subjects of a collection."""
    rows = collections.list_subjects(
        db, actor=actor, collection_id=collection_id, limit=min(limit, 1000), offset=offset
    )
    return [
        {"id": s.id, "external_id": s.external_id, "name": s.name, "photos": n} for s, n in rows
    ]


@router.get("/subjects/{subject_id}")
def get_subject(subject_id: Id, actor: CurrentActor, db: Db) -> dict[str, Any]:
    """A subject with its photos and their provenance."""
    subject, photos = collections.get_subject(db, actor=actor, subject_id=subject_id)
    return {
        "id": subject.id,
        "external_id": subject.external_id,
        "name": subject.name,
        "photos": [
            {
                "id": p.id,
                "sha256": p.sha256,
                "source_url": p.source_url,
                "source_title": p.source_title,
                "captured_date": p.captured_date,
                "legal_basis": p.legal_basis,
                "collection": p.collection.name,
            }
            for p in photos
        ],
    }


@router.delete("/subjects/{subject_id}")
def delete_subject(subject_id: Id, actor: CurrentActor, db: Db, state: State) -> dict[str, Any]:
    """Delete a subject's photos (tombstoned)."""
    return {
        "faces_removed": collections.delete_target(
            db, actor=actor, kind="subject", ident=subject_id, gallery=state.gallery
        )
    }


@router.delete("/photos/{photo_id}")
def delete_photo(photo_id: Id, actor: CurrentActor, db: Db, state: State) -> dict[str, Any]:
    """Delete one photo (tombstoned)."""
    return {
        "faces_removed": collections.delete_target(
            db, actor=actor, kind="photo", ident=photo_id, gallery=state.gallery
        )
    }
