"""The keyed hash chain: appends link up, and editing, inserting or deleting a row, the
head, or the whole log is found, and so is a chain re-hashed without the key."""

from __future__ import annotations

import functools
import itertools
import stat
from collections.abc import Callable
from datetime import UTC, timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from facetrace.errors import AuditKeyError
from facetrace.service import audit, audit_key
from facetrace.service.audit_key import key_id
from facetrace.store.service_models import AuditCover, AuditEntry, AuditHead
from tests.dbutil import TEST_AUDIT_KEY, database_url, open_database


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


# --- the keyed chain (issue 11 items 10 and 12) ---------------------------------------


def _rehash_from(s: Session, first: int, mac: Callable[..., str]) -> None:
    """Recompute every hash from entry ``first`` on with ``mac`` and relink the chain and
    the head, as someone with write access but not the key would."""
    rows = s.execute(select(AuditEntry).order_by(AuditEntry.seq)).scalars().all()
    prev = audit.GENESIS
    for r in rows:
        if r.seq >= first:
            r.prev_hash = prev
            r.hash = mac(
                seq=r.seq,
                at=r.at,
                actor=r.actor,
                action=r.action,
                target=r.target,
                detail=r.detail,
                prev_hash=r.prev_hash,
            )
        prev = r.hash
    s.flush()
    head = s.get(AuditHead, 1)
    assert head is not None
    head.hash = prev


def test_entries_are_keyed_and_the_head_signed(sessions: sessionmaker[Session]) -> None:
    _fill(sessions, 3)
    with sessions.begin() as s:
        rows = s.execute(select(AuditEntry).order_by(AuditEntry.seq)).scalars().all()
        head = s.get(AuditHead, 1)
        assert head is not None and head.keyed_from == 1
        assert head.key_id == key_id(TEST_AUDIT_KEY) and head.mac
        for r in rows:  # an HMAC under the key, not the plain hash anyone can compute
            fields = dict(
                seq=r.seq, at=r.at, actor=r.actor, action=r.action, target=r.target,
                detail=r.detail, prev_hash=r.prev_hash,
            )  # fmt: skip
            assert r.hash == audit.entry_mac(TEST_AUDIT_KEY, **fields)  # type: ignore[arg-type]
            assert r.hash != audit.entry_hash(**fields)  # type: ignore[arg-type]
    report = _verify(sessions)
    assert report.ok and report.keyed_from == 1


def test_tail_and_head_deleted_is_detected(sessions: sessionmaker[Session]) -> None:
    _fill(sessions, 5)
    with sessions.begin() as s:
        s.execute(delete(AuditEntry).where(AuditEntry.seq >= 4))
        s.execute(delete(AuditHead))
    report = _verify(sessions)
    assert report.problem is not None and report.problem.kind == "deleted"
    assert "head" in report.problem.message and report.entries == 3


def test_emptied_log_without_head_is_detected(sessions: sessionmaker[Session]) -> None:
    _fill(sessions, 3)
    with sessions.begin() as s:
        s.execute(delete(AuditEntry))
        s.execute(delete(AuditHead))
    report = _verify(sessions)
    assert report.problem is not None and report.problem.kind == "deleted"
    assert report.entries == 0


def test_emptied_log_with_a_fresh_unsigned_head_is_detected(
    sessions: sessionmaker[Session],
) -> None:
    _fill(sessions, 3)
    with sessions.begin() as s:  # as the migration seeds it: looks like a new database
        s.execute(delete(AuditEntry))
        s.execute(update(AuditHead).values(seq=0, hash=audit.GENESIS, keyed_from=None, mac=""))
    problem = _verify(sessions).problem
    assert problem is not None and problem.kind == "unkeyed"


def test_appended_unchained_row_is_inserted_not_altered(sessions: sessionmaker[Session]) -> None:
    _fill(sessions, 3)
    with sessions.begin() as s:
        s.add(
            AuditEntry(
                seq=4,
                at="2026-01-01T00:00:00.000000+00:00",
                actor="mallory",
                action="search",
                target="",
                detail="{}",
                prev_hash="f" * 64,
                hash="e" * 64,
            )
        )
    problem = _verify(sessions).problem
    assert problem is not None and (problem.kind, problem.seq) == ("inserted", 4)


def test_chain_rehashed_without_the_key_is_detected(sessions: sessionmaker[Session]) -> None:
    _fill(sessions, 5)
    with sessions.begin() as s:
        s.execute(update(AuditEntry).where(AuditEntry.seq == 2).values(actor="mallory"))
        _rehash_from(s, 2, audit.entry_hash)  # the unkeyed scheme, chain and head relinked
    problem = _verify(sessions).problem
    assert problem is not None and (problem.kind, problem.seq) == ("altered", 2)


def test_chain_and_head_resigned_with_another_key_are_detected(
    sessions: sessionmaker[Session],
) -> None:
    guess = b"g" * 32
    _fill(sessions, 4)
    with sessions.begin() as s:
        s.execute(update(AuditEntry).where(AuditEntry.seq == 3).values(target="case:0"))
        _rehash_from(s, 1, functools.partial(audit.entry_mac, guess))
        head = s.get(AuditHead, 1)
        assert head is not None and head.keyed_from is not None
        head.mac = audit.head_mac(guess, seq=head.seq, hash=head.hash, keyed_from=1)
    problem = _verify(sessions).problem
    assert problem is not None and (problem.kind, problem.seq) == ("altered", 1)


def test_head_rewritten_without_the_key_is_detected(sessions: sessionmaker[Session]) -> None:
    """Deleting the tail and moving the head back to the new last entry needs the key."""
    _fill(sessions, 5)
    with sessions.begin() as s:
        four = s.execute(select(AuditEntry).where(AuditEntry.seq == 4)).scalar_one()
        s.execute(delete(AuditEntry).where(AuditEntry.seq == 5))
        s.execute(update(AuditHead).values(seq=4, hash=four.hash))
    problem = _verify(sessions).problem
    assert problem is not None and problem.kind == "altered" and "head" in problem.message


def test_a_session_without_the_key_writes_nothing(sessions: sessionmaker[Session]) -> None:
    engine = sessions.kw["bind"]
    with Session(engine) as s, pytest.raises(AuditKeyError, match="no audit key"):
        audit.append(s, actor="alice", action=audit.Action.SEARCH)


def test_another_key_is_refused_at_start(sessions: sessionmaker[Session]) -> None:
    _fill(sessions, 1)
    url = sessions.kw["bind"].url.render_as_string(hide_password=False)
    with pytest.raises(AuditKeyError, match="signed with key"):
        open_database(url, key=b"k" * 32)
    with sessions.begin() as s:
        report = audit.verify(s, key=b"k" * 32)
    assert report.problem is not None and report.problem.kind == "wrong_key"
    assert "not with this key" in report.problem.message


@pytest.mark.parametrize("kind", ["sqlite", "pg"])
def test_an_unkeyed_log_is_sealed_and_then_protected(kind: str, tmp_path: Path) -> None:
    """A log written before keyed chains (migration 0009, plain SHA-256 entries) is kept:
    the first start with a key appends a keyed seal chained to it, and from then on the
    old entries cannot be rewritten either."""
    from alembic import command

    from facetrace.store.db import alembic_config, make_engine

    with database_url(kind, tmp_path) as url:
        engine = make_engine(url)
        cfg = alembic_config(engine.url.render_as_string(hide_password=False))
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0009")
        prev = audit.GENESIS
        with engine.begin() as conn:
            for seq in (1, 2, 3):
                fields = dict(
                    seq=seq, at=f"2026-01-0{seq}T00:00:00.000000+00:00", actor="old",
                    action="search", target=f"case:{seq}", detail="{}", prev_hash=prev,
                )  # fmt: skip
                digest = audit.entry_hash(**fields)  # type: ignore[arg-type]
                conn.execute(
                    text(
                        "INSERT INTO audit_entry (seq, at, actor, action, target, detail, "
                        "prev_hash, hash) VALUES (:seq, :at, :actor, :action, :target, "
                        ":detail, :prev_hash, :hash)"
                    ),
                    {**fields, "hash": digest},
                )
                prev = digest
            conn.execute(text("UPDATE audit_head SET seq = 3, hash = :h"), {"h": prev})
        engine.dispose()
        database = open_database(url)
        try:
            with database.sessions.begin() as s:
                report = audit.verify(s)
                assert report.ok and report.entries == 4 and report.keyed_from == 4
                seal = s.execute(select(AuditEntry).where(AuditEntry.seq == 4)).scalar_one()
                assert seal.action == "audit_keyed" and seal.prev_hash == prev
            _fill(database.sessions, 1)
            assert _verify(database.sessions).ok
            with database.sessions.begin() as s:  # rewrite an old entry, re-hash the old part
                s.execute(update(AuditEntry).where(AuditEntry.seq == 2).values(actor="mallory"))
                rows = s.execute(select(AuditEntry).order_by(AuditEntry.seq)).scalars().all()
                p = audit.GENESIS
                for r in rows[:3]:
                    r.prev_hash = p
                    r.hash = audit.entry_hash(
                        seq=r.seq, at=r.at, actor=r.actor, action=r.action, target=r.target,
                        detail=r.detail, prev_hash=r.prev_hash,
                    )  # fmt: skip
                    p = r.hash
            problem = _verify(database.sessions).problem
            assert problem is not None and problem.kind == "altered" and problem.seq == 3
        finally:
            database.dispose()


def test_key_file_is_created_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "audit.key"
    key = audit_key.load_key(path)
    assert len(key) == 32 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert audit_key.load_key(path) == key


def test_unusable_key_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(AuditKeyError, match="no audit key file"):
        audit_key.load_key(tmp_path / "missing", create=False)
    short = tmp_path / "short"
    short.write_text("abcd")
    with pytest.raises(AuditKeyError, match="does not hold a key"):
        audit_key.load_key(short)
    unreadable = tmp_path / "a-directory"  # unreadable as a file, even for root
    unreadable.mkdir()
    with pytest.raises(AuditKeyError, match="cannot read the audit key file"):
        audit_key.load_key(unreadable)


def _view(factory: sessionmaker[Session], actor: str, **detail: object) -> None:
    with factory.begin() as s:
        audit.append(s, actor=actor, action=audit.Action.VIEW_RESULTS, target="search:1",
                     detail=detail)  # fmt: skip


def test_a_pages_entry_covers_its_images_however_busy_the_log(
    sessions: sessionmaker[Session],
) -> None:
    _view(sessions, "ines", case=1, probes=[7], photos=[3, 5])
    _fill(sessions, 600)  # others' entries since (the cover looked at the newest 500 only)
    with sessions.begin() as s:
        assert audit.covered(s, actor="ines", photo=5)
        assert audit.covered(s, actor="ines", probe=7)
        assert not audit.covered(s, actor="ines", photo=7)  # a probe id is not a photo's
        assert not audit.covered(s, actor="ines", probe=3)
        assert not audit.covered(s, actor="olga", photo=5)  # another user's view
        assert not audit.covered(s, actor="ines")


def test_a_cover_row_added_by_hand_hides_no_view(sessions: sessionmaker[Session]) -> None:
    """audit_cover is outside the chain: a row there must not stand in for an entry."""
    from sqlalchemy import insert

    _view(sessions, "ines", photos=[3])
    with sessions.begin() as s:
        genuine = s.execute(select(AuditCover)).scalar_one()
        at, seq = genuine.at, genuine.seq
        # a row naming the genuine entry for a photo it does not list
        s.execute(insert(AuditCover).values(actor="ines", kind="photo", ref_id=9, seq=seq, at=at))
        # a row naming an entry that does not exist
        s.execute(
            insert(AuditCover).values(actor="ines", kind="photo", ref_id=8, seq=seq + 99, at=at)
        )
        # a row for another user, naming ines's entry
        s.execute(insert(AuditCover).values(actor="olga", kind="photo", ref_id=3, seq=seq, at=at))
    with sessions.begin() as s:
        assert audit.covered(s, actor="ines", photo=3)
        assert not audit.covered(s, actor="ines", photo=9)
        assert not audit.covered(s, actor="ines", photo=8)
        assert not audit.covered(s, actor="olga", photo=3)
    # an entry whose listed photos were edited in SQL no longer verifies: it covers nothing
    with sessions.begin() as s:
        s.execute(
            update(AuditEntry)
            .where(AuditEntry.seq == seq)
            .values(detail=audit.canonical({"photos": [3, 9]}))
        )
        s.execute(insert(AuditCover).values(actor="ines", kind="photo", ref_id=9, seq=seq, at=at))
    with sessions.begin() as s:
        assert not audit.covered(s, actor="ines", photo=9)
        assert not audit.covered(s, actor="ines", photo=3)


def test_cover_ends_with_its_window_and_is_one_lookup(
    sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy import event

    _view(sessions, "ines", photos=[3])
    _fill(sessions, 50)
    engine = sessions.kw["bind"]
    statements: list[str] = []

    def note(_conn: object, _cur: object, sql: str, *_args: object) -> None:
        statements.append(sql)

    event.listen(engine, "before_cursor_execute", note)
    try:
        with sessions.begin() as s:
            assert audit.covered(s, actor="ines", photo=3)
    finally:
        event.remove(engine, "before_cursor_execute", note)
    selects = [q for q in statements if q.lstrip().upper().startswith("SELECT")]
    # one indexed lookup: the cover note joined to its entry by seq (no scan of the log)
    assert len(selects) == 1 and "audit_cover" in selects[0], statements
    # ten minutes later the entry covers nothing, and its note is cleared by the next one
    later = audit.COVER_WINDOW + timedelta(seconds=1)
    real = audit.datetime

    class Later(real):  # type: ignore[misc, valid-type]
        @classmethod
        def now(cls, tz: object = None) -> real:  # type: ignore[override, valid-type]
            return real.now(UTC) + later

    monkeypatch.setattr(audit, "datetime", Later)
    with sessions.begin() as s:
        assert not audit.covered(s, actor="ines", photo=3)
    _view(sessions, "ines", photos=[4])
    with sessions.begin() as s:
        assert s.execute(select(AuditCover.ref_id)).scalars().all() == [4]
