"""SQL reads and writes of subject templates (``subject_template`` rows).

What a template *is* (the mean of which faces, how weighted) is decided above this layer
(:mod:`facetrace.gallery.templates`); here are the faces it is made of, its rows, and the
cheap questions the gallery's in-memory template index and the repair on open ask.
Writes take keyword-only arguments; none commits.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from facetrace.store.models import Collection, FaceRow, Photo, Subject, SubjectTemplate

CHUNK = 5000


@dataclass(frozen=True, slots=True)
class PartFaces:
    """The searchable faces of one subject in one collection (a template's material)."""

    subject_id: int
    collection_id: int
    face_ids: npt.NDArray[np.int64]
    quality: npt.NDArray[np.float64]
    vectors: npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class NewTemplate:
    """A template row to write."""

    subject_id: int
    collection_id: int
    centroid: int
    face_ids: tuple[int, ...]
    vector: npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class TemplateRows:
    """Template rows as the in-memory index holds them, aligned."""

    ids: npt.NDArray[np.int64]
    subject_ids: npt.NDArray[np.int64]
    groups: npt.NDArray[np.int64]
    n_faces: npt.NDArray[np.int64]
    face_ids: list[tuple[int, ...]]
    vectors: npt.NDArray[np.float32]


def _chunks(ids: Iterable[int]) -> Iterable[list[int]]:
    values = sorted({int(i) for i in ids})
    for start in range(0, len(values), CHUNK):
        yield values[start : start + CHUNK]


def part_faces(session: Session, subject_ids: Iterable[int]) -> list[PartFaces]:
    """The searchable faces of ``subject_ids``, one entry per (subject, collection) part,
    faces by id (so the same faces give the same template)."""
    by_part: dict[tuple[int, int], list[tuple[int, float, bytes]]] = defaultdict(list)
    for part in _chunks(subject_ids):
        stmt = (
            select(
                FaceRow.id,
                FaceRow.subject_id,
                FaceRow.collection_id,
                FaceRow.quality,
                FaceRow.vector,
            )
            .where(FaceRow.is_subject.is_(True), FaceRow.subject_id.in_(part))
            .order_by(FaceRow.id)
        )
        for fid, sid, cid, quality, vec in session.execute(stmt):
            by_part[(int(sid or 0), int(cid))].append((int(fid), float(quality), vec))
    out = []
    for (sid, cid), rows in sorted(by_part.items()):
        out.append(
            PartFaces(
                subject_id=sid,
                collection_id=cid,
                face_ids=np.array([r[0] for r in rows], dtype=np.int64),
                quality=np.array([r[1] for r in rows], dtype=np.float64),
                vectors=np.frombuffer(b"".join(r[2] for r in rows), dtype=np.float32).reshape(
                    len(rows), -1
                ),
            )
        )
    return out


def replace_templates(
    session: Session, *, subject_ids: Iterable[int], rows: Sequence[NewTemplate]
) -> None:
    """Drop every template of ``subject_ids`` and write ``rows`` (new ids) instead."""
    for part in _chunks(subject_ids):
        session.execute(delete(SubjectTemplate).where(SubjectTemplate.subject_id.in_(part)))
    for r in rows:
        session.add(
            SubjectTemplate(
                subject_id=r.subject_id,
                collection_id=r.collection_id,
                centroid=r.centroid,
                n_faces=len(r.face_ids),
                face_ids=[int(i) for i in r.face_ids],
                vector=np.asarray(r.vector, dtype=np.float32).tobytes(),
            )
        )
    session.flush()


def subjects_of_faces(session: Session, face_ids: Iterable[int]) -> set[int]:
    """The subjects ``face_ids`` belong to (faces without a subject are left out)."""
    out: set[int] = set()
    for part in _chunks(face_ids):
        stmt = select(FaceRow.subject_id).where(
            FaceRow.id.in_(part), FaceRow.subject_id.is_not(None)
        )
        out.update(int(s or 0) for s in session.scalars(stmt.distinct()))
    return out


def subjects_of_photo(session: Session, photo: str) -> set[int]:
    """The subject of a photo given by id or SHA-256 (empty if none or unknown)."""
    stmt = select(Photo.subject_id).where(
        Photo.id == int(photo) if photo.isdigit() else Photo.sha256 == photo.lower()
    )
    return {int(s) for s in session.scalars(stmt) if s is not None}


def subjects_of_collection(session: Session, name: str) -> set[int]:
    """Subjects of a collection, and subjects elsewhere holding faces of it (a merge)."""
    coll = select(Collection.id).where(Collection.name == name).scalar_subquery()
    own = session.scalars(select(Subject.id).where(Subject.collection_id == coll))
    held = session.scalars(
        select(FaceRow.subject_id)
        .where(FaceRow.collection_id == coll, FaceRow.subject_id.is_not(None))
        .distinct()
    )
    return {int(s) for s in own} | {int(s or 0) for s in held}


def signature(session: Session) -> tuple[int, int]:
    """(highest template id, number of templates): changes with every write, since rows
    are only inserted (with ids never reused) or deleted."""
    top, n = session.execute(
        select(func.max(SubjectTemplate.id), func.count(SubjectTemplate.id))
    ).one()
    return int(top or 0), int(n or 0)


def template_ids(session: Session) -> npt.NDArray[np.int64]:
    """Every template id, sorted."""
    stmt = select(SubjectTemplate.id).order_by(SubjectTemplate.id)
    return np.fromiter(session.scalars(stmt), dtype=np.int64)


def template_rows(session: Session, ids: Iterable[int], dim: int) -> TemplateRows:
    """The rows of ``ids`` (unknown ids left out), by id."""
    got: list[SubjectTemplate] = []
    for part in _chunks(ids):
        got.extend(
            session.scalars(
                select(SubjectTemplate)
                .where(SubjectTemplate.id.in_(part))
                .order_by(SubjectTemplate.id)
            )
        )
    return TemplateRows(
        ids=np.array([r.id for r in got], dtype=np.int64),
        subject_ids=np.array([r.subject_id for r in got], dtype=np.int64),
        groups=np.array([r.collection_id for r in got], dtype=np.int64),
        n_faces=np.array([r.n_faces for r in got], dtype=np.int64),
        face_ids=[tuple(int(i) for i in r.face_ids) for r in got],
        vectors=np.frombuffer(b"".join(r.vector for r in got), dtype=np.float32).reshape(-1, dim),
    )


def template_parts(session: Session) -> dict[tuple[int, int], tuple[int, int]]:
    """What SQL's templates cover: (subject, collection) -> (faces, sum of face ids)."""
    out: dict[tuple[int, int], tuple[int, int]] = {}
    stmt = select(
        SubjectTemplate.subject_id, SubjectTemplate.collection_id, SubjectTemplate.face_ids
    )
    for sid, cid, fids in session.execute(stmt):
        n, total = out.get((int(sid), int(cid)), (0, 0))
        out[(int(sid), int(cid))] = (n + len(fids), total + sum(int(i) for i in fids))
    return out


def face_parts(session: Session, *, min_faces: int) -> dict[tuple[int, int], tuple[int, int]]:
    """What the faces say the templates should cover: every (subject, collection) with at
    least ``min_faces`` searchable faces -> (faces, sum of face ids); one grouped query."""
    stmt = (
        select(FaceRow.subject_id, FaceRow.collection_id, func.count(), func.sum(FaceRow.id))
        .where(FaceRow.is_subject.is_(True), FaceRow.subject_id.is_not(None))
        .group_by(FaceRow.subject_id, FaceRow.collection_id)
        .having(func.count() >= min_faces)
    )
    return {(int(s or 0), int(c)): (int(n), int(t)) for s, c, n, t in session.execute(stmt)}
