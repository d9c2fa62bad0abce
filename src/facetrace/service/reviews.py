"""Reviews of searches and the identifications of a case: a reviewer's conclusion, two
reviewers agreeing on a candidate, and a primary identifier confirming it. Nothing is
called identified by the machine alone.

An identification identifies one *person* of the case: the searched face of the
candidate's search, which is one probe face or the template of an unknown person
grouped from several faces (:mod:`facetrace.service.case_groups`), standing for its
members. A case of several unknown persons (a mass-casualty event) records one
identification per person, under the same rules each time; the first makes the case
"identified". A person identified already (any of its faces) takes no more reviews or
identifications, and one gallery subject identifies at most one person of a case.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from facetrace import fields
from facetrace.errors import Conflict, InvalidRequest, NotFound, RuleViolation
from facetrace.service import audit
from facetrace.service.accounts import Actor, Perm
from facetrace.service.cases import CaseStatus, require_open, rows_of_case, scoped_case, utcnow
from facetrace.store.service_models import (
    Case,
    Identification,
    ProbeFaceRow,
    Review,
    Search,
    SearchCandidate,
)

FaceRef = tuple[int, int]
"""A face of a case: (probe id, face index)."""


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

#: the same conclusions said of a search in the investigation mode, whose list always
#: has names: "no candidate" there means none of the listed people is the person
INVESTIGATION_CONCLUSION_LABELS: dict[Conclusion, str] = {
    Conclusion.POTENTIAL_CANDIDATE: "Potential candidate (one of the listed people)",
    Conclusion.NO_CANDIDATE: "No candidate: none of the listed people is the person",
    Conclusion.INCONCLUSIVE: "Inconclusive",
}


def conclusion_labels(mode: str) -> dict[Conclusion, str]:
    """The conclusions' labels for a search in ``mode`` (identification or investigation)."""
    return INVESTIGATION_CONCLUSION_LABELS if mode == "investigation" else CONCLUSION_LABELS


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
    """Record a reviewer's conclusion on a search. A potential candidate names which one.

    Each reviewer has one review per search: recording another conclusion makes a new
    version of it (the earlier versions are kept, not current); the same review sent
    again changes nothing. The person who ran the search may not review it."""
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
    done = _identifying(session, case, search)
    if done is not None:
        raise RuleViolation(f"this person is identified already ({_subject(done)})")
    candidate: SearchCandidate | None = None
    if value is Conclusion.POTENTIAL_CANDIDATE:
        if candidate_id is None:
            raise InvalidRequest("say which candidate: a potential candidate needs candidate_id")
        candidate = session.get(SearchCandidate, candidate_id)
        if candidate is None or candidate.search_id != search.id:
            raise InvalidRequest(f"candidate {candidate_id} is not in search {search.id}")
    previous = session.execute(
        select(Review)
        .where(
            Review.search_id == search.id,
            Review.reviewer_id == actor.id,
            Review.is_current.is_(True),
        )
        .with_for_update(of=Review)
    ).scalar_one_or_none()
    candidate_ref = candidate.id if candidate else None
    if previous is not None and (
        previous.conclusion,
        previous.candidate_id,
        previous.note,
    ) == (value.value, candidate_ref, note.strip()):
        return previous  # the same review again (a form sent twice): nothing changes
    review = Review(
        case_id=case.id,
        search_id=search.id,
        candidate_id=candidate_ref,
        reviewer_id=actor.id,
        conclusion=value.value,
        note=note.strip(),
        version=previous.version + 1 if previous is not None else 1,
        is_current=True,
    )
    if previous is not None:  # one review per reviewer and search: this one replaces it
        previous.is_current = False
        session.flush()
    session.add(review)
    try:
        session.flush()
    except IntegrityError as exc:  # the same reviewer's two reviews at one moment
        raise Conflict("your review of this search changed meanwhile: reload and retry") from exc
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
            "version": review.version,
        },
    )
    return review


def case_reviews(session: Session, *, case: Case, history: bool = False) -> list[Review]:
    """The reviews of a case in force (one per reviewer and search), oldest first; with
    ``history``, the earlier versions too."""
    rows = rows_of_case(session, Review, case)
    return rows if history else [r for r in rows if r.is_current]


def is_blind(actor: Actor, search: Search, of_search: Sequence[Review]) -> bool:
    """True when ``actor`` is to review ``search`` and has not yet: then the other
    reviewers' conclusions stay hidden, so the second review is made blind."""
    return (
        actor.can(Perm.REVIEW)
        and search.user_id != actor.id
        and not any(r.reviewer_id == actor.id for r in of_search)
    )


@dataclass(frozen=True)
class VisibleReviews:
    """The reviews of a case that ``actor`` may see now (current versions; ``history``
    maps a review's id to its earlier versions, oldest first), how many are hidden, and
    the searches whose reviews are hidden from the actor until they record their own."""

    shown: list[Review]
    history: dict[int, list[Review]]
    hidden: int
    blind_searches: frozenset[int]


def visible_reviews(session: Session, *, actor: Actor, case: Case) -> VisibleReviews:
    """The one place the blind rule is applied (pages and API alike): others' reviews of
    a search the actor is to review are hidden until the actor's own is recorded."""
    every = case_reviews(session, case=case, history=True)
    current = [r for r in every if r.is_current]
    blind = frozenset(
        s.id
        for s in rows_of_case(session, Search, case)
        if is_blind(actor, s, [r for r in current if r.search_id == s.id])
    )
    shown = [r for r in current if r.search_id not in blind]
    history: dict[int, list[Review]] = {}
    for r in shown:
        earlier = [
            o
            for o in every
            if o.search_id == r.search_id and o.reviewer_id == r.reviewer_id and not o.is_current
        ]
        if earlier:
            history[r.id] = sorted(earlier, key=lambda o: o.version)
    return VisibleReviews(
        shown=shown,
        history=history,
        hidden=sum(1 for r in current if r.search_id in blind),
        blind_searches=blind,
    )


def agreed_subjects(
    session: Session,
    *,
    case: Case,
    among: Sequence[Review] | None = None,
    person: frozenset[FaceRef] | None = None,
) -> dict[str, set[str]]:
    """Subject external id -> user names of the reviewers whose review in force of a
    search names that subject as a potential candidate. Two or more names mean
    agreement; the searcher never counts (they may not review their own search).
    ``among`` limits it to those reviews (what a blind reviewer may see); ``person``
    (faces, :func:`person_faces`) to reviews of searches of that person, so two
    reviewers agree on who *this* person is, not on two persons of one case."""
    agreed: dict[str, set[str]] = defaultdict(set)
    faces_of: dict[int, frozenset[FaceRef]] = {}
    for r in case_reviews(session, case=case) if among is None else among:
        if r.conclusion != Conclusion.POTENTIAL_CANDIDATE or r.candidate is None:
            continue
        if person is not None:
            if r.search_id not in faces_of:
                search = session.get(Search, r.search_id)
                assert search is not None  # a review's search is kept with its case
                faces_of[r.search_id] = person_faces(session, search.probe_id, search.face_index)
            if not faces_of[r.search_id] & person:
                continue
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
    done = _identifying(session, case, search)
    if done is not None:
        raise RuleViolation(f"this person is identified already ({_subject(done)})")
    twice = next(
        (
            i
            for i in identifications(session, case=case)
            if i.candidate.subject_external_id == candidate.subject_external_id
        ),
        None,
    )
    if twice is not None:
        raise RuleViolation(
            f"{_subject(twice)} identifies another person of this case already (probe "
            f"{twice.probe_id} face {twice.face_index + 1}); if both show one person, mark "
            "their faces as the same person on the unknown persons page and search them "
            "together"
        )
    person = person_faces(session, search.probe_id, search.face_index)
    reviewers = agreed_subjects(session, case=case, person=person).get(
        candidate.subject_external_id, set()
    )
    # the person recording the identification does not count as one of its two reviewers
    others = reviewers - {actor.username}
    if len(others) < 2:
        raise RuleViolation(
            "two different reviewers, other than the person recording the identification, "
            "must record this candidate as a potential candidate of this person first (so "
            "far: "
            f"{', '.join(sorted(reviewers)) or 'none'})"
        )
    ident = Identification(
        case_id=case.id,
        candidate_id=candidate.id,
        probe_id=search.probe_id,
        face_index=search.face_index,
        primary_identifier=kind.value,
        evidence=evidence.strip(),
        recorded_by=actor.id,
    )
    session.add(ident)
    if case.status != CaseStatus.IDENTIFIED:
        case.status = CaseStatus.IDENTIFIED.value
        case.identified_at = utcnow()
    try:
        session.flush()
    except IntegrityError as exc:  # the same person identified twice at one moment
        raise Conflict("this person was identified meanwhile: reload the case") from exc
    audit.append(
        session,
        actor=actor.username,
        action=audit.Action.IDENTIFICATION,
        target=f"case:{case.id}",
        detail={
            "subject": candidate.subject_external_id,
            "primary_identifier": kind.value,
            "reviewers": sorted(reviewers),
            "person": [search.probe_id, search.face_index],
            "search": search.id,
        },
    )
    return ident


def identifications(session: Session, *, case: Case) -> list[Identification]:
    """The case's identifications, one per identified person, oldest first."""
    return list(
        session.scalars(
            select(Identification)
            .where(Identification.case_id == case.id)
            .order_by(Identification.id)
        )
    )


def identification(session: Session, *, case: Case) -> Identification | None:
    """The case's first identification, if any (the one that made it identified)."""
    found = identifications(session, case=case)
    return found[0] if found else None


def person_faces(session: Session, probe_id: int, face_index: int) -> frozenset[FaceRef]:
    """The faces a searched face stands for: itself, and the members of an unknown
    person's template (origin ``person``)."""
    row = session.scalars(
        select(ProbeFaceRow).where(
            ProbeFaceRow.probe_id == probe_id, ProbeFaceRow.face_index == face_index
        )
    ).first()
    out = {(probe_id, face_index)}
    # only a grouped person's "person" is its members (a video person's is its number)
    if row is not None and row.origin == "person":
        out |= {(int(m["probe_id"]), int(m["face_index"])) for m in row.extra.get("person", [])}
    return frozenset(out)


@dataclass(frozen=True, slots=True)
class AgreedCandidate:
    """A candidate two reviewers agree on for one person of a case not identified yet:
    what an identification may be recorded from."""

    candidate: SearchCandidate
    search: Search
    reviewers: list[str]
    person: frozenset[FaceRef]


def identifiable_candidates(
    session: Session,
    *,
    case: Case,
    searches: Sequence[Search],
    shown: Sequence[Review],
    hidden: frozenset[int],
    identified: Sequence[Identification],
) -> list[AgreedCandidate]:
    """One entry per person not identified yet and subject two reviewers agree on for
    it, never a subject that already identifies a person of the case.

    Agreement as far as the actor may see it (``shown``; ``hidden``: searches whose
    reviews are hidden from them): a blind reviewer learns nothing of the conclusions
    on searches they have still to review."""
    done = [person_faces(session, i.probe_id, i.face_index) for i in identified]
    taken = {i.candidate.subject_external_id for i in identified}
    seen: set[tuple[frozenset[FaceRef], str]] = set()
    out: list[AgreedCandidate] = []
    for s in searches:
        if s.id in hidden:
            continue
        person = person_faces(session, s.probe_id, s.face_index)
        if any(person & faces for faces in done):
            continue
        agreed = agreed_subjects(session, case=case, among=shown, person=person)
        for c in s.candidates:
            names = agreed.get(c.subject_external_id, set())
            key = (person, c.subject_external_id)
            if len(names) < 2 or key in seen or c.subject_external_id in taken:
                continue
            seen.add(key)
            out.append(AgreedCandidate(c, s, sorted(names), person))
    return out


def _identifying(session: Session, case: Case, search: Search) -> Identification | None:
    """The identification of the person ``search`` searched (one sharing a face), if any."""
    mine = person_faces(session, search.probe_id, search.face_index)
    for ident in identifications(session, case=case):
        if mine & person_faces(session, ident.probe_id, ident.face_index):
            return ident
    return None


def _subject(ident: Identification) -> str:
    c = ident.candidate
    return c.subject_name or c.subject_external_id
