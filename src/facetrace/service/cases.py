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

from facetrace.errors import Conflict, InvalidRequest, NotFound
from facetrace.service import audit
from facetrace.service.accounts import SYSTEM, Actor, Perm, require
from facetrace.store.service_models import (
    Case,
    Contact,
    Notification,
    Probe,
    ProbeFaceRow,
    Review,
    Search,
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


# --- cases ------------------------------------------------------------------------------


def utcnow() -> datetime:
    """Now, in UTC (timestamps are stored timezone-aware)."""
    return datetime.now(UTC)


def scoped_case(session: Session, *, actor: Actor, case_id: int, perm: Perm) -> Case:
    """The case if the actor may ``perm`` and it is in the actor's department.
    A case of another department reads as missing, so its existence does not leak."""
    require(actor, perm)
    case = session.get(Case, case_id)
    if case is None or (actor is not SYSTEM and case.department_id != actor.department_id):
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
    number = number.strip()
    legal_basis = legal_basis.strip()
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
    if session.execute(select(Case.id).where(Case.number == number)).first():
        raise Conflict(f"case number {number!r} exists already")
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
        raise Conflict(f"case number {number!r} exists already") from exc
    audit.append(
        session,
        actor=actor.username,
        action=audit.Action.CASE_CREATE,
        target=f"case:{case.id}",
        detail={"number": number, "purpose": purpose_value.value, "legal_basis": legal_basis},
    )
    return case


def list_cases(session: Session, *, actor: Actor) -> list[Case]:
    """The cases of the actor's department, newest first."""
    require(actor, Perm.CASE_READ)
    return list(
        session.execute(
            select(Case).where(Case.department_id == actor.department_id).order_by(Case.id.desc())
        ).scalars()
    )


def get_case(session: Session, *, actor: Actor, case_id: int) -> Case:
    """One case of the actor's department; raises NotFound otherwise."""
    return scoped_case(session, actor=actor, case_id=case_id, perm=Perm.CASE_READ)


_CaseRow = TypeVar("_CaseRow", Search, Probe, Review, Contact, Notification)


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
    """Delete the photo bytes of every probe whose case's retention period has ended, and
    its faces' vectors and landmarks. The probe row stays (hash, face boxes and quality,
    dates) so the case record remains complete.
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


def retention_ended(case: Case, *, now: datetime | None = None) -> bool:
    """True when the case's probes are due for deletion."""
    return as_utc(case.retention_until) <= (now or utcnow())
