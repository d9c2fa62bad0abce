"""Review integrity (issue 11 item 13): the person who ran a search is not its reviewer,
whoever records an identification is not one of the two reviewers it needs, one review
per reviewer per search (a change is a new version, reports count the reviewer once),
and the second review is blind until recorded."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session, sessionmaker

from facetrace.errors import RuleViolation
from facetrace.service import reports, reviews
from facetrace.service.accounts import Role
from facetrace.store.service_models import Case, Identification, Review, User
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


def _review(
    sessions: sessionmaker[Session], who: User, search_id: int, conclusion: str, **kw: object
) -> Review:
    with sessions.begin() as s:
        return reviews.record_review(
            s,
            actor=who,
            search_id=search_id,
            conclusion=conclusion,
            **kw,  # type: ignore[arg-type]
        )


def test_one_review_per_reviewer_a_change_is_a_new_version(
    sessions: sessionmaker[Session],
) -> None:
    inv = make_user(sessions, "inv", {Role.INVESTIGATOR})
    rev = make_user(sessions, "rev", {Role.REVIEWER})
    sup = make_user(sessions, "sup", {Role.SUPERVISOR})
    case_id = _case(sessions, inv)
    search_id, (first, _) = _search(sessions, inv, case_id)
    one = _review(sessions, rev, search_id, "inconclusive", note="poor light")
    again = _review(sessions, rev, search_id, "inconclusive", note="poor light")
    assert again.id == one.id, "the same review sent twice changes nothing"
    two = _review(sessions, rev, search_id, "potential_candidate", candidate_id=first)
    assert (one.version, two.version) == (1, 2)
    with sessions.begin() as s:
        rows = s.query(Review).order_by(Review.id).all()
        assert [(r.version, r.is_current) for r in rows] == [(1, False), (2, True)]
        case = s.get(Case, case_id)
        assert case is not None
        assert [r.id for r in reviews.case_reviews(s, case=case)] == [two.id]
        visible = reviews.visible_reviews(s, actor=sup, case=case)
        assert [o.id for o in visible.history[two.id]] == [one.id], "the history is kept"
        report = reports.report(s, actor=sup)
    # the reviewer is counted once, with the conclusion in force
    assert report.outcomes == [("potential_candidate", 1)]


def test_repeated_reviews_by_one_reviewer_are_not_two_reviewers(
    sessions: sessionmaker[Session],
) -> None:
    inv = make_user(sessions, "inv", {Role.INVESTIGATOR})
    r1 = make_user(sessions, "rev1", {Role.REVIEWER})
    ident = make_user(sessions, "ident", {Role.INVESTIGATOR})
    case_id = _case(sessions, inv)
    search_id, (first, _) = _search(sessions, inv, case_id)
    _agree(sessions, r1, search_id, first)
    _review(sessions, r1, search_id, "potential_candidate", candidate_id=first, note="sure")
    with sessions.begin() as s, pytest.raises(RuleViolation, match="two different reviewers"):
        _identify(s, ident, case_id, first)


def test_the_second_review_is_blind_until_recorded(sessions: sessionmaker[Session]) -> None:
    inv = make_user(sessions, "inv", {Role.INVESTIGATOR})
    r1 = make_user(sessions, "rev1", {Role.REVIEWER})
    r2 = make_user(sessions, "rev2", {Role.REVIEWER})
    case_id = _case(sessions, inv)
    search_id, (first, _) = _search(sessions, inv, case_id)
    _agree(sessions, r1, search_id, first)
    with sessions.begin() as s:
        case = s.get(Case, case_id)
        assert case is not None
        before = reviews.visible_reviews(s, actor=r2, case=case)
        assert before.shown == [] and before.hidden == 1
        assert before.blind_searches == {search_id}
        # nor does an agreement tell a blind reviewer what the others concluded
        assert reviews.agreed_subjects(s, case=case, among=before.shown) == {}
        # the searcher (not a reviewer of it) and the first reviewer see it
        assert len(reviews.visible_reviews(s, actor=inv, case=case).shown) == 1
        assert len(reviews.visible_reviews(s, actor=r1, case=case).shown) == 1
    _review(sessions, r2, search_id, "no_candidate")
    with sessions.begin() as s:
        case = s.get(Case, case_id)
        assert case is not None
        after = reviews.visible_reviews(s, actor=r2, case=case)
        assert after.hidden == 0 and {r.reviewer_id for r in after.shown} == {r1.id, r2.id}
