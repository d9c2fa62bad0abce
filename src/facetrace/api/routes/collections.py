"""Collections, imports and browsing the gallery."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, UploadFile
from pydantic import BaseModel, Field

from facetrace.fields import Id, JobId, LegalBasis, Limit, Name, Note, Offset, ShortText
from facetrace.server.deps import CurrentActor, Db, State, import_from_upload
from facetrace.service import collections
from facetrace.types import Provenance

router = APIRouter(tags=["gallery"])


class CollectionIn(BaseModel):
    """A new collection."""

    name: Name
    legal_basis: LegalBasis
    retention: ShortText
    description: Note = ""
    department_id: Id | None = None


class CollectionOut(BaseModel):
    """A collection with its legal basis, retention rule and counts."""

    id: int
    name: str
    legal_basis: str
    retention: str
    description: str
    department_id: int | None = Field(description="the only department that may read it")
    subjects: int
    photos: int


class RemovedOut(BaseModel):
    """What a delete removed from the index."""

    faces_removed: int


class ImportProblemOut(BaseModel):
    """A refused manifest row (``line`` is None for a problem of the whole file)."""

    line: int | None
    reason: str


class ImportSummaryOut(BaseModel):
    """An import's counters (written per committed batch); ``skipped_files`` lists
    [file in the upload, reason] once the import has ended."""

    photos_added: int
    faces_added: int
    already_present: int
    skipped: int
    skipped_files: list[list[str]]


class ImportJobOut(BaseModel):
    """An import job: ``state`` is queued, running, done, failed, cancelled or
    interrupted (the service stopped during it: resume it); ``done`` of ``total``
    photos handled."""

    id: str
    collection: str
    collection_id: int
    user: str
    filename: str
    state: str
    cancel_requested: bool = Field(description="a cancel that takes effect after this batch")
    runs: int = Field(description="how many times it was started (resumes count)")
    batches: int = Field(description="batches committed (each audited)")
    done: int
    total: int
    summary: ImportSummaryOut
    error: str | None
    problems: list[ImportProblemOut]
    created_at: str
    finished_at: str | None


class SubjectRowOut(BaseModel):
    """A subject in a collection listing."""

    id: int
    external_id: str
    name: str
    photos: int


class SubjectPhotoOut(BaseModel):
    """A reference photo of a subject with its provenance."""

    id: int
    sha256: str
    provenance: Provenance


class SubjectOut(BaseModel):
    """A subject with its photos."""

    id: int
    external_id: str
    name: str
    photos: list[SubjectPhotoOut]


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


@router.get("/collections", response_model=list[CollectionOut])
def list_collections(actor: CurrentActor, db: Db) -> list[dict[str, Any]]:
    """Every collection with its legal basis, retention rule and counts."""
    return [collection_json(v) for v in collections.list_collections(db, actor=actor)]


@router.post("/collections", status_code=201, response_model=CollectionOut)
def create_collection(body: CollectionIn, actor: CurrentActor, db: Db) -> dict[str, Any]:
    """Create a collection."""
    row = collections.create_collection(db, actor=actor, **body.model_dump())
    return collection_json(collections.CollectionView(row, 0, 0))


@router.delete("/collections/{collection_id}", response_model=RemovedOut)
def delete_collection(
    collection_id: Id, actor: CurrentActor, db: Db, state: State
) -> dict[str, Any]:
    """Delete a collection's photos and faces (tombstoned)."""
    n = collections.delete_target(
        db, actor=actor, kind="collection", ident=collection_id, gallery=state.gallery
    )
    return {"faces_removed": n}


@router.post("/collections/{collection_id}/imports", status_code=202, response_model=ImportJobOut)
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


@router.get("/collections/{collection_id}/imports", response_model=list[ImportJobOut])
def list_imports(
    collection_id: Id, actor: CurrentActor, db: Db, state: State
) -> list[dict[str, Any]]:
    """The collection's latest imports, newest first."""
    jobs = state.imports.list_for(db, actor=actor, collection_id=collection_id)
    return [j.as_dict() for j in jobs]


@router.get("/imports/{job_id}", response_model=ImportJobOut)
def import_progress(job_id: JobId, actor: CurrentActor, db: Db, state: State) -> dict[str, Any]:
    """Progress of an import (its state, counters and, once ended, what was left out)."""
    return state.imports.get(db, actor=actor, job_id=job_id).as_dict()


@router.post("/imports/{job_id}/cancel", status_code=202, response_model=ImportJobOut)
def cancel_import(job_id: JobId, actor: CurrentActor, db: Db, state: State) -> dict[str, Any]:
    """Cancel an import: a queued or interrupted one ends now; a running one after its
    current batch (poll until ``cancelled``); the batches committed stay."""
    return state.imports.cancel(db, actor=actor, job_id=job_id).as_dict()


@router.post("/imports/{job_id}/resume", status_code=202, response_model=ImportJobOut)
def resume_import(job_id: JobId, actor: CurrentActor, db: Db, state: State) -> dict[str, Any]:
    """Resume an interrupted import; the photos it committed are skipped."""
    job = state.imports.resume(db, actor=actor, job_id=job_id)
    db.commit()
    state.imports.submit(job.id)
    return job.as_dict()


@router.get("/collections/{collection_id}/subjects", response_model=list[SubjectRowOut])
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


@router.get("/subjects/{subject_id}", response_model=SubjectOut)
def get_subject(subject_id: Id, actor: CurrentActor, db: Db) -> dict[str, Any]:
    """A subject with its photos and their provenance."""
    subject, photos = collections.get_subject(db, actor=actor, subject_id=subject_id)
    return {
        "id": subject.id,
        "external_id": subject.external_id,
        "name": subject.name,
        "photos": [{"id": p.id, "sha256": p.sha256, "provenance": p.provenance} for p in photos],
    }


@router.delete("/subjects/{subject_id}", response_model=RemovedOut)
def delete_subject(subject_id: Id, actor: CurrentActor, db: Db, state: State) -> dict[str, Any]:
    """Delete a subject's photos (tombstoned)."""
    return {
        "faces_removed": collections.delete_target(
            db, actor=actor, kind="subject", ident=subject_id, gallery=state.gallery
        )
    }


@router.delete("/photos/{photo_id}", response_model=RemovedOut)
def delete_photo(photo_id: Id, actor: CurrentActor, db: Db, state: State) -> dict[str, Any]:
    """Delete one photo (tombstoned)."""
    return {
        "faces_removed": collections.delete_target(
            db, actor=actor, kind="photo", ident=photo_id, gallery=state.gallery
        )
    }
