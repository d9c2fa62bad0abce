"""A reviewer's queue: the searches of their department's open cases that still wait
for their review. A reviewer never reviews a search they ran themselves, so those are
left out; cases a supervisor assigned to the reviewer come first, then the oldest."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from facetrace.service.accounts import Actor, Perm, require
from facetrace.service.cases import CaseStatus
from facetrace.store.service_models import Case, Review, Search, as_utc


@dataclass(frozen=True, slots=True)
class QueueItem:
    """One search awaiting the actor's review. ``other_reviews`` counts the reviews
    other people recorded (their conclusions stay hidden until the actor's own)."""

    search: Search
    case: Case
    assigned_to_me: bool
    other_reviews: int


def review_queue(session: Session, *, actor: Actor) -> list[QueueItem]:
    """The searches waiting for ``actor``'s review, assigned cases first, oldest first."""
    require(actor, Perm.REVIEW)
    rows = session.execute(
        select(Search, Case)
        .join(Case, Case.id == Search.case_id)
        .where(
            Case.department_id == actor.department_id,
            Case.status.in_([CaseStatus.OPEN.value, CaseStatus.LEAD.value]),
            Search.user_id != actor.id,
        )
        .order_by(Search.id)
    ).all()
    if not rows:
        return []
    reviewers: dict[int, set[int]] = {}
    for search_id, reviewer_id in session.execute(
        select(Review.search_id, Review.reviewer_id).where(
            Review.search_id.in_([s.id for s, _ in rows])
        )
    ):
        reviewers.setdefault(search_id, set()).add(reviewer_id)
    items = [
        QueueItem(
            search=s,
            case=c,
            assigned_to_me=c.assigned_to == actor.id,
            other_reviews=len(reviewers.get(s.id, set())),
        )
        for s, c in rows
        if actor.id not in reviewers.get(s.id, set())
    ]
    items.sort(key=lambda i: (not i.assigned_to_me, as_utc(i.search.created_at), i.search.id))
    return items
