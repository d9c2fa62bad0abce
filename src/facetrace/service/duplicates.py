"""Possible duplicate subjects for gallery administrators: the proposals of a pass,
reviewed merges and their undo, and "different people" decisions. Every action is
audited; nothing is ever merged without a person asking for it.

Department isolation: an administrator sees only pairs whose two subjects are both in
collections their department may read (:func:`readable_collections`: collections
shared with every department and those of their own). The pass itself never searches
faces of other collections. Merges and decisions check the same scope.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy.orm import Session

from facetrace.errors import InvalidRequest, NotFound
from facetrace.gallery import templates
from facetrace.gallery.duplicates import DuplicatePair
from facetrace.service import audit
from facetrace.service.accounts import Actor, Perm, require
from facetrace.service.collections import visible_collection_ids
from facetrace.store import duplicates as links
from facetrace.store.models import SubjectMerge

log = logging.getLogger(__name__)

MAX_NOTE = 2000


class DuplicateFinder(Protocol):
    """What this module needs from the gallery (:class:`GalleryPort` implements it)."""

    def find_duplicates(
        self, *, collections: frozenset[int] | None, fmr: float
    ) -> Sequence[DuplicatePair]:
        """Proposals among faces of ``collections`` (SQL ids; None: all)."""
        ...


def readable_collections(session: Session, *, actor: Actor) -> frozenset[int] | None:
    """SQL ids of the collections ``actor`` may read; None when that is all of them.

    The gallery's one scope (:func:`facetrace.service.collections.visible_collection_ids`).
    """
    return visible_collection_ids(session, actor=actor)


def _note(note: str) -> str:
    note = note.strip()
    if not note:
        raise InvalidRequest("say why (a note is kept with the decision in the audit log)")
    if len(note) > MAX_NOTE:
        raise InvalidRequest(f"the note is longer than {MAX_NOTE} characters")
    return note


def _readable_subject(session: Session, actor: Actor, subject_id: int) -> links.SubjectRef:
    """The subject, or NotFound when it lies outside the actor's collections (the same
    answer as for a subject that does not exist: its existence is not revealed)."""
    ref = links.subject_ref(session, subject_id)
    scope = readable_collections(session, actor=actor)
    if scope is not None and ref.collection_id not in scope:
        raise NotFound(f"no subject {subject_id}")
    return ref


def list_proposals(
    session: Session, *, actor: Actor, finder: DuplicateFinder, fmr: float
) -> list[DuplicatePair]:
    """The current proposals the actor may see, best first (audited)."""
    require(actor, Perm.COLLECTIONS_MANAGE)
    if not 0 < fmr < 1:
        raise InvalidRequest(f"the target false-match rate must be in (0, 1), got {fmr}")
    scope = readable_collections(session, actor=actor)
    # end this transaction: the pass reads through the gallery's own connection
    session.commit()
    found = [
        p
        for p in finder.find_duplicates(collections=scope, fmr=fmr)
        if scope is None or (p.a.collection_id in scope and p.b.collection_id in scope)
    ]
    audit.append(
        session,
        actor=actor.username,
        action=audit.Action.DUPLICATES_VIEW,
        target="gallery:duplicates",
        detail={"fmr": fmr, "pairs": len(found), "collections": sorted(scope or [])},
    )
    return found


def mark_different(
    session: Session, *, actor: Actor, subject_a: int, subject_b: int, note: str
) -> links.SubjectRef:
    """Record that two subjects are different people; later passes never propose them."""
    require(actor, Perm.COLLECTIONS_MANAGE)
    why = _note(note)
    a = _readable_subject(session, actor, subject_a)
    b = _readable_subject(session, actor, subject_b)
    row = links.record_different(
        session, subject_a=a.id, subject_b=b.id, note=why, decided_by=actor.username
    )
    audit.append(
        session,
        actor=actor.username,
        action=audit.Action.DECISION,
        target=f"subjects:{row.subject_a},{row.subject_b}",
        detail={"decision": "different", "a": a.external_id, "b": b.external_id, "note": why},
    )
    return a


def merge(
    session: Session,
    *,
    actor: Actor,
    source_id: int,
    target_id: int,
    note: str,
    score: float | None = None,
) -> SubjectMerge:
    """Merge subject ``source_id`` into ``target_id`` (a reviewed, audited action).

    The source's photos and faces move to the target with their provenance and
    collection unchanged; the merge can be undone (:func:`undo`).
    """
    require(actor, Perm.COLLECTIONS_MANAGE)
    why = _note(note)
    source = _readable_subject(session, actor, source_id)
    target = _readable_subject(session, actor, target_id)
    row = links.merge_subjects(
        session,
        source_id=source.id,
        target_id=target.id,
        note=why,
        merged_by=actor.username,
        score=score,
    )
    # the moved faces' templates change in the merge's transaction (the gallery's
    # in-memory template index catches up from SQL before its next search)
    templates.refresh(session, {row.source_id, row.target_id})
    audit.append(
        session,
        actor=actor.username,
        action=audit.Action.MERGE,
        target=f"merge:{row.id}",
        detail={
            "source": source.external_id,
            "source_collection": source.collection,
            "target": target.external_id,
            "target_collection": target.collection,
            "photos": row.photo_ids,
            "faces": row.face_ids,
            "score": score,
            "note": why,
        },
    )
    return row


def undo(session: Session, *, actor: Actor, merge_id: int, note: str) -> SubjectMerge:
    """Undo a merge: its photos and faces go back to the source subject (audited)."""
    require(actor, Perm.COLLECTIONS_MANAGE)
    why = _note(note)
    row = links.get_merge(session, merge_id)
    _readable_subject(session, actor, row.source_id)
    _readable_subject(session, actor, row.target_id)
    row = links.undo_merge(session, merge_id=merge_id, note=why, undone_by=actor.username)
    templates.refresh(session, {row.source_id, row.target_id})
    audit.append(
        session,
        actor=actor.username,
        action=audit.Action.MERGE_UNDO,
        target=f"merge:{row.id}",
        detail={"photos": row.photo_ids, "faces": row.face_ids, "note": why},
    )
    return row


@dataclass(frozen=True, slots=True)
class MergeView:
    """A merge as the page lists it."""

    id: int
    source: links.SubjectRef
    target: links.SubjectRef
    photos: int
    note: str
    merged_by: str
    merged_at: datetime
    undone_by: str | None
    undone_at: datetime | None


def recent_merges(session: Session, *, actor: Actor, limit: int = 50) -> list[MergeView]:
    """The latest merges between subjects the actor may read, newest first."""
    require(actor, Perm.COLLECTIONS_MANAGE)
    scope = readable_collections(session, actor=actor)
    rows = links.recent_merges(session, limit=limit)
    refs = links.subject_refs(session, {r.source_id for r in rows} | {r.target_id for r in rows})
    out = []
    for r in rows:
        s, t = refs[r.source_id], refs[r.target_id]
        if scope is not None and not (s.collection_id in scope and t.collection_id in scope):
            continue
        out.append(
            MergeView(
                r.id,
                s,
                t,
                len(r.photo_ids),
                r.note,
                r.merged_by,
                r.merged_at,
                r.undone_by,
                r.undone_at,
            )
        )
    return out
