"""The hash chain: appends link up, and editing, inserting or deleting a row is found."""

from __future__ import annotations

import itertools

from sqlalchemy import delete, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from facetrace.service import audit
from facetrace.store.service_models import AuditEntry, AuditHead


def _fill(factory: sessionmaker[Session], n: int) -> None:
    for i in range(n):
        with factory.begin() as s:
            audit.append(
                s,
                actor="alice",
                action=audit.Action.SEARCH,
                target=f"case:{i}",
                detail={"i": i, "note": "ünïcode"},
            )


def _verify(factory: sessionmaker[Session]) -> audit.VerifyReport:
    with factory.begin() as s:
        return audit.verify(s)


def test_chain_links_and_verifies(sessions: sessionmaker[Session]) -> None:
    _fill(sessions, 5)
    report = _verify(sessions)
    assert report.ok and report.entries == 5
    with sessions.begin() as s:
        rows = s.execute(select(AuditEntry).order_by(AuditEntry.seq)).scalars().all()
        assert [r.seq for r in rows] == [1, 2, 3, 4, 5]
        assert rows[0].prev_hash == audit.GENESIS
        assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(rows))
        assert report.head_hash == rows[-1].hash


def test_rolled_back_action_leaves_no_entry(sessions: sessionmaker[Session]) -> None:
    _fill(sessions, 2)
    try:
        with sessions.begin() as s:
            audit.append(s, actor="bob", action=audit.Action.DELETE)
            raise RuntimeError("the action failed")
    except RuntimeError:
        pass
    _fill(sessions, 1)
    assert _verify(sessions).ok and _verify(sessions).entries == 3


def test_edited_row_is_detected(sessions: sessionmaker[Session]) -> None:
    _fill(sessions, 5)
    with sessions.begin() as s:
        s.execute(update(AuditEntry).where(AuditEntry.seq == 3).values(actor="mallory"))
    problem = _verify(sessions).problem
    assert problem is not None and (problem.kind, problem.seq) == ("altered", 3)


def test_edited_and_rehashed_row_is_detected(sessions: sessionmaker[Session]) -> None:
    _fill(sessions, 5)
    with sessions.begin() as s:
        row = s.execute(select(AuditEntry).where(AuditEntry.seq == 2)).scalar_one()
        row.target = "case:999"
        row.hash = audit.entry_hash(
            seq=row.seq,
            at=row.at,
            actor=row.actor,
            action=row.action,
            target=row.target,
            detail=row.detail,
            prev_hash=row.prev_hash,
        )
    problem = _verify(sessions).problem
    assert problem is not None and (problem.kind, problem.seq) == ("altered", 2)


def test_deleted_row_is_detected(sessions: sessionmaker[Session]) -> None:
    _fill(sessions, 5)
    with sessions.begin() as s:
        s.execute(delete(AuditEntry).where(AuditEntry.seq == 3))
    problem = _verify(sessions).problem
    assert problem is not None and (problem.kind, problem.seq) == ("deleted", 4)


def test_deleted_tail_is_detected(sessions: sessionmaker[Session]) -> None:
    _fill(sessions, 4)
    with sessions.begin() as s:
        s.execute(delete(AuditEntry).where(AuditEntry.seq == 4))
    problem = _verify(sessions).problem
    assert problem is not None and (problem.kind, problem.seq) == ("deleted", 4)


def test_inserted_row_is_detected(sessions: sessionmaker[Session]) -> None:
    _fill(sessions, 4)
    with sessions.begin() as s:
        # Make room after entry 2 and forge a well-formed entry chained to it.
        rows = s.execute(select(AuditEntry).order_by(AuditEntry.seq.desc())).scalars().all()
        for r in rows:
            if r.seq > 2:
                r.seq += 100
                s.flush()
        for r in rows:
            if r.seq > 100:
                r.seq -= 99
                s.flush()
        two = s.execute(select(AuditEntry).where(AuditEntry.seq == 2)).scalar_one()
        fields = dict(
            seq=3,
            at=two.at,
            actor="mallory",
            action="search",
            target="case:x",
            detail="{}",
            prev_hash=two.hash,
        )
        s.add(AuditEntry(**fields, hash=audit.entry_hash(**fields)))  # type: ignore[arg-type]
    problem = _verify(sessions).problem
    assert problem is not None and problem.kind == "inserted" and problem.seq == 3


def test_appended_row_outside_the_code_is_detected(sessions: sessionmaker[Session]) -> None:
    _fill(sessions, 2)
    with sessions.begin() as s:
        last = s.execute(select(AuditEntry).where(AuditEntry.seq == 2)).scalar_one()
        fields = dict(
            seq=3,
            at=last.at,
            actor="mallory",
            action="search",
            target="",
            detail="{}",
            prev_hash=last.hash,
        )
        s.add(AuditEntry(**fields, hash=audit.entry_hash(**fields)))  # type: ignore[arg-type]
    problem = _verify(sessions).problem
    assert problem is not None and (problem.kind, problem.seq) == ("inserted", 3)


def test_head_is_seeded_by_the_migration(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        head = s.get(AuditHead, 1)
        assert head is not None and head.seq == 0 and head.hash == audit.GENESIS
        assert s.execute(text("select count(*) from audit_entry")).scalar_one() == 0


def test_concurrent_appends_keep_one_chain(sessions: sessionmaker[Session]) -> None:
    import threading

    errors: list[BaseException] = []

    def work(who: str) -> None:
        try:
            for i in range(8):
                with sessions.begin() as s:
                    s.execute(select(AuditHead.seq)).all()  # read first, then append
                    audit.append(s, actor=who, action=audit.Action.VIEW_RESULTS, target=str(i))
        except BaseException as exc:  # collected and re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(f"user{n}",)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    report = _verify(sessions)
    assert report.ok and report.entries == 32
