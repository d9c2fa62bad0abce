"""Reviews of searches and the identification of a case: a reviewer's conclusion, two
reviewers agreeing on a candidate, and a primary identifier confirming it. Nothing is
called identified by the machine alone.
"""

from __future__ import annotations

from collections import defaultdict
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from facetrace import fields
from facetrace.errors import InvalidRequest, NotFound, RuleViolation
from facetrace.service import audit
from facetrace.service.accounts import Actor, Perm
from facetrace.service.cases import CaseStatus, require_open, rows_of_case, scoped_case, utcnow
from facetrace.store.service_models import Case, Identification, Review, Search, SearchCandidate


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
    note = fields.check(fields.Note, note, field="note")
    search = session.get(Search, search_id)
    if search is None:
        raise NotFound(f"no search {search_id}")
    case = scoped_case(session, actor=actor, case_id=search.case_id, perm=Perm.REVIEW)
    if search.user_id == actor.id:
        # a review is a second pair of eyes: the person who ran the search is not one
        raise RuleViolation("you ran this search: another reviewer must review it")
    try:
        value = Conclusion(conclusion)
    except ValueError as exc:
        allowed = ", ".join(c.value for c in Conclusion)
        raise InvalidRequest(f"conclusion must be one of: {allowed}") from exc
    require_open(case)
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
    return rows_of_case(session, Review, case)


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
    evidence = fields.check(fields.Note, evidence, field="evidence")
    case = scoped_case(session, actor=actor, case_id=case_id, perm=Perm.IDENTIFY)
    require_open(case)
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
    # the person recording the identification does not count as one of its two reviewers
    others = reviewers - {actor.username}
    if len(others) < 2:
        raise RuleViolation(
            "two different reviewers, other than the person recording the identification, "
            "must record this candidate as a potential candidate first (so far: "
            f"{', '.join(sorted(reviewers)) or 'none'})"
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
    case.identified_at = utcnow()
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
