"""Supervisor reports: searches per user and purpose, review outcomes, identifications
and notifications of a department."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import and_, func, select, true
from sqlalchemy.orm import Session

from facetrace.errors import InvalidRequest
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
    since: date | None = None
    until: date | None = None
    closed_by_outcome: tuple[tuple[str, int], ...] = ()

    @property
    def period(self) -> str:
        """The date range in words ("all time", "from 2026-01-01 to 2026-03-31")."""
        if self.since and self.until:
            return f"from {self.since} to {self.until}"
        if self.since:
            return f"from {self.since}"
        if self.until:
            return f"up to {self.until}"
        return "all time"


def day_range(since: date | None, until: date | None) -> tuple[datetime | None, datetime | None]:
    """[start of ``since``, start of the day after ``until``) in UTC; raises
    InvalidRequest when the range is backwards."""
    if since and until and since > until:
        raise InvalidRequest(f"the range starts ({since}) after it ends ({until})")
    start = datetime.combine(since, time.min, tzinfo=UTC) if since else None
    end = datetime.combine(until + timedelta(days=1), time.min, tzinfo=UTC) if until else None
    return start, end


def _within(column: Any, start: datetime | date | None, end: datetime | date | None) -> Any:
    cond: Any = true()
    if start is not None:
        cond = and_(cond, column >= start)
    if end is not None:
        cond = and_(cond, column < end)
    return cond


def report(
    session: Session, *, actor: Actor, since: date | None = None, until: date | None = None
) -> Report:
    """Searches per user and purpose, review outcomes, identifications, notifications
    and closed cases of the actor's department, for the days ``since`` to ``until``
    (inclusive, UTC; either may be open). Cases by status counts the cases opened in the
    range. Audited."""
    require(actor, Perm.REPORTS)
    dept_id = actor.department_id
    start, end = day_range(since, until)
    searches = (
        select(User.username, Case.purpose, func.count(Search.id))
        .join(Case, Case.id == Search.case_id)
        .join(User, User.id == Search.user_id)
        .where(Case.department_id == dept_id, _within(Search.created_at, start, end))
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
        .where(
            Case.department_id == dept_id,
            Review.is_current.is_(True),  # one per reviewer and search, not every change
            _within(Review.created_at, start, end),
        )
        .group_by(Review.conclusion)
    ).all()
    statuses = session.execute(
        select(Case.status, func.count(Case.id))
        .where(Case.department_id == dept_id, _within(Case.created_at, start, end))
        .group_by(Case.status)
    ).all()
    idents = session.execute(
        select(Case.number, Identification.primary_identifier, Identification.created_at)
        .join(Case, Case.id == Identification.case_id)
        .where(Case.department_id == dept_id, _within(Identification.created_at, start, end))
        .order_by(Identification.id)
    ).all()
    notified = session.execute(
        select(func.count(Notification.id))
        .join(Case, Case.id == Notification.case_id)
        .where(
            Case.department_id == dept_id,
            _within(Notification.notified_on, since, until + timedelta(days=1) if until else None),
        )
    ).scalar_one()
    closed = session.execute(
        select(Case.outcome, func.count(Case.id))
        .where(
            Case.department_id == dept_id,
            Case.outcome.is_not(None),
            _within(Case.closed_at, start, end),
        )
        .group_by(Case.outcome)
    ).all()
    dept = session.get(Department, dept_id) if dept_id is not None else None
    audit.append(
        session,
        actor=actor.username,
        action=audit.Action.REPORT_VIEW,
        target=f"department:{dept_id}",
        detail={
            "since": since.isoformat() if since else None,
            "until": until.isoformat() if until else None,
        },
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
        since=since,
        until=until,
        closed_by_outcome=tuple(sorted((str(o), int(n)) for o, n in closed)),
    )
