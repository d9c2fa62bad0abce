"""Gallery management for the service: collections with their legal basis and retention
rule, browsing with provenance, and deletions with tombstones. Permission checks and
audit entries here; the vector work goes through
:class:`facetrace.service.gallery_port.GalleryPort` (imports: :mod:`.imports`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from facetrace import fields
from facetrace.errors import Conflict, InvalidRequest, NotFound
from facetrace.service import audit
from facetrace.service.accounts import Actor, Perm, require
from facetrace.store.models import Collection, FaceRow, Photo, Subject
from facetrace.store.service_models import Department

if TYPE_CHECKING:
    from facetrace.gallery.directory import DeleteKind
    from facetrace.service.gallery_port import GalleryPort

log = logging.getLogger(__name__)


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
    if not name:
        raise InvalidRequest("a collection needs a name (at most 200 characters)")
    if not legal_basis:
        raise InvalidRequest("a collection needs the legal basis under which it is held")
    if not retention:
        raise InvalidRequest("a collection needs its retention rule")
    name = fields.check(fields.Name, name, field="name")
    legal_basis = fields.check(fields.LegalBasis, legal_basis, field="legal basis")
    retention = fields.check(fields.ShortText, retention, field="retention rule")
    description = fields.check(fields.Note, description, field="description")
    if department_id is not None:
        department_id = fields.check(fields.Id, department_id, field="department")
        if session.get(Department, department_id) is None:
            raise InvalidRequest(f"there is no department {department_id}")
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
    """Subjects of a collection with their photo counts, by name (``limit`` 1 to
    :data:`~facetrace.fields.MAX_PAGE`, ``offset`` within int64)."""
    limit = fields.check(fields.Limit, limit, field="limit")
    offset = fields.check(fields.Offset, offset, field="offset")
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
        raise NotFound(f"reference photo {photo_id} is not in the gallery (perhaps deleted)")
    return photo


def subject_photos_of(session: Session, *, actor: Actor, photo_id: int) -> list[Photo]:
    """Every photo of the subject a reference photo belongs to, oldest first (the photo
    alone when it has no subject). Raises NotFound when the photo was deleted."""
    photo = get_photo(session, actor=actor, photo_id=photo_id)
    if photo.subject_id is None:
        return [photo]
    return list(
        session.execute(
            select(Photo).where(Photo.subject_id == photo.subject_id).order_by(Photo.id)
        ).scalars()
    )


def subject_face(session: Session, *, photo_id: int) -> FaceRow | None:
    """The face marked as the photo's subject, for cropping."""
    return session.execute(
        select(FaceRow).where(FaceRow.photo_id == photo_id, FaceRow.is_subject.is_(True))
    ).scalar_one_or_none()


def delete_target(
    session: Session, *, actor: Actor, kind: DeleteKind, ident: int, gallery: GalleryPort
) -> int:
    """Delete a collection, subject or photo from the gallery (tombstoned) and audit it.
    Returns the number of faces removed.

    One unit of work: the checks, the deleted rows and the audit entry are committed
    together here, or not at all; only then does the index forget the faces (were that
    step lost, the gallery repairs its index from SQL when it next opens).
    """
    require(actor, Perm.COLLECTIONS_MANAGE)
    if kind == "collection":
        target = get_collection(session, actor=actor, collection_id=ident).name
    elif kind == "subject":
        target = get_subject(session, actor=actor, subject_id=ident)[0].external_id
    else:
        get_photo(session, actor=actor, photo_id=ident)
        target = str(ident)
    face_ids = gallery.remove_rows(session, kind=kind, target=target)
    audit.append(
        session,
        actor=actor.username,
        action=audit.Action.DELETE,
        target=f"{kind}:{ident}",
        detail={"faces_removed": len(face_ids)},
    )
    session.commit()
    return gallery.forget(face_ids)
