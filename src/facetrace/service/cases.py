"""Cases: opening, listing and reading them, and the retention purge of their probe
photos. The service layer between the web/API and the engine (see also
:mod:`facetrace.service.searches`, :mod:`~facetrace.service.reviews`,
:mod:`~facetrace.service.notifications` and :mod:`~facetrace.service.reports`).

Every public function takes the session and keyword-only arguments, checks the actor's
permission and department, does its work, and appends to the audit log in the same
transaction. Nothing here knows of models, indexes or HTTP.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TypeVar

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from facetrace import fields
from facetrace.errors import Conflict, InvalidRequest, NotFound, RuleViolation
from facetrace.service import audit
from facetrace.service.accounts import SYSTEM, Actor, Perm, Role, require
from facetrace.store.service_models import (
    Case,
    CaseEvent,
    Contact,
    Identification,
    Notification,
    Probe,
    ProbeFaceRow,
    Review,
    Search,
    User,
    as_utc,
)

log = logging.getLogger(__name__)


class Purpose(StrEnum):
    """The only purposes a search may serve."""

    IDENTIFY_DECEASED = "identify_deceased"
    IDENTIFY_DETAINED = "identify_detained"
    TRACE_MISSING = "trace_missing"
    VERIFY_IDENTITY = "verify_identity"


PURPOSE_LABELS: dict[Purpose, str] = {
    Purpose.IDENTIFY_DECEASED: "Identify a deceased person",
    Purpose.IDENTIFY_DETAINED: "Identify a captured or detained person",
    Purpose.TRACE_MISSING: "Trace a missing person",
    Purpose.VERIFY_IDENTITY: "Verify a claimed identity",
}


class CaseStatus(StrEnum):
    """``open``: no candidate yet; ``lead``: a reviewer saw a potential candidate;
    ``identified``: two reviewers agreed and a primary identifier confirmed it."""

    OPEN = "open"
    LEAD = "lead"
    IDENTIFIED = "identified"
    CLOSED = "closed"


STATUS_LABELS: dict[str, str] = {
    CaseStatus.OPEN: "open",
    CaseStatus.LEAD: "lead",
    CaseStatus.IDENTIFIED: "identified",
    CaseStatus.CLOSED: "closed",
}


class Outcome(StrEnum):
    """How a case ended. Every closing gives a reason as well."""

    IDENTIFIED = "identified"
    FOUND_ALIVE = "found_alive"
    NO_RESULT = "no_result"
    TRANSFERRED = "transferred"
    SUPERVISOR = "closed_by_supervisor"


OUTCOME_LABELS: dict[Outcome, str] = {
    Outcome.IDENTIFIED: "Identified (a primary identifier confirmed it)",
    Outcome.FOUND_ALIVE: "Found alive",
    Outcome.NO_RESULT: "No result",
    Outcome.TRANSFERRED: "Transferred to another authority",
    Outcome.SUPERVISOR: "Closed by a supervisor",
}


class EventKind(StrEnum):
    """Case events kept in ``case_event`` (the rest of the timeline has its own tables)."""

    NOTE = "note"
    ASSIGNED = "assigned"
    CLOSED = "closed"
    REOPENED = "reopened"


# --- cases ------------------------------------------------------------------------------


def utcnow() -> datetime:
    """Now, in UTC (timestamps are stored timezone-aware)."""
    return datetime.now(UTC)


def scoped_case(session: Session, *, actor: Actor, case_id: int, perm: Perm) -> Case:
    """The case if the actor may ``perm`` and it is in the actor's department.
    A case of another department reads as missing, so its existence does not leak."""
    require(actor, perm)
    case = session.get(Case, case_id)
    if case is None:
        raise NotFound(f"no case {case_id}")
    if actor is not SYSTEM and case.department_id != actor.department_id:
        audit.note_refusal(
            session,
            actor=actor.username,
            target=f"case:{case_id}",
            detail={"reason": "another department's case", "status": 404},
        )
        raise NotFound(f"no case {case_id}")
    return case


def create_case(
    session: Session,
    *,
    actor: Actor,
    number: str,
    purpose: str,
    legal_basis: str,
    title: str = "",
    retention_days: int,
) -> Case:
    """Open a case in the actor's department. Number, purpose (one of :class:`Purpose`)
    and legal basis are required; probes are purged ``retention_days`` after opening."""
    require(actor, Perm.CASE_CREATE)
    number = fields.check(fields.CaseNumber, number, field="case number")
    legal_basis = fields.check(fields.LegalBasis, legal_basis, field="legal basis")
    title = fields.check(fields.OptionalName, title, field="title")
    if not number:
        raise InvalidRequest("a case needs a case number")
    if not legal_basis:
        raise InvalidRequest("a case needs the legal basis for its searches")
    try:
        purpose_value = Purpose(purpose)
    except ValueError as exc:
        allowed = ", ".join(p.value for p in Purpose)
        raise InvalidRequest(f"purpose must be one of: {allowed}") from exc
    if actor.department_id is None:
        raise InvalidRequest("your account has no department; ask an administrator")
    # unique within the department: another department's numbers are neither in the
    # way nor revealed
    taken = select(Case.id).where(Case.department_id == actor.department_id, Case.number == number)
    if session.execute(taken).first():
        raise Conflict(f"your department has a case number {number!r} already")
    now = utcnow()
    case = Case(
        number=number,
        title=title.strip(),
        purpose=purpose_value.value,
        legal_basis=legal_basis,
        department_id=actor.department_id,
        created_by=actor.id,
        status=CaseStatus.OPEN.value,
        retention_until=now + timedelta(days=retention_days),
        created_at=now,
    )
    session.add(case)
    try:
        session.flush()
    except IntegrityError as exc:
        raise Conflict(f"your department has a case number {number!r} already") from exc
    audit.append(
        session,
        actor=actor.username,
        action=audit.Action.CASE_CREATE,
        target=f"case:{case.id}",
        detail={"number": number, "purpose": purpose_value.value, "legal_basis": legal_basis},
    )
    return case


def list_cases(session: Session, *, actor: Actor, closed: bool | None = None) -> list[Case]:
    """The cases of the actor's department, newest first: all of them, or only the
    closed ones (``closed=True``, the archive) or only those still worked (``False``)."""
    require(actor, Perm.CASE_READ)
    stmt = select(Case).where(Case.department_id == actor.department_id)
    if closed is not None:
        done = Case.status == CaseStatus.CLOSED.value
        stmt = stmt.where(done if closed else ~done)
    return list(session.execute(stmt.order_by(Case.id.desc())).scalars())


def get_case(session: Session, *, actor: Actor, case_id: int) -> Case:
    """One case of the actor's department; raises NotFound otherwise."""
    return scoped_case(session, actor=actor, case_id=case_id, perm=Perm.CASE_READ)


_CaseRow = TypeVar("_CaseRow", Search, Probe, Review, Contact, Notification, CaseEvent)


def rows_of_case(session: Session, model: type[_CaseRow], case: Case) -> list[_CaseRow]:
    """Every row of ``model`` belonging to ``case``, oldest first."""
    stmt = select(model).where(model.case_id == case.id).order_by(model.id)
    return list(session.execute(stmt).scalars())


def case_searches(session: Session, *, case: Case) -> list[Search]:
    """The searches of a case, oldest first."""
    return rows_of_case(session, Search, case)


def case_probes(session: Session, *, case: Case) -> list[Probe]:
    """The probes of a case, oldest first."""
    return rows_of_case(session, Probe, case)


# --- retention --------------------------------------------------------------------------


def purge_due(session: Session, *, actor: Actor = SYSTEM, now: datetime | None = None) -> int:
    """Delete the photo (or video) bytes of every probe whose case's retention period has
    ended, its faces' vectors and landmarks, and a video's key-frame crops. The probe row
    stays (hash, face boxes and quality, dates) so the case record remains complete.
    Returns how many probes were purged."""
    now = now or utcnow()
    due = list(
        session.execute(
            select(Probe)
            .join(Case, Case.id == Probe.case_id)
            .where(Probe.data.is_not(None), Case.retention_until <= now)
        ).scalars()
    )
    if not due:
        return 0
    ids = [p.id for p in due]
    session.execute(
        update(Probe).where(Probe.id.in_(ids)).values(data=None, purged_at=now),
        execution_options={"synchronize_session": False},
    )
    # the faces' vectors and landmarks are biometric data of the photo: they go with it
    session.execute(
        update(ProbeFaceRow)
        .where(ProbeFaceRow.probe_id.in_(ids))
        .values(vector=None, landmarks=[]),
        execution_options={"synchronize_session": False},
    )
    # a video person's key frames are crops of the video (and their vectors, landmarks):
    # they go too; the times, frame numbers and boxes stay as the record
    tracks = session.execute(
        select(ProbeFaceRow).where(ProbeFaceRow.probe_id.in_(ids), ProbeFaceRow.origin == "track")
    ).scalars()
    for row in tracks:
        extra = dict(row.extra or {})
        extra["key_frames"] = [
            {k: v for k, v in frame.items() if k not in ("jpeg", "vector", "landmarks")}
            for frame in extra.get("key_frames", [])
        ]
        row.extra = extra
    for p in due:
        session.expire(p)
    audit.append(
        session,
        actor=actor.username,
        action=audit.Action.PURGE,
        target="probes",
        detail={"probes": ids, "cases": sorted({p.case_id for p in due})},
    )
    log.info("purged %d probe photos past retention", len(ids))
    return len(ids)


def is_active(case: Case) -> bool:
    """True while a case may still be searched and reviewed (not identified or closed)."""
    return case.status in (CaseStatus.OPEN, CaseStatus.LEAD)


def require_open(case: Case) -> None:
    """Raise RuleViolation when the case is closed (its record is kept, read-only)."""
    if case.status == CaseStatus.CLOSED:
        raise RuleViolation(
            f"case {case.number} is closed; a supervisor can reopen it if work must go on"
        )


# --- assignment, notes, closing ---------------------------------------------------------


def _event(session: Session, *, case: Case, actor: Actor, kind: EventKind, text: str) -> CaseEvent:
    event = CaseEvent(case_id=case.id, kind=kind.value, text=text, user_id=actor.id)
    session.add(event)
    session.flush()
    return event


def assignable_users(session: Session, *, actor: Actor) -> list[User]:
    """Active investigators and reviewers of the actor's department, by user name."""
    require(actor, Perm.CASE_ASSIGN)
    rows = session.execute(
        select(User)
        .where(User.department_id == actor.department_id, User.active.is_(True))
        .order_by(User.username)
    ).scalars()
    wanted = {Role.INVESTIGATOR.value, Role.REVIEWER.value}
    return [u for u in rows if wanted & set(u.roles.split(","))]


def assign_case(
    session: Session, *, actor: Actor, case_id: int, username: str, note: str = ""
) -> Case:
    """Assign a case to an investigator or reviewer of its department (``""``: to
    nobody). Supervisors do this; the case's timeline and the audit log record it."""
    case = scoped_case(session, actor=actor, case_id=case_id, perm=Perm.CASE_ASSIGN)
    require_open(case)
    user: User | None = None
    if username.strip():
        user = next(
            (
                u
                for u in assignable_users(session, actor=actor)
                if u.username == username.strip().lower()
            ),
            None,
        )
        if user is None:
            raise InvalidRequest(
                f"{username!r} is not an active investigator or reviewer of this department"
            )
    case.assigned_to = user.id if user else None
    case.assignee = user
    text = f"assigned to {user.username}" if user else "assignment removed"
    _event(
        session,
        case=case,
        actor=actor,
        kind=EventKind.ASSIGNED,
        text=(text + (f": {note.strip()}" if note.strip() else "")),
    )
    audit.append(
        session,
        actor=actor.username,
        action=audit.Action.CASE_UPDATE,
        target=f"case:{case.id}",
        detail={"op": "assign", "to": user.username if user else None},
    )
    return case


MAX_NOTE = 10_000


def add_note(session: Session, *, actor: Actor, case_id: int, text: str) -> CaseEvent:
    """A note on the case's timeline (anyone who may read the case)."""
    case = scoped_case(session, actor=actor, case_id=case_id, perm=Perm.CASE_READ)
    text = text.strip()
    if not text:
        raise InvalidRequest("the note is empty")
    if len(text) > MAX_NOTE:
        raise InvalidRequest(f"a note can be at most {MAX_NOTE:,} characters")
    event = _event(session, case=case, actor=actor, kind=EventKind.NOTE, text=text)
    audit.append(
        session,
        actor=actor.username,
        action=audit.Action.CASE_UPDATE,
        target=f"case:{case.id}",
        detail={"op": "note", "event": event.id},
    )
    return event


def close_case(session: Session, *, actor: Actor, case_id: int, outcome: str, reason: str) -> Case:
    """Close (archive) a case with its outcome and the reason. "Identified" needs a
    recorded identification, and an identified case can only close as identified;
    "closed by a supervisor" needs the supervisor role. A closed case keeps its whole
    record, read-only, and leaves the lists of work in progress."""
    case = scoped_case(session, actor=actor, case_id=case_id, perm=Perm.CASE_CLOSE)
    require_open(case)
    try:
        value = Outcome(outcome)
    except ValueError as exc:
        allowed = ", ".join(OUTCOME_LABELS.values())
        raise InvalidRequest(f"choose how the case ended: {allowed}") from exc
    reason = reason.strip()
    if not reason:
        raise InvalidRequest("give the reason for closing the case")
    if len(reason) > MAX_NOTE:
        raise InvalidRequest(f"the reason can be at most {MAX_NOTE:,} characters")
    identified = session.execute(
        select(Identification.id).where(Identification.case_id == case.id)
    ).first()
    if value is Outcome.IDENTIFIED and not identified:
        raise RuleViolation(
            "the case has no identification: record the primary identifier first, "
            "or choose another outcome"
        )
    if identified and value is not Outcome.IDENTIFIED:
        raise RuleViolation("the case is identified; close it with the outcome 'identified'")
    if value is Outcome.SUPERVISOR and not actor.has(Role.SUPERVISOR):
        raise RuleViolation("only a supervisor can close a case as 'closed by a supervisor'")
    case.status = CaseStatus.CLOSED.value
    case.outcome = value.value
    case.outcome_reason = reason
    case.closed_at = utcnow()
    case.closed_by = actor.id
    _event(
        session,
        case=case,
        actor=actor,
        kind=EventKind.CLOSED,
        text=f"{OUTCOME_LABELS[value]}: {reason}",
    )
    audit.append(
        session,
        actor=actor.username,
        action=audit.Action.CASE_CLOSE,
        target=f"case:{case.id}",
        detail={"outcome": value.value, "reason": reason},
    )
    return case


def reopen_case(session: Session, *, actor: Actor, case_id: int, reason: str) -> Case:
    """Reopen a closed case (supervisors), with the reason; it returns to the state its
    record gives it (identified, lead or open)."""
    case = scoped_case(session, actor=actor, case_id=case_id, perm=Perm.CASE_ASSIGN)
    if case.status != CaseStatus.CLOSED:
        raise RuleViolation(f"case {case.number} is not closed")
    reason = reason.strip()
    if not reason:
        raise InvalidRequest("give the reason for reopening the case")
    identified = session.execute(
        select(Identification.id).where(Identification.case_id == case.id)
    ).first()
    lead = session.execute(
        select(Review.id).where(
            Review.case_id == case.id, Review.conclusion == "potential_candidate"
        )
    ).first()
    case.status = (
        CaseStatus.IDENTIFIED if identified else CaseStatus.LEAD if lead else CaseStatus.OPEN
    ).value
    case.outcome, case.outcome_reason, case.closed_at, case.closed_by = None, "", None, None
    _event(session, case=case, actor=actor, kind=EventKind.REOPENED, text=reason)
    audit.append(
        session,
        actor=actor.username,
        action=audit.Action.CASE_UPDATE,
        target=f"case:{case.id}",
        detail={"op": "reopen", "reason": reason},
    )
    return case


def case_events(session: Session, *, case: Case) -> list[CaseEvent]:
    """Notes, assignments, closings and reopenings of a case, oldest first."""
    return rows_of_case(session, CaseEvent, case)


def retention_ended(case: Case, *, now: datetime | None = None) -> bool:
    """True when the case's probes are due for deletion."""
    return as_utc(case.retention_until) <= (now or utcnow())
