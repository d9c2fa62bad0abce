"""Repository functions: every gallery read and write that touches SQL.

Writes take keyword-only arguments; none commits (the caller owns the transaction).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import InstrumentedAttribute, Session

from facetrace.errors import InvalidRequest, NotFound, RuleViolation
from facetrace.store.models import (
    Collection,
    CollectionFaceCount,
    FaceRow,
    GalleryMeta,
    IndexPendingDelete,
    Photo,
    Subject,
    SubjectDecision,
    SubjectMerge,
    Tombstone,
)
from facetrace.types import Face, Provenance


@dataclass(frozen=True, slots=True)
class PhotoRecord:
    """What is stored with a new reference photo besides its faces: whose photo it is
    (the subject's external id and name), its :class:`~facetrace.types.Provenance`, where
    the file is kept, and the manifest's free-form metadata."""

    subject_id: str
    subject_name: str = ""
    provenance: Provenance = field(default_factory=Provenance)
    path: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def get_meta(session: Session, key: str) -> Any:
    """A gallery setting, or ``None``."""
    row = session.get(GalleryMeta, key)
    return None if row is None else row.value


def set_meta(session: Session, *, key: str, value: Any) -> None:
    """Create or replace a gallery setting."""
    row = session.get(GalleryMeta, key)
    if row is None:
        session.add(GalleryMeta(key=key, value=value))
    else:
        row.value = value


def get_or_create_collection(
    session: Session, *, name: str, legal_basis: str = "", retention: str = ""
) -> Collection:
    """The collection called ``name``, created if new (its legal basis set once)."""
    row = session.scalars(select(Collection).where(Collection.name == name)).first()
    if row is None:
        row = Collection(name=name, legal_basis=legal_basis, retention=retention)
        session.add(row)
        session.flush()
    return row


def get_or_create_subject(
    session: Session, *, external_id: str, name: str, collection: Collection
) -> Subject:
    """The subject with this external id in ``collection``, created there if new (the
    same external id in another collection is another subject)."""
    row = session.scalars(
        select(Subject).where(
            Subject.collection_id == collection.id, Subject.external_id == external_id
        )
    ).first()
    if row is None:
        row = Subject(external_id=external_id, name=name or external_id, collection=collection)
        session.add(row)
        session.flush()
    elif name and not row.name:
        row.name = name
    return row


def photo_by_sha(session: Session, sha256: str) -> Photo | None:
    """The stored photo with these bytes, if any."""
    return session.scalars(select(Photo).where(Photo.sha256 == sha256)).first()


def clear_tombstone(session: Session, *, sha256: str) -> None:
    """Forget that a photo was deleted (re-ingestion the operator asked for)."""
    session.execute(delete(Tombstone).where(Tombstone.sha256 == sha256))


def known_hashes(session: Session) -> set[str]:
    """SHA-256 of every stored photo, to skip work on a resumed ingest."""
    return set(session.scalars(select(Photo.sha256)))


def _hashes_in(
    session: Session, column: InstrumentedAttribute[str], hashes: Sequence[str]
) -> set[str]:
    """Which of ``hashes`` are in ``column`` (one query per 500, under SQL's parameter limits)."""
    out: set[str] = set()
    for i in range(0, len(hashes), 500):
        out.update(session.scalars(select(column).where(column.in_(hashes[i : i + 500]))))
    return out


def present_hashes(session: Session, hashes: Sequence[str]) -> set[str]:
    """Which of ``hashes`` are stored photos."""
    return _hashes_in(session, Photo.sha256, hashes)


def tombstoned_hashes(session: Session, hashes: Sequence[str]) -> set[str]:
    """Which of ``hashes`` are of deleted photos."""
    return _hashes_in(session, Tombstone.sha256, hashes)


@dataclass(frozen=True, slots=True)
class PhotoInsert:
    """A photo to store with its faces: what :func:`insert_photos` takes."""

    sha256: str
    width: int
    height: int
    record: PhotoRecord
    faces: Sequence[Face]
    subject_face: int | None


@dataclass(frozen=True, slots=True)
class StoredFace:
    """A face row just written: its id, place in the photo, and whether it is indexed."""

    id: int
    face_index: int
    is_subject: bool
    collection_id: int
    subject_id: int | None


def insert_photos(
    session: Session, *, photos: Sequence[PhotoInsert]
) -> list[tuple[int, list[StoredFace]]]:
    """Store photos, their subjects and all their faces in two multi-row INSERTs (one for
    the photos, one for the faces); returns each photo's id and its face rows, in order.

    Collections and subjects are looked up (or created) once per name in the batch, not
    once per photo: a batch's ORM work no longer grows with its photos and faces.
    """
    if not photos:
        return []
    collections: dict[str, Collection] = {}
    for p in photos:
        prov = p.record.provenance
        if prov.collection not in collections:
            collections[prov.collection] = get_or_create_collection(
                session, name=prov.collection, legal_basis=prov.legal_basis
            )
    first: dict[tuple[int, str], str] = {}  # each subject's name on its first photo
    given: dict[tuple[int, str], str] = {}  # ... and the first name given at all
    for p in photos:
        rec = p.record
        key = (collections[rec.provenance.collection].id, rec.subject_id)
        first.setdefault(key, rec.subject_name)
        if rec.subject_name:
            given.setdefault(key, rec.subject_name)
    subject_ids = _subject_ids(session, first, given)
    photo_rows: list[dict[str, Any]] = []
    owners: list[tuple[Collection, int]] = []
    for p in photos:
        rec, prov = p.record, p.record.provenance
        collection = collections[prov.collection]
        subject_id = subject_ids[(collection.id, rec.subject_id)]
        owners.append((collection, subject_id))
        photo_rows.append(
            {
                "sha256": p.sha256,
                "subject_id": subject_id,
                "collection_id": collection.id,
                "path": rec.path,
                "source_url": prov.source_url,
                "source_title": prov.source_title,
                "captured_date": prov.captured_date,
                "legal_basis": prov.legal_basis or collection.legal_basis,
                "extra": rec.extra,
                "width": p.width,
                "height": p.height,
            }
        )
    photo_ids = list(
        session.scalars(insert(Photo).returning(Photo.id, sort_by_parameter_order=True), photo_rows)
    )
    face_rows: list[dict[str, Any]] = []
    for p, photo_id, (collection, subject_id) in zip(photos, photo_ids, owners, strict=True):
        for i, face in enumerate(p.faces):
            box = face.detection.box
            mine = i == p.subject_face
            face_rows.append(
                {
                    "photo_id": photo_id,
                    "subject_id": subject_id if mine else None,
                    "collection_id": collection.id,
                    "face_index": i,
                    "is_subject": mine,
                    "x1": box.x1,
                    "y1": box.y1,
                    "x2": box.x2,
                    "y2": box.y2,
                    "landmarks": face.detection.landmarks.as_array().round(2).tolist(),
                    "detector_score": face.detection.score,
                    "quality": face.quality.score,
                    "quality_reasons": [str(r) for r in face.quality.reasons],
                    "model_id": face.model_id,
                    "vector": np.asarray(face.vector, dtype=np.float32).tobytes(),
                }
            )
    # by collection: the triggers that keep the counts per collection then lock their rows
    # in one order in every batch, so two batches written at once (PostgreSQL) never
    # deadlock on them; the ids come back in the batch's own order
    order = sorted(range(len(face_rows)), key=lambda i: int(face_rows[i]["collection_id"]))
    face_ids = [0] * len(face_rows)
    if face_rows:
        got = session.scalars(
            insert(FaceRow).returning(FaceRow.id, sort_by_parameter_order=True),
            [face_rows[i] for i in order],
        )
        for i, fid in zip(order, got, strict=True):
            face_ids[i] = int(fid)
    out: list[tuple[int, list[StoredFace]]] = []
    at = 0
    for p, photo_id, (collection, subject_id) in zip(photos, photo_ids, owners, strict=True):
        out.append(
            (
                photo_id,
                [
                    StoredFace(
                        id=face_ids[at + i],
                        face_index=i,
                        is_subject=i == p.subject_face,
                        collection_id=collection.id,
                        subject_id=subject_id if i == p.subject_face else None,
                    )
                    for i in range(len(p.faces))
                ],
            )
        )
        at += len(p.faces)
    return out


def _subject_ids(
    session: Session, first: dict[tuple[int, str], str], given: dict[tuple[int, str], str]
) -> dict[tuple[int, str], int]:
    """Ids of the subjects ``(collection id, external id)`` of ``first``: those not stored
    yet are created in one INSERT, named ``first[key]`` or their external id; a stored
    subject without a name gets ``given[key]``, as :func:`get_or_create_subject` does for
    one subject (one query per collection here, not one per subject)."""
    names = first
    ids: dict[tuple[int, str], int] = {}
    by_collection: dict[int, list[str]] = {}
    for cid, ext in names:
        by_collection.setdefault(cid, []).append(ext)
    for cid, exts in by_collection.items():
        for i in range(0, len(exts), 500):
            rows = session.execute(
                select(Subject.id, Subject.external_id, Subject.name).where(
                    Subject.collection_id == cid, Subject.external_id.in_(exts[i : i + 500])
                )
            )
            for sid, ext, name in rows:
                ids[(cid, ext)] = sid
                if not name and given.get((cid, ext)):
                    session.execute(
                        update(Subject).where(Subject.id == sid).values(name=given[(cid, ext)])
                    )
    missing = [key for key in names if key not in ids]
    if missing:
        created = session.scalars(
            insert(Subject).returning(Subject.id, sort_by_parameter_order=True),
            [{"external_id": ext, "name": names[(cid, ext)] or ext, "collection_id": cid}
             for cid, ext in missing],
        )  # fmt: skip
        ids.update(zip(missing, created, strict=True))
    return ids


def searchable_ids(
    session: Session, collections: Iterable[str] | None = None
) -> npt.NDArray[np.int64]:
    """Ids of the faces that belong in the index (subject faces), optionally by collection."""
    stmt = select(FaceRow.id).where(FaceRow.is_subject.is_(True))
    if collections is not None:
        names = list(collections)
        stmt = stmt.join(Collection, Collection.id == FaceRow.collection_id).where(
            Collection.name.in_(names)
        )
    return np.fromiter(session.scalars(stmt), dtype=np.int64)


def searchable_groups(session: Session) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """(ids, groups) of the faces that belong in the index, by id: a face's group is the
    SQL id of its collection (``face.collection_id``, the collection its photo was
    stored in), the tag every index filters collections by."""
    stmt = (
        select(FaceRow.id, FaceRow.collection_id)
        .where(FaceRow.is_subject.is_(True))
        .order_by(FaceRow.id)
    )
    # flattened straight into one array: no list of 10M row objects at 10M faces
    pairs = np.fromiter(chain.from_iterable(session.execute(stmt)), dtype=np.int64)
    pairs = pairs.reshape(-1, 2)
    return pairs[:, 0].copy(), pairs[:, 1].copy()


def searchable_after(
    session: Session, face_id: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """(ids, groups) of the searchable faces with an id above ``face_id``, by id: a range
    scan of the primary key, as long as the faces added since then. ``is_subject`` is
    tested here, not in SQL: SQLite would then walk the ``(is_subject, collection_id)``
    index, every searchable face of the gallery, instead of the id range."""
    stmt = (
        select(FaceRow.id, FaceRow.collection_id, FaceRow.is_subject)
        .where(FaceRow.id > face_id)
        .order_by(FaceRow.id)
    )
    rows = np.fromiter(chain.from_iterable(session.execute(stmt)), dtype=np.int64)
    rows = rows.reshape(-1, 3)
    rows = rows[rows[:, 2] != 0]
    return rows[:, 0].copy(), rows[:, 1].copy()


def searchable_in_groups(
    session: Session, groups: Iterable[int]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """(ids, groups) of the searchable faces of some collections (by SQL id), by id."""
    wanted = [int(g) for g in groups]
    stmt = (
        select(FaceRow.id, FaceRow.collection_id)
        .where(FaceRow.is_subject.is_(True), FaceRow.collection_id.in_(wanted))
        .order_by(FaceRow.id)
    )
    pairs = np.fromiter(chain.from_iterable(session.execute(stmt)), dtype=np.int64)
    pairs = pairs.reshape(-1, 2)
    return pairs[:, 0].copy(), pairs[:, 1].copy()


def searchable_among(session: Session, face_ids: Sequence[int]) -> npt.NDArray[np.int64]:
    """Those of ``face_ids`` that are searchable faces now, sorted."""
    found: list[int] = []
    ids = [int(i) for i in face_ids]
    for start in range(0, len(ids), 10_000):
        stmt = select(FaceRow.id).where(
            FaceRow.is_subject.is_(True), FaceRow.id.in_(ids[start : start + 10_000])
        )
        found.extend(session.scalars(stmt))
    return np.asarray(sorted(found), dtype=np.int64)


def searchable_counts(session: Session, groups: Iterable[int] | None = None) -> dict[int, int]:
    """Searchable faces per collection id, counted: a scan of the ``(is_subject,
    collection_id)`` index, as long as the gallery (or those collections); the open reads
    :func:`stored_searchable_counts` instead."""
    stmt = (
        select(FaceRow.collection_id, func.count())
        .where(FaceRow.is_subject.is_(True))
        .group_by(FaceRow.collection_id)
    )
    if groups is not None:
        stmt = stmt.where(FaceRow.collection_id.in_([int(g) for g in groups]))
    return {int(g): int(n) for g, n in session.execute(stmt)}


def stored_searchable_counts(session: Session) -> dict[int, int]:
    """Searchable faces per collection id as the database keeps them (triggers on
    ``face`` update them in the transaction of every write): one row per collection."""
    stmt = select(CollectionFaceCount.collection_id, CollectionFaceCount.searchable).where(
        CollectionFaceCount.searchable > 0
    )
    return {int(g): int(n) for g, n in session.execute(stmt)}


def searchable_total(session: Session) -> int:
    """How many faces belong in the index, from the kept counts."""
    return sum(stored_searchable_counts(session).values())


def recount_searchable(session: Session, *, groups: Iterable[int] | None = None) -> dict[int, int]:
    """Set the kept counts of ``groups`` (default: every collection) to a fresh count of
    their faces, for counts found wrong (faces written while the triggers were missing);
    returns the collections whose count changed, with their new count."""
    wanted = None if groups is None else sorted({int(g) for g in groups})
    truth = searchable_counts(session, wanted)
    kept = stored_searchable_counts(session)
    scope = set(kept) | set(truth) if wanted is None else set(wanted)
    changed = {g: truth.get(g, 0) for g in sorted(scope) if kept.get(g, 0) != truth.get(g, 0)}
    if changed:
        session.execute(
            delete(CollectionFaceCount).where(CollectionFaceCount.collection_id.in_(list(changed)))
        )
        fresh = [{"collection_id": g, "searchable": n} for g, n in changed.items() if n > 0]
        if fresh:
            session.execute(insert(CollectionFaceCount), fresh)
    return changed


def max_face_id(session: Session) -> int:
    """The highest face id in SQL (0 for none)."""
    return int(session.scalar(select(func.max(FaceRow.id))) or 0)


def log_pending_deletes(session: Session, *, face_ids: Iterable[int]) -> None:
    """Record faces just deleted from SQL that the index may still hold (same transaction
    as the delete), until :func:`confirm_pending_deletes`."""
    known = set(session.scalars(select(IndexPendingDelete.face_id)))
    for fid in sorted({int(i) for i in face_ids} - known):
        session.add(IndexPendingDelete(face_id=fid))


def pending_deletes(session: Session) -> list[int]:
    """Face ids deleted from SQL that the index has not confirmed yet."""
    return list(
        session.scalars(select(IndexPendingDelete.face_id).order_by(IndexPendingDelete.face_id))
    )


def confirm_pending_deletes(session: Session, *, face_ids: Iterable[int]) -> None:
    """Forget logged deletes the index has now applied durably."""
    ids = [int(i) for i in face_ids]
    for start in range(0, len(ids), 10_000):
        session.execute(
            delete(IndexPendingDelete).where(
                IndexPendingDelete.face_id.in_(ids[start : start + 10_000])
            )
        )


def collection_ids(session: Session, names: Iterable[str]) -> list[int]:
    """SQL ids of the collections called ``names`` (unknown names are left out)."""
    wanted = list(names)
    if not wanted:
        return []
    return list(session.scalars(select(Collection.id).where(Collection.name.in_(wanted))))


@dataclass(frozen=True, slots=True)
class IndexEntries:
    """What the vector index needs of some faces: ids (n,), vectors (n, dim), groups (n,)."""

    ids: npt.NDArray[np.int64]
    vectors: npt.NDArray[np.float32]
    groups: npt.NDArray[np.int64]


def index_entries(
    session: Session, ids: npt.NDArray[np.int64], dim: int, *, chunk: int = 5000
) -> IndexEntries:
    """The stored vectors and groups of ``ids`` (in the order found), to fill an index."""
    out_ids: list[int] = []
    out_vecs: list[bytes] = []
    out_groups: list[int] = []
    for start in range(0, len(ids), chunk):
        part = [int(i) for i in ids[start : start + chunk]]
        for fid, vec, group in session.execute(
            select(FaceRow.id, FaceRow.vector, FaceRow.collection_id).where(FaceRow.id.in_(part))
        ):
            out_ids.append(fid)
            out_vecs.append(vec)
            out_groups.append(group)
    return IndexEntries(
        ids=np.asarray(out_ids, dtype=np.int64),
        vectors=np.frombuffer(b"".join(out_vecs), dtype=np.float32).reshape(-1, dim),
        groups=np.asarray(out_groups, dtype=np.int64),
    )


def vectors_for(
    session: Session, ids: npt.NDArray[np.int64], dim: int, *, chunk: int = 5000
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """The stored vectors of ``ids`` (in the order found)."""
    found = index_entries(session, ids, dim, chunk=chunk)
    return found.ids, found.vectors


@dataclass(frozen=True, slots=True)
class FaceInfo:
    """What a candidate list shows about a gallery face."""

    face_id: int
    subject_id: int
    subject_external_id: str
    subject_name: str
    photo_id: int
    photo_sha256: str
    photo_path: str
    provenance: Provenance
    box: tuple[int, int, int, int]
    quality: float


def face_info(session: Session, ids: Iterable[int]) -> dict[int, FaceInfo]:
    """Provenance of each face id (faces without a subject are left out)."""
    wanted = [int(i) for i in ids]
    if not wanted:
        return {}
    stmt = (
        select(FaceRow, Photo, Subject, Collection)
        .join(Photo, Photo.id == FaceRow.photo_id)
        .join(Subject, Subject.id == FaceRow.subject_id)
        .join(Collection, Collection.id == FaceRow.collection_id)
        .where(FaceRow.id.in_(wanted))
    )
    out: dict[int, FaceInfo] = {}
    for face, photo, subject, coll in session.execute(stmt):
        out[face.id] = FaceInfo(
            face_id=face.id,
            subject_id=subject.id,
            subject_external_id=subject.external_id,
            subject_name=subject.name,
            photo_id=photo.id,
            photo_sha256=photo.sha256,
            photo_path=photo.path,
            provenance=photo.provenance_in(coll),
            box=(face.x1, face.y1, face.x2, face.y2),
            quality=face.quality,
        )
    return out


def find_subject(session: Session, external_id: str, collection: str | None = None) -> Subject:
    """The subject with this external id (in ``collection``, when given). Raises
    :class:`NotFound`, or :class:`InvalidRequest` when several collections hold one."""
    stmt = select(Subject).where(Subject.external_id == external_id)
    if collection is not None:
        stmt = stmt.join(Collection, Collection.id == Subject.collection_id).where(
            Collection.name == collection
        )
    rows = list(session.scalars(stmt.order_by(Subject.id).limit(20)))
    if not rows:
        where = f" in collection {collection!r}" if collection is not None else ""
        raise NotFound(f"no subject with id {external_id!r}{where}")
    if len(rows) > 1:
        names = ", ".join(sorted(repr(r.collection.name) for r in rows))
        raise InvalidRequest(
            f"subject id {external_id!r} is in several collections ({names}); name the collection"
        )
    return rows[0]


def subject_face_ids(
    session: Session, external_id: str, collection: str | None = None
) -> list[int]:
    """Indexed face ids of a subject; raises :class:`NotFound` for an unknown subject."""
    subject = find_subject(session, external_id, collection)
    return list(
        session.scalars(
            select(FaceRow.id).where(FaceRow.subject_id == subject.id, FaceRow.is_subject.is_(True))
        )
    )


def count_subjects(session: Session) -> int:
    """How many subjects the gallery holds (the gallery size for FPIR); a subject merged
    into another is one person with it, not two."""
    stmt = select(func.count()).select_from(Subject).where(Subject.merged_into_id.is_(None))
    return session.scalar(stmt) or 0


def counts(session: Session) -> dict[str, int]:
    """How many collections, subjects, photos, faces and tombstones the gallery holds."""
    return {
        "collections": session.scalar(select(func.count()).select_from(Collection)) or 0,
        "subjects": count_subjects(session),
        "photos": session.scalar(select(func.count()).select_from(Photo)) or 0,
        "faces": session.scalar(select(func.count()).select_from(FaceRow)) or 0,
        "indexed_faces": session.scalar(
            select(func.count()).select_from(FaceRow).where(FaceRow.is_subject.is_(True))
        )
        or 0,
        "tombstones": session.scalar(select(func.count()).select_from(Tombstone)) or 0,
    }


def _delete_photos(session: Session, photos: Sequence[Photo], reason: str) -> list[int]:
    """Delete photos and their faces, leaving tombstones; returns the removed face ids."""
    photo_ids = [p.id for p in photos]
    if not photo_ids:
        return []
    face_ids = list(session.scalars(select(FaceRow.id).where(FaceRow.photo_id.in_(photo_ids))))
    for p in photos:
        if session.get(Tombstone, p.sha256) is None:
            session.add(Tombstone(sha256=p.sha256, reason=reason))
    session.execute(delete(FaceRow).where(FaceRow.photo_id.in_(photo_ids)))
    session.execute(delete(Photo).where(Photo.id.in_(photo_ids)))
    return face_ids


def _forget_merges(session: Session, subject_ids: set[int]) -> None:
    """Before ``subject_ids`` are deleted: refuse (RuleViolation, nothing changed) while a
    merge not undone ties one of them to a subject that stays, since deleting either side
    would take the other's photos with it or leave them unreturnable; otherwise drop the
    merge history and "different people" decisions that name them (the audit log keeps
    both), which would else block the delete on their foreign keys."""
    if not subject_ids:
        return
    names = (SubjectMerge.source_id.in_(subject_ids)) | (SubjectMerge.target_id.in_(subject_ids))
    for merge in session.scalars(
        select(SubjectMerge).where(names, SubjectMerge.undone_at.is_(None))
    ):
        if {merge.source_id, merge.target_id} <= subject_ids:
            continue  # both sides go: nothing is left behind
        source, target = (
            session.get(Subject, merge.source_id),
            session.get(Subject, merge.target_id),
        )
        raise RuleViolation(
            f"subject {source.external_id if source else merge.source_id} is merged into "
            f"{target.external_id if target else merge.target_id} (merge {merge.id}): undo "
            "the merge first (facetrace duplicates undo, or the duplicates page), then delete"
        )
    session.execute(update(Subject).where(Subject.id.in_(subject_ids)).values(merged_into_id=None))
    session.execute(delete(SubjectMerge).where(names))
    session.execute(
        delete(SubjectDecision).where(
            SubjectDecision.subject_a.in_(subject_ids) | SubjectDecision.subject_b.in_(subject_ids)
        )
    )


def delete_photo(session: Session, *, photo: str) -> list[int]:
    """Delete one photo by id or SHA-256; returns the removed face ids."""
    stmt = select(Photo).where(
        Photo.id == int(photo) if photo.isdigit() else Photo.sha256 == photo.lower()
    )
    row = session.scalars(stmt).first()
    if row is None:
        raise NotFound(f"no photo {photo!r}")
    return _delete_photos(session, [row], f"photo {row.id} deleted")


def delete_subject(
    session: Session, *, external_id: str, collection: str | None = None
) -> list[int]:
    """Delete a subject (of ``collection``, when given) and all its photos; returns the
    removed face ids."""
    subject = find_subject(session, external_id, collection)
    _forget_merges(session, {subject.id})
    photos = list(session.scalars(select(Photo).where(Photo.subject_id == subject.id)))
    ids = _delete_photos(session, photos, f"subject {external_id} deleted")
    session.execute(delete(FaceRow).where(FaceRow.subject_id == subject.id))
    session.delete(subject)
    return ids


def delete_collection(session: Session, *, name: str) -> list[int]:
    """Delete a collection with its subjects and photos; returns the removed face ids."""
    coll = session.scalars(select(Collection).where(Collection.name == name)).first()
    if coll is None:
        raise NotFound(f"no collection {name!r}")
    members = select(Subject.id).where(Subject.collection_id == coll.id)
    _forget_merges(session, set(session.scalars(members)))
    photos = list(
        session.scalars(
            select(Photo).where((Photo.collection_id == coll.id) | (Photo.subject_id.in_(members)))
        )
    )
    ids = _delete_photos(session, photos, f"collection {name} deleted")
    session.execute(delete(FaceRow).where(FaceRow.subject_id.in_(members)))
    session.execute(delete(FaceRow).where(FaceRow.collection_id == coll.id))
    session.execute(delete(Subject).where(Subject.collection_id == coll.id))
    session.delete(coll)
    return ids
