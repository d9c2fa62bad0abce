"""Users, collections, imports and gallery browsing."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, Response

from facetrace.errors import NotFound
from facetrace.fields import Id, JobId, Name, Offset
from facetrace.server.deps import CurrentActor, Db, State, import_from_upload
from facetrace.service import accounts, collections, departments
from facetrace.service.accounts import Perm, require
from facetrace.web.render import back, page

router = APIRouter()


@router.get("/admin/users", response_class=HTMLResponse)
def users(request: Request, actor: CurrentActor, db: Db) -> HTMLResponse:
    """Accounts and the form to add one."""
    return page(
        request,
        "users.html",
        actor,
        users=accounts.list_users(db, actor=actor),
        departments=accounts.list_departments(db),
        roles=list(accounts.Role),
    )


@router.post("/admin/users", response_class=HTMLResponse)
def add_user(
    request: Request,
    actor: CurrentActor,
    db: Db,
    username: Annotated[str, Form()] = "",
    full_name: Annotated[str, Form()] = "",
    department: Annotated[str, Form()] = "",
    roles: Annotated[list[str] | None, Form()] = None,
) -> HTMLResponse:
    """Create an account and show its one-time password (changed at the first login)."""
    password = accounts.generate_password()
    user = accounts.create_user(
        db,
        actor=actor,
        username=username,
        password=password,
        roles=accounts.parse_roles(roles or []),
        department=department.strip() or None,
        full_name=full_name,
        one_time=True,
    )
    return page(
        request,
        "users.html",
        actor,
        users=accounts.list_users(db, actor=actor),
        departments=accounts.list_departments(db),
        roles=list(accounts.Role),
        created=(user.username, password),
    )


@router.post("/admin/users/{username}/roles")
def set_roles(
    username: str,
    actor: CurrentActor,
    db: Db,
    department: Annotated[str, Form()] = "",
    roles: Annotated[list[str] | None, Form()] = None,
) -> Response:
    """Change roles and department."""
    accounts.set_roles(
        db,
        actor=actor,
        username=username,
        roles=accounts.parse_roles(roles or []),
        department=department.strip() or None,
    )
    return back("/admin/users", f"Roles of {username} changed.")


@router.post("/admin/users/{username}/password-reset", response_class=HTMLResponse)
def reset_password(request: Request, username: str, actor: CurrentActor, db: Db) -> HTMLResponse:
    """Give a user a new one-time password (shown once; changed at their next login)."""
    password = accounts.reset_password(db, actor=actor, username=username)
    return page(
        request,
        "users.html",
        actor,
        users=accounts.list_users(db, actor=actor),
        departments=accounts.list_departments(db),
        roles=list(accounts.Role),
        reset=(username.strip().lower(), password),
    )


@router.get("/admin/departments", response_class=HTMLResponse)
def departments_page(request: Request, actor: CurrentActor, db: Db) -> HTMLResponse:
    """The departments, what each holds, and the forms to add, rename and remove them."""
    return page(request, "departments.html", actor, uses=departments.usage(db, actor=actor))


@router.post("/admin/departments")
def add_department(actor: CurrentActor, db: Db, name: Annotated[Name, Form()]) -> Response:
    """Add a department."""
    row = departments.create_department(db, actor=actor, name=name)
    return back("/admin/departments", f"Department {row.name} added.")


@router.post("/admin/departments/{department_id}/rename")
def rename_department(
    department_id: Id, actor: CurrentActor, db: Db, name: Annotated[Name, Form()]
) -> Response:
    """Rename a department (its users, cases and collections stay with it)."""
    row = departments.rename_department(db, actor=actor, department_id=department_id, name=name)
    return back("/admin/departments", f"Department renamed {row.name}.")


@router.post("/admin/departments/{department_id}/delete")
def delete_department(department_id: Id, actor: CurrentActor, db: Db) -> Response:
    """Remove a department nothing refers to."""
    departments.delete_department(db, actor=actor, department_id=department_id)
    return back("/admin/departments", "Department removed.")


@router.post("/admin/users/{username}/{op}")
def toggle_user(username: str, op: str, actor: CurrentActor, db: Db) -> Response:
    """Disable or enable an account."""
    if op not in ("enable", "disable"):
        raise NotFound(f"no such action {op!r}")
    accounts.set_active(db, actor=actor, username=username, active=op == "enable")
    return back("/admin/users", f"{username}: {'enabled' if op == 'enable' else 'disabled'}.")


@router.get("/collections", response_class=HTMLResponse)
def collections_page(request: Request, actor: CurrentActor, db: Db) -> HTMLResponse:
    """Collections with legal basis, retention, scope and counts."""
    departments = accounts.list_departments(db)
    return page(
        request,
        "collections.html",
        actor,
        collections=collections.list_collections(db, actor=actor),
        departments=departments,
        dept_names={d.id: d.name for d in departments},
    )


@router.post("/collections")
def create_collection(
    actor: CurrentActor,
    db: Db,
    name: Annotated[str, Form()] = "",
    legal_basis: Annotated[str, Form()] = "",
    retention: Annotated[str, Form()] = "",
    description: Annotated[str, Form()] = "",
    department: Annotated[str, Form()] = "",
) -> Response:
    """Create a collection, searchable by one department or (none given) by all."""
    require(actor, Perm.COLLECTIONS_MANAGE)
    dept = accounts.find_department(db, name=department, create=False) if department else None
    row = collections.create_collection(
        db,
        actor=actor,
        name=name,
        legal_basis=legal_basis,
        retention=retention,
        description=description,
        department_id=dept.id if dept else None,
    )
    return back(f"/collections/{row.id}", "Collection created. Import photos into it below.")


@router.get("/collections/{collection_id}", response_class=HTMLResponse)
def collection(
    request: Request,
    collection_id: Id,
    actor: CurrentActor,
    db: Db,
    state: State,
    offset: Offset = 0,
) -> HTMLResponse:
    """A collection's subjects, its import form and its latest imports."""
    coll = collections.get_collection(db, actor=actor, collection_id=collection_id)
    subjects = collections.list_subjects(
        db, actor=actor, collection_id=collection_id, limit=200, offset=max(offset, 0)
    )
    jobs = (
        state.imports.list_for(db, actor=actor, collection_id=collection_id)
        if actor.can(Perm.COLLECTIONS_MANAGE)
        else []
    )
    return page(
        request,
        "collection.html",
        actor,
        collection=coll,
        subjects=subjects,
        offset=offset,
        jobs=jobs,
    )


@router.post("/collections/{collection_id}/import")
async def start_import(
    collection_id: Id,
    actor: CurrentActor,
    db: Db,
    state: State,
    file: Annotated[UploadFile, File()],
) -> Response:
    """Queue an import and show its progress page."""
    job = await import_from_upload(state, db, actor=actor, collection_id=collection_id, upload=file)
    return back(f"/imports/{job.id}")


@router.get("/imports/{job_id}", response_class=HTMLResponse)
def import_page(
    request: Request, job_id: JobId, actor: CurrentActor, db: Db, state: State
) -> HTMLResponse:
    """Live progress of an import (polled by a few lines of JavaScript), with buttons to
    cancel it while it runs and to resume it once interrupted."""
    job = state.imports.get(db, actor=actor, job_id=job_id)
    return page(request, "import.html", actor, job=job, collection_id=job.collection_id)


@router.post("/imports/{job_id}/cancel")
def cancel_import(job_id: JobId, actor: CurrentActor, db: Db, state: State) -> Response:
    """Cancel an import (a running one stops after its current batch)."""
    job = state.imports.cancel(db, actor=actor, job_id=job_id)
    words = "Cancelled." if job.state == "cancelled" else "Stopping after the current batch."
    return back(f"/imports/{job.id}", words)


@router.post("/imports/{job_id}/resume")
def resume_import(job_id: JobId, actor: CurrentActor, db: Db, state: State) -> Response:
    """Resume an interrupted import; photos already stored are skipped."""
    job = state.imports.resume(db, actor=actor, job_id=job_id)
    db.commit()
    state.imports.submit(job.id)
    return back(f"/imports/{job.id}", "Resumed; photos already stored are skipped.")


@router.get("/imports/{job_id}/skipped.csv")
def skipped_csv(job_id: JobId, actor: CurrentActor, db: Db, state: State) -> Response:
    """The photos an import left out and why, as CSV (names as in the user's upload)."""
    job = state.imports.get(db, actor=actor, job_id=job_id)
    return Response(
        job.skipped_csv(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="import-{job.id}-skipped.csv"'},
    )


@router.post("/collections/{collection_id}/delete")
def delete_collection(collection_id: Id, actor: CurrentActor, db: Db, state: State) -> Response:
    """Delete a collection's photos (tombstoned)."""
    n = collections.delete_target(
        db, actor=actor, kind="collection", ident=collection_id, gallery=state.gallery
    )
    return back("/collections", f"Deleted; {n} faces removed from the index.")


@router.get("/subjects/{subject_id}", response_class=HTMLResponse)
def subject(request: Request, subject_id: Id, actor: CurrentActor, db: Db) -> HTMLResponse:
    """A subject's photos, each whole with the face boxed, with provenance and metadata."""
    subj, photos = collections.get_subject(db, actor=actor, subject_id=subject_id)
    faces = {p.id: collections.subject_face(db, actor=actor, photo_id=p.id) for p in photos}
    return page(request, "subject.html", actor, subject=subj, photos=photos, faces=faces)


@router.get("/photos/{photo_id}/subject")
def subject_of_photo(photo_id: Id, actor: CurrentActor, db: Db) -> Response:
    """The page of the person a reference photo shows (candidates link here)."""
    photo = collections.get_photo(db, actor=actor, photo_id=photo_id)
    if photo.subject_id is None:
        return back(f"/photos/{photo_id}/view")
    return back(f"/subjects/{photo.subject_id}#photo-{photo_id}")


@router.get("/photos/{photo_id}/view", response_class=HTMLResponse)
def photo_view(request: Request, photo_id: Id, actor: CurrentActor, db: Db) -> HTMLResponse:
    """One whole reference photo with the subject's face boxed, and its provenance."""
    photo = collections.get_photo(db, actor=actor, photo_id=photo_id, view="page")
    face = collections.subject_face(db, actor=actor, photo_id=photo.id)
    return page(request, "photo.html", actor, photo=photo, face=face)


@router.post("/subjects/{subject_id}/delete")
def delete_subject(subject_id: Id, actor: CurrentActor, db: Db, state: State) -> Response:
    """Delete a subject (tombstoned)."""
    require(actor, Perm.COLLECTIONS_MANAGE)
    subj, _ = collections.get_subject(db, actor=actor, subject_id=subject_id, audited=False)
    coll = subj.collection_id
    n = collections.delete_target(
        db, actor=actor, kind="subject", ident=subject_id, gallery=state.gallery
    )
    return back(f"/collections/{coll}", f"Subject deleted; {n} faces removed.")


@router.post("/photos/{photo_id}/delete")
def delete_photo(photo_id: Id, actor: CurrentActor, db: Db, state: State) -> Response:
    """Delete one photo (tombstoned)."""
    require(actor, Perm.COLLECTIONS_MANAGE)
    photo = collections.get_photo(db, actor=actor, photo_id=photo_id)
    subject_id = photo.subject_id
    n = collections.delete_target(
        db, actor=actor, kind="photo", ident=photo_id, gallery=state.gallery
    )
    return back(
        f"/subjects/{subject_id}" if subject_id else "/collections",
        f"Photo deleted; {n} faces removed.",
    )
