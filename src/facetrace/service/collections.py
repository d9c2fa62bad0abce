"""Gallery management for the service: collections with their legal basis and retention
rule, browsing with provenance, and deletions with tombstones. Permission checks and
audit entries here; the vector work goes through
:class:`facetrace.service.gallery_port.GalleryPort` (imports: :mod:`.imports`).

Department isolation: every read of gallery data (collections, subjects, photos, faces,
crops), by the API, the web pages, searches and the duplicate finder alike, is scoped by
:func:`_visible`, the one predicate on :class:`Collection` that says what an actor may
see: collections shared with every department (no department set) and those of the
actor's own department. An administrator without a department (the installation's) and
the shell's :data:`SYSTEM` see every collection. Anything outside the scope reads as
missing (the same NotFound as for an id that does not exist), and the refusal is audited.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import ColumnElement, func, select, true
from sqlalchemy.orm import Session

from facetrace import fields
from facetrace.errors import Conflict, InvalidRequest, NotFound
from facetrace.service import audit
from facetrace.service.accounts import SYSTEM, Actor, Perm, Role, require
from facetrace.store.models import Collection, FaceRow, Photo, Subject
from facetrace.store.service_models import Department

if TYPE_CHECKING:
    from facetrace.gallery.directory import DeleteKind
    from facetrace.service.gallery_port import GalleryPort

log = logging.getLogger(__name__)


def sees_everything(actor: Actor) -> bool:
    """True for the shell's SYSTEM and an administrator without a department."""
    return actor is SYSTEM or (actor.department_id is None and actor.has(Role.ADMIN))


def _visible(actor: Actor) -> ColumnElement[bool]:
    """The collections ``actor`` may read, as a condition on :class:`Collection`: the one
    place department isolation of the gallery is decided (see the module docstring)."""
    if sees_everything(actor):
        return true()
    shared = Collection.department_id.is_(None)
    if actor.department_id is None:
        return shared
    return shared | (Collection.department_id == actor.department_id)


def visible_collection_ids(session: Session, *, actor: Actor) -> frozenset[int] | None:
    """SQL ids of the collections ``actor`` may read; None when that is every one."""
    if sees_everything(actor):
        return None
    return frozenset(session.scalars(select(Collection.id).where(_visible(actor))))


def _refused(session: Session, actor: Actor, target: str) -> None:
    """Audit a read of another department's gallery data (answered as missing)."""
    audit.note_refusal(
        session,
        actor=actor.username,
        target=target,
        detail={"reason": "another department's collection", "status": 404},
    )


def _readable_collection(session: Session, actor: Actor, collection_id: int | None) -> bool:
    """True when the collection exists and lies in the actor's scope."""
    if collection_id is None:
        return False
    return (
        session.execute(
            select(Collection.id).where(Collection.id == collection_id, _visible(actor))
        ).first()
        is not None
    )


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
    rows = session.execute(
        select(Collection).where(_visible(actor)).order_by(Collection.name)
    ).scalars()
    return [CollectionView(c, subjects.get(c.id, 0), photos.get(c.id, 0)) for c in rows]


def searchable_collections(session: Session, *, actor: Actor) -> list[str]:
    """Names of the collections the actor's searches cover (the scope of :func:`_visible`:
    shared collections and those of the actor's own department)."""
    stmt = select(Collection.name).where(_visible(actor))
    return list(session.execute(stmt).scalars())


def get_collection(session: Session, *, actor: Actor, collection_id: int) -> Collection:
    """One collection the actor may read; raises NotFound (also for another
    department's, whose existence is not revealed; that refusal is audited)."""
    require(actor, Perm.GALLERY_BROWSE)
    row = session.get(Collection, collection_id)
    if row is None:
        raise NotFound(f"no collection {collection_id}")
    if not _readable_collection(session, actor, row.id):
        _refused(session, actor, f"collection:{collection_id}")
        raise NotFound(f"no collection {collection_id}")
    return row


def list_subjects(
    session: Session, *, actor: Actor, collection_id: int, limit: int = 500, offset: int = 0
) -> list[tuple[Subject, int]]:
    """Subjects of a collection with their photo counts, by name (``limit`` 1 to
    :data:`~facetrace.fields.MAX_PAGE`, ``offset`` within int64); a view of the
    collection's page, audited."""
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
    audit.append(
        session,
        actor=actor.username,
        action=audit.Action.VIEW_COLLECTION,
        target=f"collection:{collection_id}",
        detail={"offset": offset, "subjects": len(rows)},
    )
    return [(s, int(n)) for s, n in rows]


def get_subject(
    session: Session, *, actor: Actor, subject_id: int, audited: bool = True
) -> tuple[Subject, list[Photo]]:
    """A subject of a collection the actor may read, and those of its photos that lie in
    collections the actor may read, with provenance; raises NotFound. The view is
    audited unless ``audited`` is false (a lookup before a delete, which is audited)."""
    require(actor, Perm.GALLERY_BROWSE)
    subject = session.get(Subject, subject_id)
    if subject is None:
        raise NotFound(f"no subject {subject_id}")
    if not _readable_collection(session, actor, subject.collection_id):
        _refused(session, actor, f"subject:{subject_id}")
        raise NotFound(f"no subject {subject_id}")
    photos = _photos_of_subject(session, actor, subject.id)
    if audited:
        audit.append(
            session,
            actor=actor.username,
            action=audit.Action.VIEW_SUBJECT,
            target=f"subject:{subject_id}",
            detail={"external_id": subject.external_id, "photos": [p.id for p in photos]},
        )
    return subject, photos


def _photos_of_subject(session: Session, actor: Actor, subject_id: int) -> list[Photo]:
    return list(
        session.execute(
            select(Photo)
            .join(Collection, Collection.id == Photo.collection_id)
            .where(Photo.subject_id == subject_id, _visible(actor))
            .order_by(Photo.id)
        ).scalars()
    )


def get_photo(session: Session, *, actor: Actor, photo_id: int, view: str | None = None) -> Photo:
    """A reference photo of a collection the actor may read. Reviewers and investigators
    see them through results too. Raises NotFound (another department's too).

    ``view`` names what is shown of it (``face``, ``photo``, ``aligned``, ``page``): the
    view is audited, unless it is an image of a photo that a page the actor viewed just
    before lists (results, a subject, the photo's page: see ``audit.covered``). Without
    it the photo is only looked up (a redirect, a delete)."""
    if not (actor.can(Perm.GALLERY_BROWSE) or actor.can(Perm.RESULTS_VIEW)):
        require(actor, Perm.GALLERY_BROWSE)
    photo = session.get(Photo, photo_id)
    missing = f"reference photo {photo_id} is not in the gallery (perhaps deleted)"
    if photo is None:
        raise NotFound(missing)
    if not _readable_collection(session, actor, photo.collection_id):
        _refused(session, actor, f"photo:{photo_id}")
        raise NotFound(missing)
    if view is not None and (
        view == "page" or not audit.covered(session, actor=actor.username, photo=photo.id)
    ):
        # an image shown by a page just viewed is covered by that page's entry
        audit.append(
            session,
            actor=actor.username,
            action=audit.Action.VIEW_PHOTO,
            target=f"photo:{photo_id}",
            detail={"view": view, "subject": photo.subject_id, "photos": [photo.id]},
        )
    return photo


def subject_photos_of(session: Session, *, actor: Actor, photo_id: int) -> list[Photo]:
    """Every photo of the subject a reference photo belongs to, oldest first (the photo
    alone when it has no subject). Raises NotFound when the photo was deleted."""
    photo = get_photo(session, actor=actor, photo_id=photo_id)
    if photo.subject_id is None:
        return [photo]
    return _photos_of_subject(session, actor, photo.subject_id)


def subject_face(session: Session, *, actor: Actor, photo_id: int) -> FaceRow | None:
    """The face marked as the subject of a photo the actor may read, for cropping
    (raises NotFound as :func:`get_photo`)."""
    photo = get_photo(session, actor=actor, photo_id=photo_id)
    return session.execute(
        select(FaceRow).where(FaceRow.photo_id == photo.id, FaceRow.is_subject.is_(True))
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
    collection: str | None = None
    if kind == "collection":
        target = get_collection(session, actor=actor, collection_id=ident).name
    elif kind == "subject":
        subject = get_subject(session, actor=actor, subject_id=ident, audited=False)[0]
        target, collection = subject.external_id, subject.collection.name
    else:
        get_photo(session, actor=actor, photo_id=ident)
        target = str(ident)
    face_ids = gallery.remove_rows(session, kind=kind, target=target, collection=collection)
    audit.append(
        session,
        actor=actor.username,
        action=audit.Action.DELETE,
        target=f"{kind}:{ident}",
        detail={"faces_removed": len(face_ids)},
    )
    session.commit()
    return gallery.forget(face_ids)
