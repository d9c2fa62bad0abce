"""Case work: assignment, the review queue, closing with an outcome (and what a closed
case refuses), reopening, notes and the timeline. Refused actions change nothing."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session, sessionmaker

from facetrace.errors import InvalidRequest, PermissionDenied, RuleViolation
from facetrace.service import cases, queue, reviews, searches, timeline
from facetrace.service.accounts import Role
from facetrace.store.service_models import Case, Search
from tests.fakes import fixed_result
from tests.service.conftest import make_user
from tests.service.test_cases import _case, _search


def test_queue_assignment_close_and_reopen(sessions: sessionmaker[Session]) -> None:
    inv = make_user(sessions, "inv", {Role.INVESTIGATOR, Role.REVIEWER})
    rev = make_user(sessions, "rev", {Role.REVIEWER})
    sup = make_user(sessions, "sup", {Role.SUPERVISOR})
    other = make_user(sessions, "far", {Role.REVIEWER}, department="Dept B")
    first = _case(sessions, inv, "Q-1")
    second = _case(sessions, inv, "Q-2")
    s1, _ = _search(sessions, inv, first)
    s2, _ = _search(sessions, inv, second)

    with sessions.begin() as s:
        # the searcher's own searches are not in their queue; another department's neither
        assert queue.review_queue(s, actor=inv) == []
        assert queue.review_queue(s, actor=other) == []
        assert [i.search.id for i in queue.review_queue(s, actor=rev)] == [s1, s2]
        with pytest.raises(PermissionDenied):
            cases.assign_case(s, actor=inv, case_id=second, username="rev")
        with pytest.raises(InvalidRequest, match="not an active investigator or reviewer"):
            cases.assign_case(s, actor=sup, case_id=second, username="far")
        cases.assign_case(s, actor=sup, case_id=second, username="rev")
    with sessions.begin() as s:
        items = queue.review_queue(s, actor=rev)
        assert [(i.search.id, i.assigned_to_me) for i in items] == [(s2, True), (s1, False)]
        reviews.record_review(s, actor=rev, search_id=s2, conclusion="inconclusive")
    with sessions.begin() as s:
        assert [i.search.id for i in queue.review_queue(s, actor=rev)] == [s1]

    with sessions.begin() as s:
        for outcome, reason, error in [
            ("identified", "x", RuleViolation),  # no identification recorded
            ("closed_by_supervisor", "x", RuleViolation),  # not a supervisor
            ("solved", "x", InvalidRequest),
            ("no_result", "  ", InvalidRequest),
        ]:
            with pytest.raises(error):
                cases.close_case(s, actor=inv, case_id=second, outcome=outcome, reason=reason)
    with sessions.begin() as s:
        assert s.get(Case, second).status == "open"  # refusals changed nothing
        cases.close_case(s, actor=inv, case_id=second, outcome="found_alive", reason="Came home")
    with sessions.begin() as s:
        assert [c.number for c in cases.list_cases(s, actor=inv, closed=True)] == ["Q-2"]
        assert [c.number for c in cases.list_cases(s, actor=inv, closed=False)] == ["Q-1"]
        with pytest.raises(RuleViolation, match="closed"):
            reviews.record_review(s, actor=rev, search_id=s2, conclusion="inconclusive")
        with pytest.raises(RuleViolation, match="closed"):
            searches.record_search(
                s,
                actor=inv,
                probe_id=s.get(Search, s2).probe_id,
                face=0,
                force=False,
                result=fixed_result(),
            )
        with pytest.raises(PermissionDenied):
            cases.reopen_case(s, actor=inv, case_id=second, reason="why")
        cases.add_note(s, actor=inv, case_id=second, text="Closed cases still take notes.")
        cases.reopen_case(s, actor=sup, case_id=second, reason="Left again")
    with sessions.begin() as s:
        case = s.get(Case, second)
        assert case.status == "open" and case.outcome is None
        kinds = [e.kind for e in timeline.case_timeline(s, case=case)]
        assert kinds == [
            "opened", "probe", "search", "assigned", "review", "closed", "note", "reopened",
        ]  # fmt: skip
        blind = timeline.case_timeline(s, case=case, blind_searches={s2})
        review = next(e for e in blind if e.kind == "review")
        assert "Inconclusive" not in review.text and "shown once you record yours" in review.text
