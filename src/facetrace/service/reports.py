"""Supervisor reports: searches per user and purpose, review outcomes, identifications
and notifications of a department."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from facetrace.service import audit
from facetrace.service.accounts import Actor, Perm, require
from facetrace.store.service_models import (
    Case,
    Department,
    Identification,
    Notification,
    Review,
    Search,
    User,
    as_utc,
)


@dataclass(frozen=True, slots=True)
class Report:
    """Counts for a supervisor's department (or every department for ``None``)."""

    department: str
    searches_by_user: list[tuple[str, int]]
    searches_by_purpose: list[tuple[str, int]]
    outcomes: list[tuple[str, int]]
    cases_by_status: list[tuple[str, int]]
    identifications: list[tuple[str, str, str]]
    notifications: int


def report(session: Session, *, actor: Actor) -> Report:
    """Searches per user and purpose, review outcomes, identifications and notifications
    of the actor's department. Audited."""
    require(actor, Perm.REPORTS)
    dept_id = actor.department_id
    searches = (
        select(User.username, Case.purpose, func.count(Search.id))
        .join(Case, Case.id == Search.case_id)
        .join(User, User.id == Search.user_id)
        .where(Case.department_id == dept_id)
        .group_by(User.username, Case.purpose)
    )
    by_user: Counter[str] = Counter()
    by_purpose: Counter[str] = Counter()
    for username, purpose, n in session.execute(searches):
        by_user[username] += n
        by_purpose[purpose] += n
    outcomes = session.execute(
        select(Review.conclusion, func.count(Review.id))
        .join(Case, Case.id == Review.case_id)
        .where(Case.department_id == dept_id)
        .group_by(Review.conclusion)
    ).all()
    statuses = session.execute(
        select(Case.status, func.count(Case.id))
        .where(Case.department_id == dept_id)
        .group_by(Case.status)
    ).all()
    idents = session.execute(
        select(Case.number, Identification.primary_identifier, Identification.created_at)
        .join(Case, Case.id == Identification.case_id)
        .where(Case.department_id == dept_id)
        .order_by(Identification.id)
    ).all()
    notified = session.execute(
        select(func.count(Notification.id))
        .join(Case, Case.id == Notification.case_id)
        .where(Case.department_id == dept_id)
    ).scalar_one()
    dept = session.get(Department, dept_id) if dept_id is not None else None
    audit.append(
        session,
        actor=actor.username,
        action=audit.Action.REPORT_VIEW,
        target=f"department:{dept_id}",
    )
    return Report(
        department=dept.name if dept else "",
        searches_by_user=sorted(by_user.items()),
        searches_by_purpose=sorted(by_purpose.items()),
        outcomes=sorted((str(c), int(n)) for c, n in outcomes),
        cases_by_status=sorted((str(s), int(n)) for s, n in statuses),
        identifications=[
            (str(num), str(kind), as_utc(at).date().isoformat()) for num, kind, at in idents
        ],
        notifications=int(notified),
    )
