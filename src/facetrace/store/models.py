"""Gallery tables: collections, subjects, photos, faces, tombstones and gallery settings.

Vectors are kept in SQL too (``face.vector``, float32 bytes), so SQL alone can
rebuild or repair any vector index.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from facetrace.store.base import Base
from facetrace.types import Provenance


def utcnow() -> datetime:
    """Timezone-aware now, for defaults."""
    return datetime.now(UTC)


class Collection(Base):
    """A set of reference photos held under one legal basis and retention rule."""

    __tablename__ = "collection"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    legal_basis: Mapped[str] = mapped_column(Text, default="")
    retention: Mapped[str] = mapped_column(Text, default="")
    description: Mapped[str] = mapped_column(Text, default="")
    department_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Subject(Base):
    """A person the gallery holds reference photos of (a profile or record)."""

    __tablename__ = "subject"
    # the same external id in two collections is two subjects (a duplicate pass finds
    # likely duplicates); a subject never spans collections of different departments
    __table_args__ = (
        UniqueConstraint("collection_id", "external_id", name="uq_subject_collection_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    external_id: Mapped[str] = mapped_column(String(300))
    name: Mapped[str] = mapped_column(String(300), default="")
    collection_id: Mapped[int] = mapped_column(ForeignKey("collection.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # set while this record is merged into another subject (its photos moved there)
    merged_into_id: Mapped[int | None] = mapped_column(
        ForeignKey("subject.id"), nullable=True, default=None
    )

    collection: Mapped[Collection] = relationship(foreign_keys=[collection_id])


class Photo(Base):
    """A reference photo with its provenance; identified by the SHA-256 of its bytes."""

    __tablename__ = "photo"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    subject_id: Mapped[int | None] = mapped_column(ForeignKey("subject.id"), index=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collection.id"), index=True)
    path: Mapped[str] = mapped_column(Text, default="")
    source_url: Mapped[str] = mapped_column(Text, default="")
    source_title: Mapped[str] = mapped_column(Text, default="")
    captured_date: Mapped[str] = mapped_column(String(40), default="")
    legal_basis: Mapped[str] = mapped_column(Text, default="")
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    width: Mapped[int] = mapped_column(Integer, default=0)
    height: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    subject: Mapped[Subject | None] = relationship()
    collection: Mapped[Collection] = relationship()

    @property
    def provenance(self) -> Provenance:
        """Where the photo comes from, as one value (reads its collection, from the
        session's identity map when loaded)."""
        return self.provenance_in(self.collection)

    def provenance_in(self, collection: Collection) -> Provenance:
        """The provenance of the photo as held in ``collection``: its name, and the
        photo's legal basis, else the collection's."""
        return Provenance(
            collection=collection.name,
            legal_basis=self.legal_basis or collection.legal_basis,
            source_url=self.source_url,
            source_title=self.source_title,
            captured_date=self.captured_date,
        )


class FaceRow(Base):
    """One face found in a photo; ``is_subject`` marks the one that is the photo's subject.

    Ids are never reused (AUTOINCREMENT on SQLite, a sequence on PostgreSQL): the repair
    on open finds the faces a saved index lacks as those above its watermark, so a new
    face must never get the id of a deleted one at or below it."""

    __tablename__ = "face"
    __table_args__ = (
        UniqueConstraint("photo_id", "face_index", name="uq_face_photo_index"),
        Index("ix_face_searchable", "is_subject", "collection_id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    photo_id: Mapped[int] = mapped_column(ForeignKey("photo.id", ondelete="CASCADE"))
    subject_id: Mapped[int | None] = mapped_column(ForeignKey("subject.id"), index=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collection.id"))
    face_index: Mapped[int] = mapped_column(Integer)
    is_subject: Mapped[bool] = mapped_column(Boolean, default=False)
    x1: Mapped[int] = mapped_column(Integer)
    y1: Mapped[int] = mapped_column(Integer)
    x2: Mapped[int] = mapped_column(Integer)
    y2: Mapped[int] = mapped_column(Integer)
    landmarks: Mapped[list[list[float]]] = mapped_column(JSON)
    detector_score: Mapped[float] = mapped_column(Float)
    quality: Mapped[float] = mapped_column(Float)
    quality_reasons: Mapped[list[str]] = mapped_column(JSON, default=list)
    model_id: Mapped[str] = mapped_column(String(200))
    vector: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    photo: Mapped[Photo] = relationship()
    subject: Mapped[Subject | None] = relationship()


class CollectionFaceCount(Base):
    """How many searchable faces (``is_subject``) a collection holds: one row per collection
    that has any, kept exact by triggers on ``face`` in the transaction of every insert,
    delete or change of a face (migration 0021), so that the repair on open compares the
    index with SQL per collection without counting the gallery's faces."""

    __tablename__ = "collection_face_count"

    collection_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    searchable: Mapped[int] = mapped_column(Integer)


class SubjectTemplate(Base):
    """One vector standing for several reference faces of a subject in one collection: a
    quality-weighted mean of their vectors (see :mod:`facetrace.gallery.templates`).

    Written in the transaction that changes those faces (an import batch, a delete, a
    merge or its undo), so SQL's templates are never behind its faces; rows are replaced,
    never updated, and ids never reused (AUTOINCREMENT), so that a gallery's in-memory
    template index catches up by comparing ids. ``subject_id`` is a plain column, not a
    foreign key: a subject's delete and its templates' delete are one transaction either
    way. ``face_ids`` are the faces averaged into this vector (its provenance).
    """

    __tablename__ = "subject_template"
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    subject_id: Mapped[int] = mapped_column(Integer, index=True)
    collection_id: Mapped[int] = mapped_column(Integer)
    centroid: Mapped[int] = mapped_column(Integer, default=0)
    n_faces: Mapped[int] = mapped_column(Integer)
    face_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    vector: Mapped[bytes] = mapped_column(LargeBinary)


class Tombstone(Base):
    """The hash of a deleted photo, so that the same photo is not ingested again by accident."""

    __tablename__ = "tombstone"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    deleted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    reason: Mapped[str] = mapped_column(Text, default="")


class GalleryMeta(Base):
    """Gallery-wide settings: the model id and dimension, the calibration table."""

    __tablename__ = "gallery_meta"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)


class SubjectDecision(Base):
    """A reviewer's "different people" decision on two subjects (``subject_a`` <
    ``subject_b``). Duplicate passes never propose the pair again while it stands."""

    __tablename__ = "subject_decision"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subject_a: Mapped[int] = mapped_column(ForeignKey("subject.id"), index=True)
    subject_b: Mapped[int] = mapped_column(ForeignKey("subject.id"), index=True)
    decision: Mapped[str] = mapped_column(String(20), default="different")
    note: Mapped[str] = mapped_column(Text, default="")
    decided_by: Mapped[str] = mapped_column(String(100))
    decided_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SubjectMerge(Base):
    """One reviewed merge of subject ``source_id`` into ``target_id``: the photos and faces
    it moved (so that undoing it moves exactly those back) and who did it, and why."""

    __tablename__ = "subject_merge"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("subject.id"), index=True)
    target_id: Mapped[int] = mapped_column(ForeignKey("subject.id"), index=True)
    photo_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    face_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    score: Mapped[float | None] = mapped_column(Float, nullable=True)
    note: Mapped[str] = mapped_column(Text, default="")
    merged_by: Mapped[str] = mapped_column(String(100))
    merged_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    undone_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    undone_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    undo_note: Mapped[str] = mapped_column(Text, default="")


class IndexPendingDelete(Base):
    """A face deleted from SQL that the vector index may still hold.

    Written in the same transaction as the delete and removed once the index has
    confirmed it (saved, for an embedded index), so that the repair on open removes
    exactly these faces instead of comparing every id of the gallery.
    """

    __tablename__ = "index_pending_delete"

    face_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    logged_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
