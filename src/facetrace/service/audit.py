"""Hash-chained, append-only audit log.

Each entry stores the hash of the entry before it and its own hash over that and the
canonical JSON of its fields, so editing, inserting or deleting a row breaks the chain
at that point. :func:`verify` walks the chain and names the first break. The head row
(``audit_head``) holds the newest sequence number and hash: appends lock it, and a
missing or extra tail shows as a head that disagrees with the last entry. Whoever can
rewrite the whole table and the head can forge a consistent log; publishing the head
hash elsewhere now and then (``facetrace audit verify`` prints it) closes that gap.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from facetrace.store.service_models import AuditEntry, AuditHead

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
    # commands run from the shell on a gallery (actor ``shell:<os user>``)
    CLI_INGEST = "cli_ingest"
    CLI_DELETE = "cli_delete"
    CLI_SEARCH = "cli_search"


def canonical(fields: Mapping[str, Any]) -> str:
    """Compact, key-sorted JSON: the exact text that is hashed."""
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def entry_hash(
    *, seq: int, at: str, actor: str, action: str, target: str, detail: str, prev_hash: str
) -> str:
    """SHA-256 (hex) of an entry's fields, ``prev_hash`` included."""
    body = canonical(
        {
            "seq": seq,
            "at": at,
            "actor": actor,
            "action": action,
            "target": target,
            "detail": detail,
            "prev_hash": prev_hash,
        }
    )
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


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
    head = session.execute(
        select(AuditHead).where(AuditHead.id == 1).with_for_update()
    ).scalar_one_or_none()
    if head is None:  # a database created without the migration's seed row
        head = AuditHead(id=1, seq=0, hash=GENESIS)
        session.add(head)
        session.flush()
    seq = head.seq + 1
    at = datetime.now(UTC).isoformat(timespec="microseconds")
    detail_text = canonical(dict(detail or {}))
    digest = entry_hash(
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
    session.flush()
    return entry


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
    """The first break in the chain: ``kind`` is ``altered``, ``inserted`` or ``deleted``;
    ``seq`` is the entry where it shows (for a deleted tail, the seq after the last)."""

    kind: str
    seq: int
    message: str


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """Result of :func:`verify`: ``problem`` is None when the chain is intact."""

    entries: int
    head_hash: str
    problem: Problem | None

    @property
    def ok(self) -> bool:
        """True when no entry was altered, inserted or deleted."""
        return self.problem is None


def _entries(session: Session, batch: int = 2000) -> Iterator[AuditEntry]:
    last = -1
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


def verify(session: Session) -> VerifyReport:
    """Walk the whole log in order and report the first altered, inserted or deleted entry.

    An entry whose stored hash does not match its fields was altered. An entry whose
    ``prev_hash`` names an earlier entry than the one before it follows inserted rows;
    one whose ``prev_hash`` names no entry, or a jump in ``seq``, follows deleted rows.
    """
    prev_hash = GENESIS
    expected_seq = 1
    seen: dict[str, int] = {GENESIS: 0}
    count = 0
    for e in _entries(session):
        count += 1
        recomputed = entry_hash(
            seq=e.seq,
            at=e.at,
            actor=e.actor,
            action=e.action,
            target=e.target,
            detail=e.detail,
            prev_hash=e.prev_hash,
        )
        if e.prev_hash != prev_hash:
            if e.prev_hash in seen:
                first = seen[e.prev_hash] + 1
                return VerifyReport(
                    count,
                    prev_hash,
                    Problem(
                        "inserted",
                        first,
                        f"entries between {first - 1} and {e.seq} were inserted: entry {e.seq} "
                        f"chains to entry {first - 1}",
                    ),
                )
            if e.seq == expected_seq and count > 1:
                return VerifyReport(
                    count,
                    prev_hash,
                    Problem(
                        "altered",
                        e.seq - 1,
                        f"entry {e.seq - 1} was altered and re-hashed: entry {e.seq} "
                        "chains to a different hash",
                    ),
                )
            return VerifyReport(
                count,
                prev_hash,
                Problem(
                    "deleted",
                    e.seq,
                    f"entries before {e.seq} were deleted: its previous hash matches no entry",
                ),
            )
        if recomputed != e.hash:
            return VerifyReport(
                count,
                prev_hash,
                Problem(
                    "altered", e.seq, f"entry {e.seq} was altered: its fields do not match its hash"
                ),
            )
        if e.seq != expected_seq:
            kind = "deleted" if e.seq > expected_seq else "inserted"
            return VerifyReport(
                count,
                prev_hash,
                Problem(kind, e.seq, f"sequence jumps from {expected_seq - 1} to {e.seq} ({kind})"),
            )
        seen[e.hash] = e.seq
        prev_hash = e.hash
        expected_seq = e.seq + 1
    head = session.get(AuditHead, 1)
    if head is not None and (head.seq != expected_seq - 1 or head.hash != prev_hash):
        if head.seq > expected_seq - 1:
            return VerifyReport(
                count,
                prev_hash,
                Problem(
                    "deleted",
                    expected_seq,
                    f"the newest entries were deleted: the log ends at {expected_seq - 1}, "
                    f"the head records {head.seq}",
                ),
            )
        return VerifyReport(
            count,
            prev_hash,
            Problem(
                "inserted",
                head.seq + 1,
                f"entries after {head.seq} were appended outside the audit code "
                "(the head does not know them)",
            ),
        )
    return VerifyReport(count, prev_hash, None)


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
