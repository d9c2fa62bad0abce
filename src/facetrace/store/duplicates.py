"""Repository functions for duplicate subjects: "different people" decisions, reviewed
merges and their undo. Writes take keyword-only arguments; none commits.

A merge moves the source subject's photos and faces to the target subject and marks
the source as merged; the photos keep every provenance field and their collection, so
the index (which tags faces by collection) does not change. The merge row lists what
moved, so an undo moves exactly that back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from facetrace.errors import Conflict, InvalidRequest, NotFound
from facetrace.store.models import (
    Collection,
    FaceRow,
    Photo,
    Subject,
    SubjectDecision,
    SubjectMerge,
)


@dataclass(frozen=True, slots=True)
class SubjectRef:
    """A subject as the duplicates pages show it."""

    id: int
    external_id: str
    name: str
    collection_id: int
    collection: str
    merged_into_id: int | None


def subject_ref(session: Session, subject_id: int) -> SubjectRef:
    """One subject with its collection's name; raises :class:`NotFound`."""
    row = session.execute(
        select(Subject, Collection.name)
        .join(Collection, Collection.id == Subject.collection_id)
        .where(Subject.id == subject_id)
    ).first()
    if row is None:
        raise NotFound(f"no subject {subject_id}")
    s, coll = row
    return SubjectRef(s.id, s.external_id, s.name, s.collection_id, coll, s.merged_into_id)


def subject_refs(session: Session, ids: set[int]) -> dict[int, SubjectRef]:
    """Several subjects by id (unknown ids are left out)."""
    if not ids:
        return {}
    rows = session.execute(
        select(Subject, Collection.name)
        .join(Collection, Collection.id == Subject.collection_id)
        .where(Subject.id.in_(sorted(ids)))
    )
    return {
        s.id: SubjectRef(s.id, s.external_id, s.name, s.collection_id, coll, s.merged_into_id)
        for s, coll in rows
    }


def _ordered(a: int, b: int) -> tuple[int, int]:
    if a == b:
        raise InvalidRequest("a subject is always the same person as itself")
    return (a, b) if a < b else (b, a)


def merged_members(session: Session, subject_id: int) -> set[int]:
    """The subject and every subject merged into it (directly or through others)."""
    found = {subject_id}
    frontier = {subject_id}
    while frontier:
        frontier = (
            set(session.scalars(select(Subject.id).where(Subject.merged_into_id.in_(frontier))))
            - found
        )
        found |= frontier
    return found


def different_pairs(session: Session) -> list[tuple[int, int]]:
    """Every standing "different people" decision as (subject a, subject b)."""
    return [
        (a, b)
        for a, b in session.execute(
            select(SubjectDecision.subject_a, SubjectDecision.subject_b).where(
                SubjectDecision.decision == "different"
            )
        )
    ]


def decided_different(session: Session, a: int, b: int) -> SubjectDecision | None:
    """A "different people" decision between the two subjects or any subject merged into
    either, if there is one."""
    left, right = merged_members(session, a), merged_members(session, b)
    return session.scalars(
        select(SubjectDecision).where(
            SubjectDecision.decision == "different",
            or_(
                SubjectDecision.subject_a.in_(left) & SubjectDecision.subject_b.in_(right),
                SubjectDecision.subject_a.in_(right) & SubjectDecision.subject_b.in_(left),
            ),
        )
    ).first()


def record_different(
    session: Session, *, subject_a: int, subject_b: int, note: str, decided_by: str
) -> SubjectDecision:
    """Record that two subjects are different people (idempotent: the standing decision
    is returned if there is one)."""
    a, b = _ordered(subject_a, subject_b)
    for sid in (a, b):
        subject_ref(session, sid)
    existing = session.scalars(
        select(SubjectDecision).where(
            SubjectDecision.subject_a == a, SubjectDecision.subject_b == b
        )
    ).first()
    if existing is not None:
        return existing
    row = SubjectDecision(
        subject_a=a, subject_b=b, decision="different", note=note, decided_by=decided_by
    )
    session.add(row)
    session.flush()
    return row


def merge_subjects(
    session: Session,
    *,
    source_id: int,
    target_id: int,
    note: str,
    merged_by: str,
    score: float | None = None,
) -> SubjectMerge:
    """Move every photo and face of ``source_id`` to ``target_id``; returns the record.

    Raises :class:`NotFound` for an unknown subject, :class:`Conflict` when either is
    merged already or a "different people" decision stands between them.
    """
    _ordered(source_id, target_id)
    source, target = subject_ref(session, source_id), subject_ref(session, target_id)
    for ref in (source, target):
        if ref.merged_into_id is not None:
            raise Conflict(
                f"subject {ref.external_id} is merged into subject {ref.merged_into_id} "
                "already; merge with that one, or undo the earlier merge first"
            )
    standing = decided_different(session, source_id, target_id)
    if standing is not None:
        raise Conflict(
            f"subjects {source.external_id} and {target.external_id} were decided to be "
            f"different people by {standing.decided_by}; that decision stands"
        )
    photo_ids = list(
        session.scalars(select(Photo.id).where(Photo.subject_id == source_id).order_by(Photo.id))
    )
    face_ids = list(
        session.scalars(
            select(FaceRow.id).where(FaceRow.subject_id == source_id).order_by(FaceRow.id)
        )
    )
    session.execute(update(Photo).where(Photo.id.in_(photo_ids)).values(subject_id=target_id))
    session.execute(update(FaceRow).where(FaceRow.id.in_(face_ids)).values(subject_id=target_id))
    session.execute(update(Subject).where(Subject.id == source_id).values(merged_into_id=target_id))
    row = SubjectMerge(
        source_id=source_id,
        target_id=target_id,
        photo_ids=photo_ids,
        face_ids=face_ids,
        score=score,
        note=note,
        merged_by=merged_by,
    )
    session.add(row)
    session.flush()
    return row


def get_merge(session: Session, merge_id: int) -> SubjectMerge:
    """One merge record; raises :class:`NotFound`."""
    row = session.get(SubjectMerge, merge_id)
    if row is None:
        raise NotFound(f"no merge {merge_id}")
    return row


def undo_merge(session: Session, *, merge_id: int, note: str, undone_by: str) -> SubjectMerge:
    """Move the photos and faces a merge moved back to its source subject.

    Photos deleted since stay deleted. Raises :class:`Conflict` when the merge was
    undone already or its target has itself been merged into another subject since
    (undo that merge first).
    """
    row = get_merge(session, merge_id)
    if row.undone_at is not None:
        raise Conflict(f"merge {merge_id} was undone already")
    target = subject_ref(session, row.target_id)
    if target.merged_into_id is not None:
        raise Conflict(
            f"subject {target.external_id} was merged into subject {target.merged_into_id} "
            "since; undo that merge first"
        )
    session.execute(
        update(Photo)
        .where(Photo.id.in_(row.photo_ids), Photo.subject_id == row.target_id)
        .values(subject_id=row.source_id)
    )
    session.execute(
        update(FaceRow)
        .where(FaceRow.id.in_(row.face_ids), FaceRow.subject_id == row.target_id)
        .values(subject_id=row.source_id)
    )
    session.execute(update(Subject).where(Subject.id == row.source_id).values(merged_into_id=None))
    row.undone_at = datetime.now(UTC)
    row.undone_by = undone_by
    row.undo_note = note
    session.flush()
    return row


def recent_merges(session: Session, *, limit: int = 50) -> list[SubjectMerge]:
    """The latest merges, newest first (undone ones included, marked)."""
    return list(session.scalars(select(SubjectMerge).order_by(SubjectMerge.id.desc()).limit(limit)))
