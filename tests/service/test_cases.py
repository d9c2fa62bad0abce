"""Case rules: searches need a case; identification needs two reviewers and a primary
identifier; notifications only for identified cases; retention purges probe photos.

The engine is replaced by a fixed answer here (its own tests use real faces; the API
and browser tests run the real engine); these tests are about the rules.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from facetrace.errors import InvalidRequest, NotFound, PermissionDenied, RuleViolation
from facetrace.service import audit, cases, notifications, reports, reviews, searches
from facetrace.service.accounts import Actor, Role
from facetrace.store.service_models import Probe
from tests.fakes import fixed_faces, fixed_result
from tests.service.conftest import make_user


def _case(factory: sessionmaker[Session], inv: Actor, number: str = "C-1") -> int:
    with factory.begin() as s:
        return cases.create_case(
            s,
            actor=inv,
            number=number,
            purpose="identify_deceased",
            legal_basis="Art. 6",
            retention_days=30,
        ).id


def _search(factory: sessionmaker[Session], inv: Actor, case_id: int) -> tuple[int, list[int]]:
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
        return search.id, [c.id for c in search.candidates]


def test_case_needs_number_purpose_and_legal_basis(sessions: sessionmaker[Session]) -> None:
    inv = make_user(sessions, "inv", {Role.INVESTIGATOR})
    with sessions.begin() as s:
        for number, purpose, basis in [
            ("", "trace_missing", "x"),
            ("C", "curiosity", "x"),
            ("C", "trace_missing", " "),
        ]:
            with pytest.raises(InvalidRequest):
                cases.create_case(
                    s,
                    actor=inv,
                    number=number,
                    purpose=purpose,
                    legal_basis=basis,
                    retention_days=1,
                )


def test_identification_needs_two_reviewers_and_primary_identifier(
    sessions: sessionmaker[Session],
) -> None:
    inv = make_user(sessions, "inv", {Role.INVESTIGATOR})
    r1 = make_user(sessions, "rev1", {Role.REVIEWER})
    r2 = make_user(sessions, "rev2", {Role.REVIEWER})
    case_id = _case(sessions, inv)
    search_id, (first, second) = _search(sessions, inv, case_id)

    with sessions.begin() as s:
        reviews.record_review(
            s,
            actor=r1,
            search_id=search_id,
            conclusion="potential_candidate",
            candidate_id=first,
            note="same ear shape",
        )
        assert cases.get_case(s, actor=inv, case_id=case_id).status == "lead"
    with sessions.begin() as s, pytest.raises(RuleViolation, match="two different reviewers"):
        reviews.record_identification(
            s,
            actor=inv,
            case_id=case_id,
            candidate_id=first,
            primary_identifier="dna",
            evidence="lab report 7",
        )
    # The same reviewer again does not count twice; another reviewer on another one neither.
    with sessions.begin() as s:
        reviews.record_review(
            s, actor=r1, search_id=search_id, conclusion="potential_candidate", candidate_id=first
        )
        reviews.record_review(
            s, actor=r2, search_id=search_id, conclusion="potential_candidate", candidate_id=second
        )
    with sessions.begin() as s, pytest.raises(RuleViolation):
        reviews.record_identification(
            s,
            actor=inv,
            case_id=case_id,
            candidate_id=first,
            primary_identifier="dna",
            evidence="lab report 7",
        )
    with sessions.begin() as s:
        reviews.record_review(
            s,
            actor=r2,
            search_id=search_id,
            conclusion="potential_candidate",
            candidate_id=first,
            note="agree",
        )
    with sessions.begin() as s, pytest.raises(InvalidRequest):
        reviews.record_identification(
            s,
            actor=inv,
            case_id=case_id,
            candidate_id=first,
            primary_identifier="face",
            evidence="looks alike",
        )
    with sessions.begin() as s:
        reviews.record_identification(
            s,
            actor=inv,
            case_id=case_id,
            candidate_id=first,
            primary_identifier="dna",
            evidence="lab report 7",
        )
        assert cases.get_case(s, actor=inv, case_id=case_id).status == "identified"

    with sessions.begin() as s:
        contact = notifications.add_contact(
            s, actor=inv, case_id=case_id, name="Next Of Kin", relationship="sister"
        )
        notifications.record_notification(
            s,
            actor=inv,
            case_id=case_id,
            channel="National bureau",
            notified_on=date.today(),
            outcome="informed in person",
            contact_id=contact.id,
        )
        record = notifications.notification_record(s, actor=inv, case_id=case_id)
        assert {r.reviewer.username for r in record.reviews} == {"rev1", "rev2"}
        assert len(record.notifications) == 1
        assert audit.verify(s).ok


def test_notifications_refused_before_identification(sessions: sessionmaker[Session]) -> None:
    inv = make_user(sessions, "inv", {Role.INVESTIGATOR})
    case_id = _case(sessions, inv)
    with sessions.begin() as s, pytest.raises(RuleViolation):
        notifications.add_contact(s, actor=inv, case_id=case_id, name="X")


def test_departments_and_roles_scope_cases(sessions: sessionmaker[Session]) -> None:
    inv = make_user(sessions, "inv", {Role.INVESTIGATOR})
    other = make_user(sessions, "other", {Role.INVESTIGATOR}, department="Dept B")
    sup = make_user(sessions, "sup", {Role.SUPERVISOR})
    case_id = _case(sessions, inv)
    with sessions.begin() as s:
        with pytest.raises(NotFound):
            cases.get_case(s, actor=other, case_id=case_id)
        # a supervisor reads the department's cases (to assign and close them) but
        # neither searches nor sees candidate lists
        assert cases.get_case(s, actor=sup, case_id=case_id).id == case_id
        with pytest.raises(PermissionDenied):
            searches.add_probe(
                s, actor=sup, case_id=case_id, data=b"x", filename="p.jpg", found=(1, 1, [])
            )
        assert cases.list_cases(s, actor=other) == []


def test_retention_purge_deletes_probe_photos(sessions: sessionmaker[Session]) -> None:
    inv = make_user(sessions, "inv", {Role.INVESTIGATOR})
    sup = make_user(sessions, "sup", {Role.SUPERVISOR})
    case_id = _case(sessions, inv)
    _search(sessions, inv, case_id)
    with sessions.begin() as s:
        assert cases.purge_due(s) == 0
    with sessions.begin() as s:
        assert cases.purge_due(s, now=datetime.now(UTC) + timedelta(days=31)) == 1
    with sessions.begin() as s:
        probe = s.query(Probe).one()
        assert probe.data is None and probe.purged_at is not None
        rep = reports.report(s, actor=sup)
        assert rep.searches_by_user == [("inv", 1)]
        assert rep.searches_by_purpose == [("identify_deceased", 1)]
