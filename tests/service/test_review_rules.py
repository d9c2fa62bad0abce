"""Review integrity (issue 11 item 13): the person who ran a search is not its reviewer,
and whoever records an identification is not one of the two reviewers it needs."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session, sessionmaker

from facetrace.errors import RuleViolation
from facetrace.service import reviews
from facetrace.service.accounts import Role
from facetrace.store.service_models import Identification, Review, User
from tests.service.conftest import make_user
from tests.service.test_cases import _case, _search


def _agree(sessions: sessionmaker[Session], who: User, search_id: int, candidate: int) -> None:
    """``who`` reviews the search: the candidate is a potential match."""
    with sessions.begin() as s:
        reviews.record_review(
            s,
            actor=who,
            search_id=search_id,
            conclusion="potential_candidate",
            candidate_id=candidate,
        )


def _identify(s: Session, who: User, case_id: int, candidate: int) -> Identification:
    return reviews.record_identification(
        s,
        actor=who,
        case_id=case_id,
        candidate_id=candidate,
        primary_identifier="dna",
        evidence="lab report 7",
    )


def test_the_searcher_cannot_review_their_own_search(sessions: sessionmaker[Session]) -> None:
    both = make_user(sessions, "inv-rev", {Role.INVESTIGATOR, Role.REVIEWER})
    case_id = _case(sessions, both)
    search_id, (first, _) = _search(sessions, both, case_id)
    with sessions.begin() as s, pytest.raises(RuleViolation, match="you ran this search"):
        reviews.record_review(
            s, actor=both, search_id=search_id, conclusion="potential_candidate", candidate_id=first
        )
    with sessions.begin() as s:
        assert s.query(Review).count() == 0, "a refused review stores nothing"


def test_the_recorder_is_not_one_of_the_two_reviewers(sessions: sessionmaker[Session]) -> None:
    inv = make_user(sessions, "inv", {Role.INVESTIGATOR})
    r1 = make_user(sessions, "rev1", {Role.REVIEWER})
    # a reviewer who may also record identifications
    r2 = make_user(sessions, "rev2", {Role.REVIEWER, Role.INVESTIGATOR})
    r3 = make_user(sessions, "rev3", {Role.REVIEWER})
    case_id = _case(sessions, inv)
    search_id, (first, _) = _search(sessions, inv, case_id)
    for who in (r1, r2):
        _agree(sessions, who, search_id, first)
    with sessions.begin() as s, pytest.raises(RuleViolation, match="other than the person"):
        _identify(s, r2, case_id, first)
    _agree(sessions, r3, search_id, first)
    with sessions.begin() as s:
        assert _identify(s, r2, case_id, first).recorded_by == r2.id
