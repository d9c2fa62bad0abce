"""A case of several unknown persons (a mass-casualty event) identifies each person on
its own: one identification per person, under the rules of one (two reviewers other
than the recorder agree on the candidate of *this* person, a primary identifier), and a
person identified already takes no more reviews or identifications.

The engine is replaced by a fixed answer (every search returns the same two candidates,
so agreement across persons can be told apart from agreement on one); these tests are
about the rules. The real faces and templates are in tests/service/test_case_groups.py.
"""

from __future__ import annotations

import json
from datetime import date

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from facetrace.errors import RuleViolation
from facetrace.service import audit, cases, notifications, reviews, searches, timeline
from facetrace.service.accounts import Actor, Role
from facetrace.store.service_models import AuditEntry, Identification, Review, Search
from tests.fakes import fixed_faces, fixed_result
from tests.service.conftest import make_user
from tests.service.test_cases import _case


def _probe_search(factory: sessionmaker[Session], inv: Actor, case_id: int) -> tuple[int, int]:
    """A new probe photo of the case and a search of its face 0: (search id, probe id)."""
    with factory.begin() as s:
        probe = searches.add_probe(
            s,
            actor=inv,
            case_id=case_id,
            data=b"jpeg",
            filename="p.jpg",
            found=fixed_faces(),
        )
        search = searches.record_search(
            s,
            actor=inv,
            probe_id=probe.id,
            face=0,
            force=False,
            result=fixed_result(),
        )
        return search.id, probe.id


def _review(factory: sessionmaker[Session], who: Actor, search_id: int, rank: int) -> None:
    with factory.begin() as s:
        search = s.get(Search, search_id)
        assert search is not None
        reviews.record_review(
            s,
            actor=who,
            search_id=search_id,
            conclusion="potential_candidate",
            candidate_id=search.candidates[rank].id,
        )


def _identify(s: Session, who: Actor, search_id: int, rank: int) -> Identification:
    search = s.get(Search, search_id)
    assert search is not None
    return reviews.record_identification(
        s,
        actor=who,
        case_id=search.case_id,
        candidate_id=search.candidates[rank].id,
        primary_identifier="dna",
        evidence=f"DNA report for search {search_id}",
    )


def test_each_person_of_a_case_is_identified_on_its_own(
    sessions: sessionmaker[Session],
) -> None:
    inv = make_user(sessions, "inv", {Role.INVESTIGATOR})
    r1 = make_user(sessions, "rev1", {Role.REVIEWER})
    r2 = make_user(sessions, "rev2", {Role.REVIEWER})
    r3 = make_user(sessions, "rev3", {Role.REVIEWER})
    case_id = _case(sessions, inv)
    first, probe_1 = _probe_search(sessions, inv, case_id)  # person 1
    second, probe_2 = _probe_search(sessions, inv, case_id)  # person 2, another photo

    # Two reviewers naming one subject on two different persons do not agree on either.
    _review(sessions, r1, first, 0)
    _review(sessions, r2, second, 0)
    with sessions.begin() as s, pytest.raises(RuleViolation, match="of this person"):
        _identify(s, inv, first, 0)

    _review(sessions, r2, first, 0)
    with sessions.begin() as s:
        one = _identify(s, inv, first, 0)
        assert (one.probe_id, one.face_index) == (probe_1, 0)
        assert cases.get_case(s, actor=inv, case_id=case_id).status == "identified"
    # person 1 is done: no more reviews or identifications of it, however searched
    with sessions.begin() as s, pytest.raises(RuleViolation, match="identified already"):
        _identify(s, inv, first, 1)
    with sessions.begin() as s, pytest.raises(RuleViolation, match="identified already"):
        reviews.record_review(s, actor=r3, search_id=first, conclusion="no_candidate")
    with sessions.begin() as s:
        redo = searches.record_search(
            s,
            actor=inv,
            probe_id=probe_1,
            face=0,
            force=False,
            result=fixed_result(),
        ).id
    with sessions.begin() as s, pytest.raises(RuleViolation, match="identified already"):
        reviews.record_review(s, actor=r3, search_id=redo, conclusion="no_candidate")

    # Person 2 is still open to review in the identified case ...
    _review(sessions, r1, second, 0)
    # ... but one gallery subject identifies one person of a case at most
    with sessions.begin() as s, pytest.raises(RuleViolation, match="another person"):
        _identify(s, inv, second, 0)
    _review(sessions, r1, second, 1)
    _review(sessions, r2, second, 1)
    with sessions.begin() as s:
        two = _identify(s, inv, second, 1)
        assert (two.probe_id, two.face_index) == (probe_2, 0)

    with sessions.begin() as s:
        case = cases.get_case(s, actor=inv, case_id=case_id)
        found = reviews.identifications(s, case=case)
        assert [i.id for i in found] == [one.id, two.id]
        assert reviews.identification(s, case=case).id == one.id  # type: ignore[union-attr]
        subjects = [i.candidate.subject_external_id for i in found]
        assert len(set(subjects)) == 2
        entries = [
            json.loads(e.detail)
            for e in s.scalars(select(AuditEntry).where(AuditEntry.action == "identification"))
        ]
        assert [e["person"] for e in entries] == [[probe_1, 0], [probe_2, 0]]
        assert [e["subject"] for e in entries] == subjects
        events = [e for e in timeline.case_timeline(s, case=case) if e.kind == "identification"]
        assert len(events) == 2
        contact = notifications.add_contact(s, actor=inv, case_id=case_id, name="Kin")
        notifications.record_notification(
            s,
            actor=inv,
            case_id=case_id,
            channel="National bureau",
            notified_on=date.today(),
            outcome="informed",
            contact_id=contact.id,
        )
        record = notifications.notification_record(s, actor=inv, case_id=case_id)
        assert [i.id for i in record.identifications] == [one.id, two.id]
        assert {r.reviewer.username for r in record.reviews} == {"rev1", "rev2"}
        assert audit.verify(s).ok
        # refused actions stored nothing
        assert s.query(Identification).count() == 2
        assert not s.scalars(select(Review).where(Review.reviewer_id == r3.id)).first()
