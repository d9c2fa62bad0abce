"""Keyed, hash-chained, append-only audit log.

Each entry stores the hash of the entry before it and its own MAC: HMAC-SHA256, under a
key kept in a file outside the database (:mod:`facetrace.service.audit_key`), over the
canonical JSON of its fields and that previous hash. Editing, inserting or deleting a row
breaks the chain at that point, and without the key nobody can compute a MAC that
verifies, so re-hashing the chain after an edit is found too. The head row
(``audit_head``) holds the newest sequence number and MAC and is itself signed with the
key: appends lock it, a missing head or one signed without the key is reported, and a
missing or extra tail shows as a head that disagrees with the last entry.

Logs written before the key (plain SHA-256 entries) are kept as they are: the first start
with a key *seals* them, appending a keyed ``audit_keyed`` entry that chains to the last
unkeyed one, and ``audit_head.keyed_from`` (signed) says where keyed entries begin. From
then on the unkeyed prefix cannot be changed either without breaking the seal's link.
See docs/audit.md for what a holder of the key can still do.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import and_, delete, insert, or_, select
from sqlalchemy.orm import Session

from facetrace.errors import AuditKeyError, StoreUnavailable
from facetrace.service.audit_key import key_id
from facetrace.store.db import Database
from facetrace.store.service_models import AuditCover, AuditEntry, AuditHead

log = logging.getLogger(__name__)

GENESIS = "0" * 64


class Action(StrEnum):
    """Everything that is audited."""

    LOGIN = "login"
    LOGIN_FAILED = "login_failed"
    LOGOUT = "logout"
    SEARCH = "search"
    VIEW_RESULTS = "view_results"
    VIEW_PROBE = "view_probe"
    PROBE_FACE_ADD = "probe_face_add"
    REVIEW = "review"
    IDENTIFICATION = "identification"
    CASE_CREATE = "case_create"
    CASE_UPDATE = "case_update"
    CASE_CLOSE = "case_close"
    CONTACT_ADD = "contact_add"
    NOTIFICATION = "notification"
    EXPORT = "export"
    IMPORT = "import"
    IMPORT_QUEUED = "import_queued"
    IMPORT_BATCH = "import_batch"
    IMPORT_CANCEL = "import_cancel"
    IMPORT_RESUME = "import_resume"
    IMPORT_INTERRUPTED = "import_interrupted"
    VIDEO_QUEUED = "video_queued"
    VIDEO_CANCEL = "video_cancel"
    VIDEO_INTERRUPTED = "video_interrupted"
    DELETE = "delete"
    PURGE = "purge"
    ADMIN = "admin"
    REPORT_VIEW = "report_view"
    AUDIT_VIEW = "audit_view"
    DUPLICATES_VIEW = "duplicates_view"
    MERGE = "merge"
    MERGE_UNDO = "merge_undo"
    DECISION = "decision"
    PERSON_DECISION = "person_decision"
    PERSON_DECISION_REVOKE = "person_decision_revoke"
    REFUSED = "refused"
    VIEW_PHOTO = "view_photo"
    VIEW_SUBJECT = "view_subject"
    VIEW_COLLECTION = "view_collection"
    AUDIT_KEYED = "audit_keyed"


def canonical(fields: Mapping[str, Any]) -> str:
    """Compact, key-sorted JSON: the exact text that is hashed."""
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _body(
    *, seq: int, at: str, actor: str, action: str, target: str, detail: str, prev_hash: str
) -> bytes:
    return canonical(
        {
            "seq": seq,
            "at": at,
            "actor": actor,
            "action": action,
            "target": target,
            "detail": detail,
            "prev_hash": prev_hash,
        }
    ).encode("utf-8")


def entry_hash(
    *, seq: int, at: str, actor: str, action: str, target: str, detail: str, prev_hash: str
) -> str:
    """SHA-256 (hex) of an entry's fields, ``prev_hash`` included: the unkeyed scheme of
    entries written before the chain was keyed (anyone can compute it)."""
    body = _body(
        seq=seq, at=at, actor=actor, action=action, target=target, detail=detail,
        prev_hash=prev_hash,
    )  # fmt: skip
    return hashlib.sha256(body).hexdigest()


def entry_mac(
    key: bytes,
    *,
    seq: int,
    at: str,
    actor: str,
    action: str,
    target: str,
    detail: str,
    prev_hash: str,
) -> str:
    """HMAC-SHA256 (hex) of an entry's fields under the audit key: only a holder of the
    key can produce one that verifies."""
    body = _body(
        seq=seq, at=at, actor=actor, action=action, target=target, detail=detail,
        prev_hash=prev_hash,
    )  # fmt: skip
    return hmac.new(key, b"entry:" + body, hashlib.sha256).hexdigest()


def head_mac(key: bytes, *, seq: int, hash: str, keyed_from: int) -> str:
    """HMAC-SHA256 (hex) of the head's fields: a head rewritten without the key (to hide a
    deleted tail, or to restart the log) does not verify."""
    body = canonical({"seq": seq, "hash": hash, "keyed_from": keyed_from})
    return hmac.new(key, b"head:" + body.encode("utf-8"), hashlib.sha256).hexdigest()


_KEY = "facetrace.audit.key"


def bind(database: Database, key: bytes) -> None:
    """Give every session of ``database`` the audit key (in ``Session.info``), then seal
    the log if it was written without one. Call once where the database is opened (the
    app's start-up, each CLI command); :func:`append` refuses a session without a key."""
    bind_key(database, key)
    with database.sessions.begin() as session:
        seal(session)


def bind_key(database: Database, key: bytes) -> None:
    """Give every session of ``database`` the audit key, changing nothing in the log
    (for ``audit verify``)."""
    for factory in (database.sessions, database.reads):
        info = dict(factory.kw.get("info") or {})
        info[_KEY] = key
        factory.configure(info=info)


def session_key(session: Session) -> bytes:
    """The audit key bound to ``session`` (see :func:`bind`)."""
    key = session.info.get(_KEY)
    if not isinstance(key, bytes):
        raise AuditKeyError("no audit key is bound to this database session (audit.bind)")
    return key


def _locked_head(session: Session) -> AuditHead:
    head = session.execute(
        select(AuditHead).where(AuditHead.id == 1).with_for_update()
    ).scalar_one_or_none()
    if head is None:  # the migration seeds it: a missing head was deleted
        raise StoreUnavailable(
            "the audit log's head row is missing (deleted outside facetrace): nothing can be "
            "audited until an administrator restores it; run 'facetrace audit verify'"
        )
    return head


def _sign(key: bytes, head: AuditHead) -> None:
    assert head.keyed_from is not None
    head.mac = head_mac(key, seq=head.seq, hash=head.hash, keyed_from=head.keyed_from)


def seal(session: Session) -> bool:
    """Key a log written without a key (or a new one): entries from the next one on are
    keyed, and the head is signed. A log that has entries gets an ``audit_keyed`` entry
    chained to its last unkeyed one. Refuses a log signed with another key. True when it
    sealed the log now."""
    key = session_key(session)
    head = _locked_head(session)
    if head.keyed_from is not None:
        if head.key_id and head.key_id != key_id(key):
            raise AuditKeyError(
                f"the audit log is signed with key {head.key_id}, but the audit key file "
                f"holds key {key_id(key)} (set FACETRACE_AUDIT_KEY_FILE to the log's key)"
            )
        return False
    legacy = head.seq
    head.keyed_from = legacy + 1
    head.key_id = key_id(key)
    if legacy:
        _write(
            session,
            head,
            key,
            actor="system",
            action=Action.AUDIT_KEYED,
            target="audit",
            detail={"unkeyed_entries": legacy, "unkeyed_head": head.hash, "key": head.key_id},
        )
    else:
        _sign(key, head)
    session.flush()
    log.info("audit log keyed from entry %d (key %s)", head.keyed_from, head.key_id)
    return True


def append(
    session: Session,
    *,
    actor: str,
    action: Action | str,
    target: str = "",
    detail: Mapping[str, Any] | None = None,
) -> AuditEntry:
    """Append one entry in the caller's transaction, so it commits or rolls back with the
    action it records. ``actor`` is a user name (or ``system``); ``target`` names the
    record (``case:12``); ``detail`` must be JSON-serialisable. Returns the new entry."""
    key = session_key(session)
    head = _locked_head(session)
    if head.keyed_from is None:
        seal(session)
    return _write(session, head, key, actor=actor, action=action, target=target, detail=detail)


def _write(
    session: Session,
    head: AuditHead,
    key: bytes,
    *,
    actor: str,
    action: Action | str,
    target: str,
    detail: Mapping[str, Any] | None,
) -> AuditEntry:
    seq = head.seq + 1
    at = datetime.now(UTC).isoformat(timespec="microseconds")
    detail_text = canonical(dict(detail or {}))
    digest = entry_mac(
        key,
        seq=seq,
        at=at,
        actor=actor,
        action=str(action),
        target=target,
        detail=detail_text,
        prev_hash=head.hash,
    )
    entry = AuditEntry(
        seq=seq,
        at=at,
        actor=actor,
        action=str(action),
        target=target,
        detail=detail_text,
        prev_hash=head.hash,
        hash=digest,
    )
    session.add(entry)
    head.seq = seq
    head.hash = digest
    _sign(key, head)
    if str(action) in _COVERING_NAMES:
        _note_cover(session, actor=actor, seq=seq, at=at, detail=detail or {})
    session.flush()
    return entry


# Pages that show photos list them in their one entry (``photos``: reference photo ids,
# ``probes``: probe ids); the images the browser then fetches for that page are covered
# by it instead of writing an entry each (a results page of 30 candidates was 31 rows).
# Each listed id is noted in audit_cover with the entry, so that covering is one indexed
# lookup per image (it read the newest 500 entries and parsed their JSON per image).
COVERING = (Action.VIEW_RESULTS, Action.VIEW_SUBJECT, Action.VIEW_PHOTO, Action.VIEW_PROBE)
_COVERING_NAMES = frozenset(str(a) for a in COVERING)
COVER_WINDOW = timedelta(minutes=10)
_COVER_KINDS = (("photo", "photos"), ("probe", "probes"))


def _note_cover(
    session: Session, *, actor: str, seq: int, at: str, detail: Mapping[str, Any]
) -> None:
    """Note the photos and probes a covering entry lists (and forget notes older than
    :data:`COVER_WINDOW`: they cover nothing any more)."""
    rows = [
        {"actor": actor, "kind": kind, "ref_id": ref, "seq": seq, "at": at}
        for kind, key in _COVER_KINDS
        for ref in sorted(set(detail.get(key) or ()))
        if isinstance(ref, int) and not isinstance(ref, bool)
    ]
    stale = (datetime.fromisoformat(at) - COVER_WINDOW).isoformat(timespec="microseconds")
    session.execute(delete(AuditCover).where(AuditCover.at < stale))
    if rows:
        session.execute(insert(AuditCover), rows)


def covered(
    session: Session, *, actor: str, photo: int | None = None, probe: int | None = None
) -> bool:
    """True when ``actor`` viewed, in the last :data:`COVER_WINDOW`, a page whose entry
    lists this reference ``photo`` (or ``probe``): showing its image again needs no
    entry of its own. One indexed lookup (``audit_cover``); entries written before that
    table existed cover nothing, so their images are audited again (never less).

    ``audit_cover`` lies outside the hash chain, so a row there is only a pointer: the
    entry it names must be in the log, verify under the audit key, be a page view of
    ``actor`` inside the window and list the image. A row added by hand (to hide views
    from the log) covers nothing."""
    since = (datetime.now(UTC) - COVER_WINDOW).isoformat(timespec="microseconds")
    wanted = [(kind, ref) for kind, ref in (("photo", photo), ("probe", probe)) if ref is not None]
    if not wanted:
        return False
    entries = session.execute(
        select(AuditEntry)
        .join(AuditCover, AuditCover.seq == AuditEntry.seq)
        .where(
            AuditCover.actor == actor,
            or_(*(and_(AuditCover.kind == kind, AuditCover.ref_id == ref) for kind, ref in wanted)),
            AuditCover.at >= since,
        )
        .order_by(AuditEntry.seq.desc())
        .limit(3)
    ).scalars()
    key = session_key(session)
    return any(_covers(entry, key, actor=actor, since=since, wanted=wanted) for entry in entries)


def _covers(
    entry: AuditEntry, key: bytes, *, actor: str, since: str, wanted: list[tuple[str, int]]
) -> bool:
    """Whether ``entry`` is a genuine, recent page view of ``actor`` listing one of
    ``wanted``: its MAC verifies and its own (hashed) fields say so."""
    if entry.actor != actor or entry.action not in _COVERING_NAMES or entry.at < since:
        return False
    mac = entry_mac(
        key,
        seq=entry.seq,
        at=entry.at,
        actor=entry.actor,
        action=entry.action,
        target=entry.target,
        detail=entry.detail,
        prev_hash=entry.prev_hash,
    )
    if not hmac.compare_digest(mac, entry.hash):
        return False
    try:
        detail = json.loads(entry.detail)
    except ValueError:
        return False
    if not isinstance(detail, dict):
        return False
    keys = dict(_COVER_KINDS)
    return any(ref in (detail.get(keys[kind]) or ()) for kind, ref in wanted)


_REFUSALS = "facetrace.audit.refusals"


def note_refusal(
    session: Session, *, actor: str, target: str, detail: Mapping[str, Any] | None = None
) -> None:
    """Remember a refused attempt (403, 404 on another department's object, 422) for
    :func:`record_refusals`. The refusal raises, so the caller's transaction is rolled
    back; the entry is written after that rollback, in a transaction of its own."""
    pending: list[tuple[str, str, dict[str, Any]]] = session.info.setdefault(_REFUSALS, [])
    pending.append((actor, target, dict(detail or {})))


def has_refusals(session: Session) -> bool:
    """True when :func:`note_refusal` noted something not yet recorded."""
    return bool(session.info.get(_REFUSALS))


def record_refusals(session: Session) -> int:
    """Write the refusals noted on ``session`` (after its rollback) and commit them;
    returns how many."""
    pending: list[tuple[str, str, dict[str, Any]]] = session.info.pop(_REFUSALS, [])
    for actor, target, detail in pending:
        append(session, actor=actor, action=Action.REFUSED, target=target, detail=detail)
    if pending:
        session.commit()
    return len(pending)


@dataclass(frozen=True, slots=True)
class Problem:
    """The first break in the chain: ``kind`` is ``altered``, ``inserted``, ``deleted``,
    ``unkeyed`` (the head is not signed: the log was reset, or written without the key) or
    ``wrong_key`` (the head names another key than the one given: nothing was checked);
    ``seq`` is the entry where it shows (for a deleted tail, the seq after the last)."""

    kind: str
    seq: int
    message: str


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """Result of :func:`verify`: ``problem`` is None when the chain is intact.
    ``keyed_from`` is the first keyed entry (None for a log never keyed) and ``key_id``
    the fingerprint of the key the head is signed with."""

    entries: int
    head_hash: str
    problem: Problem | None
    keyed_from: int | None = None
    key_id: str = ""

    @property
    def ok(self) -> bool:
        """True when no entry was altered, inserted or deleted."""
        return self.problem is None


def _entries(session: Session, *, after: int = -1, batch: int = 2000) -> Iterator[AuditEntry]:
    last = after
    while True:
        rows = (
            session.execute(
                select(AuditEntry)
                .where(AuditEntry.seq > last)
                .order_by(AuditEntry.seq)
                .limit(batch)
            )
            .scalars()
            .all()
        )
        if not rows:
            return
        yield from rows
        last = rows[-1].seq


class _Checker:
    """Whether an entry's stored hash is the one its fields and the key give, by the
    scheme of its place in the chain: HMAC from ``keyed_from`` on, SHA-256 before it (or,
    when the head cannot say where keying began, until the first keyed entry)."""

    def __init__(self, key: bytes, keyed_from: int | None) -> None:
        self.key = key
        self.keyed_from = keyed_from
        self.seen_keyed = False

    def genuine(self, e: AuditEntry, *, seq: int | None = None) -> bool:
        fields = dict(
            seq=e.seq if seq is None else seq,
            at=e.at,
            actor=e.actor,
            action=e.action,
            target=e.target,
            detail=e.detail,
            prev_hash=e.prev_hash,
        )
        if hmac.compare_digest(entry_mac(self.key, **fields), e.hash):  # type: ignore[arg-type]
            self.seen_keyed = True
            return True
        number = int(fields["seq"])  # type: ignore[call-overload]
        unkeyed_allowed = (
            number < self.keyed_from if self.keyed_from is not None else not self.seen_keyed
        )
        return unkeyed_allowed and entry_hash(**fields) == e.hash  # type: ignore[arg-type]


def verify(session: Session, *, key: bytes | None = None) -> VerifyReport:
    """Walk the whole log in order and report the first altered, inserted or deleted entry,
    then check the signed head.

    An entry whose MAC does not verify was altered, or forged without the key; it is
    reported as inserted when it lies beyond the signed head (appended outside the audit
    code) or when the entries after it verify once renumbered back over it. A jump in
    ``seq``, or a ``prev_hash`` naming no entry, follows deleted rows. A missing head means
    the head (and perhaps the newest entries) was deleted; an unsigned or wrongly signed
    head, that the log was reset or rewritten without the key.
    """
    key = session_key(session) if key is None else key
    head = session.get(AuditHead, 1)
    keyed_from = head.keyed_from if head is not None else None
    head_signed = (
        head is not None
        and keyed_from is not None
        and hmac.compare_digest(
            head.mac or "", head_mac(key, seq=head.seq, hash=head.hash, keyed_from=keyed_from)
        )
    )
    check = _Checker(key, keyed_from if head_signed else None)
    prev_hash = GENESIS
    expected_seq = 1
    seen: dict[str, int] = {GENESIS: 0}
    count = 0

    def report(kind: str, seq: int, message: str) -> VerifyReport:
        return VerifyReport(
            count,
            prev_hash,
            Problem(kind, seq, message),
            keyed_from,
            head.key_id if head is not None else "",
        )

    if head is not None and head.key_id and head.key_id != key_id(key):
        return report(
            "wrong_key",
            0,
            f"the audit head is signed with key {head.key_id}, not with this key "
            f"({key_id(key)}): check FACETRACE_AUDIT_KEY_FILE",
        )
    for e in _entries(session):
        count += 1
        genuine = check.genuine(e)
        if genuine and e.prev_hash == prev_hash and e.seq == expected_seq:
            seen[e.hash] = e.seq
            prev_hash = e.hash
            expected_seq = e.seq + 1
            continue
        if head_signed and head is not None and e.seq > head.seq:
            return report(
                "inserted",
                e.seq,
                f"entry {e.seq} was inserted after the newest entry the signed head knows "
                f"({head.seq}): it was written outside facetrace",
            )
        if e.seq > expected_seq:
            return report(
                "deleted",
                e.seq,
                f"entries {expected_seq} to {e.seq - 1} were deleted (the sequence jumps "
                f"from {expected_seq - 1} to {e.seq})",
            )
        if genuine:  # its own MAC holds, but it chains to something else
            if e.prev_hash in seen:
                first = seen[e.prev_hash] + 1
                return report(
                    "inserted",
                    first,
                    f"entries between {first - 1} and {e.seq} were inserted: entry {e.seq} "
                    f"chains to entry {first - 1}",
                )
            return report(
                "altered",
                e.seq - 1,
                f"entry {e.seq - 1} (or one before it) was altered and re-hashed: entry "
                f"{e.seq} chains to a different hash",
            )
        # the MAC fails: forged rows pushed genuine ones along, or this one was altered
        for later in _entries(session, after=e.seq, batch=100):
            if later.seq > e.seq + 100:
                break
            if later.prev_hash == prev_hash and check.genuine(later, seq=expected_seq):
                n = later.seq - expected_seq
                return report(
                    "inserted",
                    e.seq,
                    f"{n} entr{'y was' if n == 1 else 'ies were'} inserted at {e.seq}: the "
                    f"entries after {expected_seq - 1} were renumbered to make room",
                )
        if e.prev_hash != prev_hash and e.prev_hash not in seen:
            return report(
                "deleted",
                e.seq,
                f"entries before {e.seq} were deleted: its previous hash matches no entry",
            )
        return report(
            "altered",
            e.seq,
            f"entry {e.seq} was altered: its fields do not match its hash (edited, or "
            "re-hashed without the audit key)",
        )
    last = expected_seq - 1
    if head is None:
        return report(
            "deleted",
            expected_seq,
            f"the audit head row was deleted (the log now ends at entry {last}; "
            "newer entries may have been deleted with it)",
        )
    if keyed_from is None or not head.mac:
        return report(
            "unkeyed",
            expected_seq,
            f"the audit head is not signed with the audit key: the log was reset or "
            f"written without the key (it ends at entry {last}); a log from before "
            "keyed chains is sealed at the service's first start",
        )
    if not head_signed:
        return report(
            "altered",
            head.seq,
            "the audit head was altered: its signature does not match (rewritten "
            "without the audit key)",
        )
    if head.seq > last:
        return report(
            "deleted",
            expected_seq,
            f"the newest entries were deleted: the log ends at {last}, the head records {head.seq}",
        )
    if head.seq < last or head.hash != prev_hash:
        return report(
            "inserted",
            head.seq + 1,
            f"entries after {head.seq} were appended outside the audit code "
            "(the head does not know them)",
        )
    return VerifyReport(count, prev_hash, None, keyed_from, head.key_id)


def recent(
    session: Session,
    *,
    limit: int = 200,
    action: str | None = None,
    actor: str | None = None,
    since: datetime | None = None,
    before: datetime | None = None,
) -> list[AuditEntry]:
    """The newest entries first, optionally filtered by action, actor and time
    (``since`` <= at < ``before``, both timezone-aware)."""
    stmt = select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(limit)
    if action:
        stmt = stmt.where(AuditEntry.action == action)
    if actor:
        stmt = stmt.where(AuditEntry.actor == actor)
    # ``at`` is ISO text in UTC of one fixed width, so text order is time order
    if since is not None:
        stmt = stmt.where(AuditEntry.at >= since.astimezone(UTC).isoformat(timespec="microseconds"))
    if before is not None:
        stmt = stmt.where(AuditEntry.at < before.astimezone(UTC).isoformat(timespec="microseconds"))
    return list(session.execute(stmt).scalars())
