"""Cases, probes, searches, reviews, identifications, notifications, reports and the
retention purge: the service layer between the web/API and the engine.

Every public function takes the session and keyword-only arguments, checks the actor's
permission and department, does its work, and appends to the audit log in the same
transaction. The engine is reached only through :class:`FaceSearcher`, so this module
knows nothing of models or indexes.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol, TypeVar

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from facetrace import audit
from facetrace.accounts import SYSTEM, Actor, Perm, require
from facetrace.errors import Conflict, InvalidRequest, NotFound, RuleViolation
from facetrace.store.service_models import (
    Case,
    Contact,
    Department,
    Identification,
    Notification,
    Probe,
    Review,
    Search,
    SearchCandidate,
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


class Conclusion(StrEnum):
    """What a reviewer may record about a search."""

    POTENTIAL_CANDIDATE = "potential_candidate"
    NO_CANDIDATE = "no_candidate"
    INCONCLUSIVE = "inconclusive"


CONCLUSION_LABELS: dict[Conclusion, str] = {
    Conclusion.POTENTIAL_CANDIDATE: "Potential candidate",
    Conclusion.NO_CANDIDATE: "No candidate",
    Conclusion.INCONCLUSIVE: "Inconclusive",
}


class PrimaryIdentifier(StrEnum):
    """Evidence that can confirm an identity (INTERPOL's primary identifiers plus
    documents and personal effects); a face is never one of them."""

    FINGERPRINTS = "fingerprints"
    DNA = "dna"
    DENTAL = "dental_records"
    DOCUMENTS = "identity_documents"
    EFFECTS = "personal_effects"


IDENTIFIER_LABELS: dict[PrimaryIdentifier, str] = {
    PrimaryIdentifier.FINGERPRINTS: "Fingerprints",
    PrimaryIdentifier.DNA: "DNA",
    PrimaryIdentifier.DENTAL: "Dental records",
    PrimaryIdentifier.DOCUMENTS: "Identity documents",
    PrimaryIdentifier.EFFECTS: "Personal effects",
}


class CaseStatus(StrEnum):
    """``open``: no candidate yet; ``lead``: a reviewer saw a potential candidate;
    ``identified``: two reviewers agreed and a primary identifier confirmed it."""

    OPEN = "open"
    LEAD = "lead"
    IDENTIFIED = "identified"


# --- the engine, as this layer sees it --------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProbeFace:
    """A face found in a probe photo: box (x1, y1, x2, y2) in pixels, quality 0..1."""

    index: int
    box: tuple[int, int, int, int]
    quality: float
    quality_reasons: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form stored with the probe."""
        return {
            "index": self.index,
            "box": list(self.box),
            "quality": round(self.quality, 4),
            "quality_reasons": list(self.quality_reasons),
        }


@dataclass(frozen=True, slots=True)
class FoundCandidate:
    """One candidate returned by the engine, with its provenance."""

    rank: int
    score: float
    false_match_rate: float | None  # None when the gallery has no calibration
    above_threshold: bool
    subject_external_id: str
    subject_name: str
    face_id: int
    photo_id: int
    box: tuple[int, int, int, int]
    quality: float
    collection: str
    legal_basis: str
    source_url: str
    source_title: str
    captured_date: str


@dataclass(frozen=True, slots=True)
class FaceResult:
    """The engine's answer for one probe face."""

    face: ProbeFace
    threshold: float
    candidates: tuple[FoundCandidate, ...]
    below_threshold: tuple[FoundCandidate, ...] = field(default=())


class FaceSearcher(Protocol):
    """What the service needs from the engine (see :mod:`facetrace.gallery_port`)."""

    def find_faces(self, data: bytes, *, source: str) -> tuple[int, int, list[ProbeFace]]:
        """Decode a photo and return (width, height, faces); raises ImageError/NoFaceFound."""
        ...

    def search_face(
        self,
        data: bytes,
        *,
        source: str,
        face: int,
        force: bool,
        collections: Sequence[str] | None,
    ) -> FaceResult:
        """Search face number ``face`` of a photo; raises LowQualityFace unless ``force``."""
        ...


# --- cases ------------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


def _scoped_case(session: Session, *, actor: Actor, case_id: int, perm: Perm) -> Case:
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
    now = _now()
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
    return _scoped_case(session, actor=actor, case_id=case_id, perm=Perm.CASE_READ)


_CaseRow = TypeVar("_CaseRow", Search, Probe, Review, Contact, Notification)


def _rows_of_case(session: Session, model: type[_CaseRow], case: Case) -> list[_CaseRow]:
    """Every row of ``model`` belonging to ``case``, oldest first."""
    stmt = select(model).where(model.case_id == case.id).order_by(model.id)
    return list(session.execute(stmt).scalars())


def case_searches(session: Session, *, case: Case) -> list[Search]:
    """The searches of a case, oldest first."""
    return _rows_of_case(session, Search, case)


def case_probes(session: Session, *, case: Case) -> list[Probe]:
    """The probes of a case, oldest first."""
    return _rows_of_case(session, Probe, case)


# --- probes and searches ----------------------------------------------------------------


def add_probe(
    session: Session,
    *,
    actor: Actor,
    case_id: int,
    data: bytes,
    filename: str,
    found: tuple[int, int, list[ProbeFace]],
) -> Probe:
    """Keep a probe photo with its case (never in the gallery) with the faces the engine
    found in it (``found`` = width, height, faces from :meth:`FaceSearcher.find_faces`,
    called before so no database lock is held while the models run)."""
    case = _scoped_case(session, actor=actor, case_id=case_id, perm=Perm.SEARCH)
    width, height, faces = found
    probe = Probe(
        case_id=case.id,
        sha256=hashlib.sha256(data).hexdigest(),
        filename=filename[:300],
        data=data,
        width=width,
        height=height,
        faces=[f.as_dict() for f in faces],
        uploaded_by=actor.id,
    )
    session.add(probe)
    session.flush()
    return probe


def get_probe(session: Session, *, actor: Actor, probe_id: int) -> Probe:
    """A probe of one of the actor's department's cases."""
    probe = session.get(Probe, probe_id)
    if probe is None:
        raise NotFound(f"no probe {probe_id}")
    _scoped_case(session, actor=actor, case_id=probe.case_id, perm=Perm.RESULTS_VIEW)
    return probe


def search_input(session: Session, *, actor: Actor, probe_id: int, face: int) -> tuple[bytes, str]:
    """The photo bytes and file name to search face ``face`` of a probe, after checking
    the actor may search this case and the photo still exists."""
    probe = session.get(Probe, probe_id)
    if probe is None:
        raise NotFound(f"no probe {probe_id}")
    _scoped_case(session, actor=actor, case_id=probe.case_id, perm=Perm.SEARCH)
    if probe.data is None:
        raise RuleViolation("this probe photo was deleted at the end of its retention period")
    if not 0 <= face < len(probe.faces):
        raise InvalidRequest(f"face {face} requested; the photo has {len(probe.faces)} faces")
    return probe.data, probe.filename


def record_search(
    session: Session,
    *,
    actor: Actor,
    probe_id: int,
    face: int,
    force: bool,
    result: FaceResult,
) -> Search:
    """Keep the engine's candidate list for a probe face as a snapshot with the case and
    audit the search with the case's purpose and legal basis."""
    probe = session.get(Probe, probe_id)
    if probe is None:
        raise NotFound(f"no probe {probe_id}")
    case = _scoped_case(session, actor=actor, case_id=probe.case_id, perm=Perm.SEARCH)
    search = Search(
        case_id=case.id,
        probe_id=probe.id,
        user_id=actor.id,
        face_index=face,
        box=list(result.face.box),
        quality=result.face.quality,
        quality_reasons=list(result.face.quality_reasons),
        threshold=result.threshold,
        no_candidate=not result.candidates,
        forced=force,
    )
    session.add(search)
    session.flush()
    shown = list(result.candidates) + list(result.below_threshold)
    for c in shown:
        session.add(
            SearchCandidate(
                search_id=search.id,
                rank=c.rank,
                score=c.score,
                false_match_rate=c.false_match_rate,
                above_threshold=c.above_threshold,
                subject_external_id=c.subject_external_id,
                subject_name=c.subject_name,
                face_id=c.face_id,
                photo_id=c.photo_id,
                box=list(c.box),
                quality=c.quality,
                collection=c.collection,
                legal_basis=c.legal_basis,
                source_url=c.source_url,
                source_title=c.source_title,
                captured_date=c.captured_date,
            )
        )
    session.flush()
    session.refresh(search)
    audit.append(
        session,
        actor=actor.username,
        action=audit.Action.SEARCH,
        target=f"case:{case.id}",
        detail={
            "search": search.id,
            "case_number": case.number,
            "purpose": case.purpose,
            "legal_basis": case.legal_basis,
            "probe_sha256": probe.sha256,
            "face": face,
            "forced": force,
            "candidates": len(result.candidates),
        },
    )
    return search


def run_search(
    session: Session,
    *,
    actor: Actor,
    probe_id: int,
    face: int,
    force: bool,
    searcher: FaceSearcher,
    collections: Sequence[str] | None = None,
) -> Search:
    """:func:`search_input`, the engine, then :func:`record_search`, in one session."""
    data, filename = search_input(session, actor=actor, probe_id=probe_id, face=face)
    result = searcher.search_face(
        data, source=filename, face=face, force=force, collections=collections
    )
    return record_search(
        session, actor=actor, probe_id=probe_id, face=face, force=force, result=result
    )


def get_search(session: Session, *, actor: Actor, search_id: int) -> tuple[Case, Search]:
    """A search and its case, audited as a view of results."""
    search = session.get(Search, search_id)
    if search is None:
        raise NotFound(f"no search {search_id}")
    case = _scoped_case(session, actor=actor, case_id=search.case_id, perm=Perm.RESULTS_VIEW)
    audit.append(
        session,
        actor=actor.username,
        action=audit.Action.VIEW_RESULTS,
        target=f"search:{search.id}",
        detail={"case": case.id},
    )
    return case, search


# --- reviews and identification ---------------------------------------------------------


def record_review(
    session: Session,
    *,
    actor: Actor,
    search_id: int,
    conclusion: str,
    note: str = "",
    candidate_id: int | None = None,
) -> Review:
    """Record a reviewer's conclusion on a search. A potential candidate names which one."""
    search = session.get(Search, search_id)
    if search is None:
        raise NotFound(f"no search {search_id}")
    case = _scoped_case(session, actor=actor, case_id=search.case_id, perm=Perm.REVIEW)
    try:
        value = Conclusion(conclusion)
    except ValueError as exc:
        allowed = ", ".join(c.value for c in Conclusion)
        raise InvalidRequest(f"conclusion must be one of: {allowed}") from exc
    if case.status == CaseStatus.IDENTIFIED:
        raise RuleViolation("the case is identified already")
    candidate: SearchCandidate | None = None
    if value is Conclusion.POTENTIAL_CANDIDATE:
        if candidate_id is None:
            raise InvalidRequest("say which candidate: a potential candidate needs candidate_id")
        candidate = session.get(SearchCandidate, candidate_id)
        if candidate is None or candidate.search_id != search.id:
            raise InvalidRequest(f"candidate {candidate_id} is not in search {search.id}")
    review = Review(
        case_id=case.id,
        search_id=search.id,
        candidate_id=candidate.id if candidate else None,
        reviewer_id=actor.id,
        conclusion=value.value,
        note=note.strip(),
    )
    session.add(review)
    if value is Conclusion.POTENTIAL_CANDIDATE and case.status == CaseStatus.OPEN:
        case.status = CaseStatus.LEAD.value
    session.flush()
    audit.append(
        session,
        actor=actor.username,
        action=audit.Action.REVIEW,
        target=f"search:{search.id}",
        detail={
            "case": case.id,
            "conclusion": value.value,
            "candidate": candidate.id if candidate else None,
            "subject": candidate.subject_external_id if candidate else None,
        },
    )
    return review


def case_reviews(session: Session, *, case: Case) -> list[Review]:
    """All reviews of a case, oldest first."""
    return _rows_of_case(session, Review, case)


def agreed_subjects(session: Session, *, case: Case) -> dict[str, set[str]]:
    """Subject external id -> user names of the reviewers whose latest review of a search
    names that subject as a potential candidate. Two or more names mean agreement."""
    latest: dict[tuple[int, int], Review] = {}
    for r in case_reviews(session, case=case):
        latest[(r.search_id, r.reviewer_id)] = r
    agreed: dict[str, set[str]] = defaultdict(set)
    for r in latest.values():
        if r.conclusion == Conclusion.POTENTIAL_CANDIDATE and r.candidate is not None:
            agreed[r.candidate.subject_external_id].add(r.reviewer.username)
    return dict(agreed)


def record_identification(
    session: Session,
    *,
    actor: Actor,
    case_id: int,
    candidate_id: int,
    primary_identifier: str,
    evidence: str,
) -> Identification:
    """Mark a case identified. Refused unless two different reviewers agree on the
    candidate's subject and a primary identifier with its evidence is given."""
    case = _scoped_case(session, actor=actor, case_id=case_id, perm=Perm.IDENTIFY)
    if case.status == CaseStatus.IDENTIFIED:
        raise RuleViolation("the case is identified already")
    try:
        kind = PrimaryIdentifier(primary_identifier)
    except ValueError as exc:
        allowed = ", ".join(p.value for p in PrimaryIdentifier)
        raise InvalidRequest(f"primary identifier must be one of: {allowed}") from exc
    if not evidence.strip():
        raise InvalidRequest("describe the evidence (e.g. the DNA report number)")
    candidate = session.get(SearchCandidate, candidate_id)
    search = session.get(Search, candidate.search_id) if candidate else None
    if candidate is None or search is None or search.case_id != case.id:
        raise InvalidRequest(f"candidate {candidate_id} is not in this case")
    reviewers = agreed_subjects(session, case=case).get(candidate.subject_external_id, set())
    if len(reviewers) < 2:
        raise RuleViolation(
            "two different reviewers must record this candidate as a potential candidate "
            f"first (so far: {', '.join(sorted(reviewers)) or 'none'})"
        )
    ident = Identification(
        case_id=case.id,
        candidate_id=candidate.id,
        primary_identifier=kind.value,
        evidence=evidence.strip(),
        recorded_by=actor.id,
    )
    session.add(ident)
    case.status = CaseStatus.IDENTIFIED.value
    case.identified_at = _now()
    session.flush()
    audit.append(
        session,
        actor=actor.username,
        action=audit.Action.IDENTIFICATION,
        target=f"case:{case.id}",
        detail={
            "subject": candidate.subject_external_id,
            "primary_identifier": kind.value,
            "reviewers": sorted(reviewers),
        },
    )
    return ident


def identification(session: Session, *, case: Case) -> Identification | None:
    """The case's identification, if any."""
    return session.execute(
        select(Identification).where(Identification.case_id == case.id)
    ).scalar_one_or_none()


# --- next of kin and notifications ------------------------------------------------------


def _identified_case(session: Session, *, actor: Actor, case_id: int) -> Case:
    case = _scoped_case(session, actor=actor, case_id=case_id, perm=Perm.NOTIFY)
    if case.status != CaseStatus.IDENTIFIED:
        raise RuleViolation("next of kin and notifications are recorded for identified cases")
    return case


def add_contact(
    session: Session,
    *,
    actor: Actor,
    case_id: int,
    name: str,
    relationship: str = "",
    details: str = "",
) -> Contact:
    """Record a next-of-kin contact for an identified case."""
    case = _identified_case(session, actor=actor, case_id=case_id)
    if not name.strip():
        raise InvalidRequest("a contact needs a name")
    contact = Contact(
        case_id=case.id,
        name=name.strip(),
        relationship_=relationship.strip(),
        details=details.strip(),
        created_by=actor.id,
    )
    session.add(contact)
    session.flush()
    audit.append(
        session,
        actor=actor.username,
        action=audit.Action.CONTACT_ADD,
        target=f"case:{case.id}",
        detail={"contact": contact.id},
    )
    return contact


def record_notification(
    session: Session,
    *,
    actor: Actor,
    case_id: int,
    channel: str,
    notified_on: date,
    outcome: str,
    contact_id: int | None = None,
) -> Notification:
    """Record a notification made through an official channel (facetrace sends nothing)."""
    case = _identified_case(session, actor=actor, case_id=case_id)
    if not channel.strip() or not outcome.strip():
        raise InvalidRequest("a notification needs its channel and its outcome")
    if notified_on > date.today() + timedelta(days=1):
        raise InvalidRequest("a notification cannot be dated in the future")
    if contact_id is not None:
        contact = session.get(Contact, contact_id)
        if contact is None or contact.case_id != case.id:
            raise InvalidRequest(f"contact {contact_id} is not in this case")
    note = Notification(
        case_id=case.id,
        contact_id=contact_id,
        channel=channel.strip(),
        notified_on=notified_on,
        by_user=actor.id,
        outcome=outcome.strip(),
    )
    session.add(note)
    session.flush()
    audit.append(
        session,
        actor=actor.username,
        action=audit.Action.NOTIFICATION,
        target=f"case:{case.id}",
        detail={"notification": note.id, "channel": note.channel},
    )
    return note


def case_contacts(session: Session, *, case: Case) -> list[Contact]:
    """Contacts of a case, oldest first."""
    return _rows_of_case(session, Contact, case)


def case_notifications(session: Session, *, case: Case) -> list[Notification]:
    """Notifications of a case, oldest first."""
    return _rows_of_case(session, Notification, case)


@dataclass(frozen=True, slots=True)
class NotificationRecord:
    """Everything the printable notification record shows."""

    case: Case
    identification: Identification
    reviews: list[Review]
    contacts: list[Contact]
    notifications: list[Notification]
    exported_by: str
    exported_at: datetime


def notification_record(session: Session, *, actor: Actor, case_id: int) -> NotificationRecord:
    """The notification record of an identified case; audited as an export."""
    case = _scoped_case(session, actor=actor, case_id=case_id, perm=Perm.EXPORT)
    ident = identification(session, case=case)
    if ident is None:
        raise RuleViolation("only an identified case has a notification record")
    subject = ident.candidate.subject_external_id
    reviews = [
        r
        for r in case_reviews(session, case=case)
        if r.candidate is not None and r.candidate.subject_external_id == subject
    ]
    audit.append(
        session,
        actor=actor.username,
        action=audit.Action.EXPORT,
        target=f"case:{case.id}",
        detail={"what": "notification_record"},
    )
    return NotificationRecord(
        case=case,
        identification=ident,
        reviews=reviews,
        contacts=case_contacts(session, case=case),
        notifications=case_notifications(session, case=case),
        exported_by=actor.username,
        exported_at=_now(),
    )


# --- retention --------------------------------------------------------------------------


def purge_due(session: Session, *, actor: Actor = SYSTEM, now: datetime | None = None) -> int:
    """Delete the photo bytes of every probe whose case's retention period has ended.
    The probe row stays (hash, faces, dates) so the case record remains complete.
    Returns how many probes were purged."""
    now = now or _now()
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


def retention_ended(case: Case, *, now: datetime | None = None) -> bool:
    """True when the case's probes are due for deletion."""
    return as_utc(case.retention_until) <= (now or _now())


# --- supervisor reports -----------------------------------------------------------------


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
