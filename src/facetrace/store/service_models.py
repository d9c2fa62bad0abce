"""Service tables: departments, users, keys, sessions, cases, searches, reviews,
identifications, contacts, notifications and the audit log.

Timestamps are stored in UTC. SQLite hands them back without a zone, so code that
compares them goes through :func:`as_utc`.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy import false as sa_false
from sqlalchemy import true as sa_true
from sqlalchemy.orm import Mapped, composite, mapped_column, relationship

from facetrace.store.base import Base
from facetrace.types import Provenance


def utcnow() -> datetime:
    """Timezone-aware now, for defaults."""
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """``value`` with its zone set to UTC when the database dropped it (SQLite)."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class Department(Base):
    """An agency or department; cases and reports are scoped to one."""

    __tablename__ = "department"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    # the name folded (case, spacing): unique, so "forensics" finds "Forensics"
    name_key: Mapped[str] = mapped_column(String(200), unique=True, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class User(Base):
    """An official who logs in. ``roles`` is a comma-separated subset of the role names."""

    __tablename__ = "app_user"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    full_name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str] = mapped_column(Text)
    roles: Mapped[str] = mapped_column(String(200))
    department_id: Mapped[int | None] = mapped_column(ForeignKey("department.id"), nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # a one-time password (set by an administrator) must be changed at the next login
    must_change_password: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=sa_false()
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    department: Mapped[Department | None] = relationship(lazy="joined")


class ApiKey(Base):
    """A key for a machine client; only its SHA-256 is stored, the prefix finds it."""

    __tablename__ = "api_key"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    prefix: Mapped[str] = mapped_column(String(16), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class LoginSession(Base):
    """A browser session; the cookie holds a random token, the table its keyed hash."""

    __tablename__ = "login_session"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Case(Base):
    """An investigation; every search belongs to one."""

    __tablename__ = "case_file"
    # case numbers are unique within a department (another's are never revealed)
    __table_args__ = (
        UniqueConstraint("department_id", "number", name="uq_case_file_department_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[str] = mapped_column(String(100))
    title: Mapped[str] = mapped_column(String(300), default="")
    purpose: Mapped[str] = mapped_column(String(50))
    legal_basis: Mapped[str] = mapped_column(Text)
    department_id: Mapped[int] = mapped_column(ForeignKey("department.id"), index=True)
    created_by: Mapped[int] = mapped_column(ForeignKey("app_user.id"))
    status: Mapped[str] = mapped_column(String(20), default="open")
    retention_until: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    identified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # who works the case now (a supervisor assigns it); None: nobody in particular
    assigned_to: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"), nullable=True)
    # set when the case is closed (status "closed"): cases.Outcome, why, when, by whom
    outcome: Mapped[str | None] = mapped_column(String(40), nullable=True)
    outcome_reason: Mapped[str] = mapped_column(Text, default="")
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    closed_by: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"), nullable=True)

    department: Mapped[Department] = relationship(lazy="joined")
    creator: Mapped[User] = relationship(lazy="joined", foreign_keys=[created_by])
    assignee: Mapped[User | None] = relationship(lazy="joined", foreign_keys=[assigned_to])
    closer: Mapped[User | None] = relationship(lazy="joined", foreign_keys=[closed_by])


class CaseEvent(Base):
    """Something done to a case that has no table of its own: a note, an assignment, a
    closing or reopening (with its text). The case timeline merges these with the
    searches, reviews, identification, contacts and notifications."""

    __tablename__ = "case_event"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case_file.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    text: Mapped[str] = mapped_column(Text, default="")
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    user: Mapped[User] = relationship(lazy="joined")


class Probe(Base):
    """A probe (a photo, or a video) kept with its case, never in the gallery; ``data``
    is emptied by the retention purge, the row stays as a record that it existed.
    ``faces`` are the faces found in it when it was uploaded (and any added later)."""

    __tablename__ = "probe"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case_file.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20), default="photo")  # photo, video
    sha256: Mapped[str] = mapped_column(String(64))
    filename: Mapped[str] = mapped_column(String(300), default="")
    data: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    width: Mapped[int] = mapped_column(Integer, default=0)
    height: Mapped[int] = mapped_column(Integer, default=0)
    uploaded_by: Mapped[int] = mapped_column(ForeignKey("app_user.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    purged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    faces: Mapped[list[ProbeFaceRow]] = relationship(
        order_by="ProbeFaceRow.face_index", lazy="selectin", back_populates="probe"
    )


class ProbeFaceRow(Base):
    """One searchable face of a probe: found by the detector at upload (``detected``),
    drawn by a user (``manual``) or a person followed through a video (``track``, its
    vector the mean of the track's faces, ``frame_index``/``timestamp_s`` its best
    frame and ``extra`` the track). Searching it is a vector search: the pipeline ran
    once, when the face was stored. ``vector`` (float32 bytes of ``model_id``) is None
    for faces stored before vectors were kept, and after the retention purge."""

    __tablename__ = "probe_face"
    __table_args__ = (UniqueConstraint("probe_id", "face_index", name="uq_probe_face_index"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    probe_id: Mapped[int] = mapped_column(ForeignKey("probe.id"), index=True)
    face_index: Mapped[int] = mapped_column(Integer)
    origin: Mapped[str] = mapped_column(String(20), default="detected")
    x1: Mapped[int] = mapped_column(Integer)
    y1: Mapped[int] = mapped_column(Integer)
    x2: Mapped[int] = mapped_column(Integer)
    y2: Mapped[int] = mapped_column(Integer)
    landmarks: Mapped[list[list[float]]] = mapped_column(JSON, default=list)
    detector_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    quality: Mapped[float] = mapped_column(Float)
    quality_reasons: Mapped[list[str]] = mapped_column(JSON, default=list)
    model_id: Mapped[str] = mapped_column(String(200), default="")
    vector: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    frame_index: Mapped[int | None] = mapped_column(Integer, nullable=True)
    timestamp_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    added_by: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    probe: Mapped[Probe] = relationship(back_populates="faces")
    adder: Mapped[User | None] = relationship(lazy="joined")

    @property
    def box(self) -> tuple[int, int, int, int]:
        """(x1, y1, x2, y2) in pixels of the upright probe photo (or video frame)."""
        return (self.x1, self.y1, self.x2, self.y2)

    @property
    def index(self) -> int:
        """The face number (``face_index``): 0 is the largest face found at upload."""
        return self.face_index

    @property
    def drawn(self) -> bool:
        """True for a face a user drew a box around."""
        return self.origin == "manual"

    @property
    def drawn_by(self) -> str:
        """The user name of whoever drew it ("" for faces the engine found)."""
        return self.adder.username if self.adder is not None else ""


class Search(Base):
    """One search of one probe face; its candidates are a snapshot of the result."""

    __tablename__ = "search"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case_file.id"), index=True)
    probe_id: Mapped[int] = mapped_column(ForeignKey("probe.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"), index=True)
    face_index: Mapped[int] = mapped_column(Integer)
    box: Mapped[list[int]] = mapped_column(JSON)
    quality: Mapped[float] = mapped_column(Float)
    quality_reasons: Mapped[list[str]] = mapped_column(JSON, default=list)
    threshold: Mapped[float] = mapped_column(Float)
    no_candidate: Mapped[bool] = mapped_column(Boolean)
    forced: Mapped[bool] = mapped_column(Boolean, default=False)
    # facetrace.config.SearchMode: identification (thresholded) or investigation (a list
    # for review, no threshold; ``threshold`` is then identification's, for reference)
    mode: Mapped[str] = mapped_column(
        String(20), default="identification", server_default="identification"
    )
    # what the scores rest on (searches.ScoreEvidence.as_dict); {} for older searches
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    candidates: Mapped[list[SearchCandidate]] = relationship(
        order_by="SearchCandidate.rank", lazy="selectin"
    )
    user: Mapped[User] = relationship(lazy="joined")

    @property
    def investigation(self) -> bool:
        """True for a search in the investigation mode (a list for review, no threshold)."""
        return self.mode == "investigation"

    @property
    def listed(self) -> list[SearchCandidate]:
        """The candidates the search's answer lists: every one in the investigation mode,
        those at or above the threshold in the identification mode (the others kept are
        look-alikes below it)."""
        return [c for c in self.candidates if self.investigation or c.above_threshold]


class SearchCandidate(Base):
    """A candidate as shown at search time, with provenance copied so later gallery
    deletions do not rewrite the case record."""

    __tablename__ = "search_candidate"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    search_id: Mapped[int] = mapped_column(ForeignKey("search.id"), index=True)
    rank: Mapped[int] = mapped_column(Integer)
    score: Mapped[float] = mapped_column(Float)
    false_match_rate: Mapped[float | None] = mapped_column(Float, nullable=True)
    above_threshold: Mapped[bool] = mapped_column(Boolean)
    subject_external_id: Mapped[str] = mapped_column(String(300))
    subject_name: Mapped[str] = mapped_column(String(300), default="")
    face_id: Mapped[int] = mapped_column(Integer)
    photo_id: Mapped[int] = mapped_column(Integer)
    box: Mapped[list[int]] = mapped_column(JSON)
    quality: Mapped[float] = mapped_column(Float)
    collection: Mapped[str] = mapped_column(String(200))
    legal_basis: Mapped[str] = mapped_column(Text, default="")
    source_url: Mapped[str] = mapped_column(Text, default="")
    source_title: Mapped[str] = mapped_column(Text, default="")
    captured_date: Mapped[str] = mapped_column(String(40), default="")
    # the five columns above as the one value (read and written whole)
    provenance: Mapped[Provenance] = composite(
        "collection", "legal_basis", "source_url", "source_title", "captured_date"
    )
    # "template" when the subject's template (the mean of ``template_faces`` of its
    # faces) gave the score, "face" when one reference face did
    matched_by: Mapped[str] = mapped_column(String(20), default="face", server_default="face")
    template_faces: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class Review(Base):
    """A reviewer's conclusion on a search (and, for a potential candidate, which one).

    One reviewer has one review per search: changing it adds version ``n + 1`` and marks
    the earlier one not ``is_current``, so the history stays and counts see each reviewer
    once."""

    __tablename__ = "review"
    __table_args__ = (
        UniqueConstraint(
            "search_id", "reviewer_id", "version", name="uq_review_search_reviewer_version"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case_file.id"), index=True)
    search_id: Mapped[int] = mapped_column(ForeignKey("search.id"), index=True)
    candidate_id: Mapped[int | None] = mapped_column(
        ForeignKey("search_candidate.id"), nullable=True
    )
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"))
    conclusion: Mapped[str] = mapped_column(String(30))
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    is_current: Mapped[bool] = mapped_column(Boolean, default=True, server_default=sa_true())

    reviewer: Mapped[User] = relationship(lazy="joined")
    candidate: Mapped[SearchCandidate | None] = relationship(lazy="joined")


class CaseFaceDecision(Base):
    """A person's decision on two faces of one case: the same person (``same``, a
    must-link) or different people (``different``, a cannot-link). Every grouping of
    the case obeys the decisions in force; a decision is revoked (with a note), never
    deleted, so the case record shows what was decided and undone."""

    __tablename__ = "case_face_decision"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case_file.id"), index=True)
    face_a: Mapped[int] = mapped_column(ForeignKey("probe_face.id"))
    face_b: Mapped[int] = mapped_column(ForeignKey("probe_face.id"))
    decision: Mapped[str] = mapped_column(String(20))
    note: Mapped[str] = mapped_column(Text, default="")
    decided_by: Mapped[int] = mapped_column(ForeignKey("app_user.id"))
    decided_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_by: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoke_note: Mapped[str] = mapped_column(Text, default="")

    decider: Mapped[User] = relationship(foreign_keys=[decided_by], lazy="joined")


class Identification(Base):
    """The confirmation that identifies one person of a case: a candidate two reviewers
    agreed on, confirmed by a primary identifier. The person is the searched face of the
    candidate's search (``probe_id``, ``face_index``): one probe face, or the template of
    an unknown person grouped from several faces. A case of several unknown persons (a
    mass-casualty event) records one identification per person; the first makes the
    case "identified"."""

    __tablename__ = "identification"
    __table_args__ = (
        UniqueConstraint("case_id", "probe_id", "face_index", name="uq_identification_person"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case_file.id"), index=True)
    candidate_id: Mapped[int] = mapped_column(ForeignKey("search_candidate.id"))
    probe_id: Mapped[int] = mapped_column(ForeignKey("probe.id"))
    face_index: Mapped[int] = mapped_column(Integer)
    primary_identifier: Mapped[str] = mapped_column(String(40))
    evidence: Mapped[str] = mapped_column(Text)
    recorded_by: Mapped[int] = mapped_column(ForeignKey("app_user.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    candidate: Mapped[SearchCandidate] = relationship(lazy="joined")
    recorder: Mapped[User] = relationship(lazy="joined")


class Contact(Base):
    """A next-of-kin contact for an identified case."""

    __tablename__ = "contact"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case_file.id"), index=True)
    name: Mapped[str] = mapped_column(String(300))
    relationship_: Mapped[str] = mapped_column("relationship", String(100), default="")
    details: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[int] = mapped_column(ForeignKey("app_user.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Notification(Base):
    """A notification made through an official channel; facetrace only records it."""

    __tablename__ = "notification"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case_file.id"), index=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contact.id"), nullable=True)
    channel: Mapped[str] = mapped_column(String(200))
    notified_on: Mapped[date] = mapped_column(Date)
    by_user: Mapped[int] = mapped_column(ForeignKey("app_user.id"))
    outcome: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    contact: Mapped[Contact | None] = relationship(lazy="joined")
    user: Mapped[User] = relationship(lazy="joined")


class AuditEntry(Base):
    """One line of the append-only audit log.

    ``hash`` is HMAC-SHA256 under the audit key (plain SHA-256 for entries written
    before the log was keyed) over ``prev_hash`` and the canonical JSON of the other
    fields; ``at`` and ``detail`` are stored as the exact text that was hashed.
    """

    __tablename__ = "audit_entry"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, unique=True)
    at: Mapped[str] = mapped_column(String(40))
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(60), index=True)
    target: Mapped[str] = mapped_column(String(300), default="")
    detail: Mapped[str] = mapped_column(Text, default="{}")
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditCover(Base):
    """A photo or probe that a recent audit entry lists (``kind`` ``photo`` or ``probe``,
    ``ref_id`` its id, ``seq`` the entry, ``at`` its time), written with the entry: the
    images a page shows are covered by the page's entry, found by one indexed lookup
    (``facetrace.service.audit.covered``) instead of reading recent entries. Derived from
    the log and outside its chain, so only a pointer: ``covered`` trusts the entry it
    names (MAC, actor, action, listed ids), never the row. Rows older than the cover
    window are deleted."""

    __tablename__ = "audit_cover"
    __table_args__ = (Index("ix_audit_cover_lookup", "actor", "kind", "ref_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    actor: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(10))
    ref_id: Mapped[int] = mapped_column(Integer)
    seq: Mapped[int] = mapped_column(Integer)
    at: Mapped[str] = mapped_column(String(40), index=True)


class AuditHead(Base):
    """A single row holding the newest sequence number and hash. Appends lock it, which
    serialises them, and ``verify`` compares it with the last entry to catch a deleted
    or appended tail. ``keyed_from`` is the first keyed entry (None until the log is
    sealed), ``key_id`` the fingerprint of the key, and ``mac`` the key's HMAC over seq,
    hash and keyed_from, so the head cannot be rewritten without the key."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, default=0)
    hash: Mapped[str] = mapped_column(String(64))
    keyed_from: Mapped[int | None] = mapped_column(Integer, nullable=True)
    key_id: Mapped[str] = mapped_column(String(16), default="", server_default="")
    mac: Mapped[str] = mapped_column(String(64), default="", server_default="")


class ImportJobRow(Base):
    """One import into a collection, kept in SQL so it outlives the process that ran it.

    ``state`` is queued, running, done, failed, cancelled or interrupted (the service
    stopped while it was queued or running; it can be resumed). The counters are written
    in each committed batch's transaction, so they never run ahead of the gallery.
    ``upload_bytes`` is what the job holds on disk until it ends (the department quota).
    """

    __tablename__ = "import_job"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collection.id"), index=True)
    department_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    username: Mapped[str] = mapped_column(String(100))
    filename: Mapped[str] = mapped_column(String(300), default="")
    source: Mapped[str] = mapped_column(Text, default="")  # folder or manifest, in the job folder
    root: Mapped[str] = mapped_column(Text, default="")  # every photo must lie under it
    state: Mapped[str] = mapped_column(String(16), index=True, default="queued")
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    runs: Mapped[int] = mapped_column(Integer, default=0)
    batches: Mapped[int] = mapped_column(Integer, default=0)
    done: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[int] = mapped_column(Integer, default=0)
    photos_added: Mapped[int] = mapped_column(Integer, default=0)
    faces_added: Mapped[int] = mapped_column(Integer, default=0)
    already_present: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    skipped_files: Mapped[list[Any]] = mapped_column(JSON, default=list)
    problems: Mapped[list[Any]] = mapped_column(JSON, default=list)
    error: Mapped[str] = mapped_column(Text, default="")
    upload_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class VideoJobRow(Base):
    """One probe video's analysis, kept in SQL so it outlives the process that ran it.

    ``state`` is queued, running, done (``probe_id`` is the stored probe, written in the
    probe's own transaction), failed, cancelled, or interrupted (the service stopped while
    it was queued or running: its upload is deleted at the next start and nothing of the
    video is kept; it is uploaded again to start over). Progress (``video_s`` of
    ``duration_s``, sampled frames per second, seconds left) is written about once a second.
    """

    __tablename__ = "video_job"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case_file.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"))
    username: Mapped[str] = mapped_column(String(100))
    filename: Mapped[str] = mapped_column(String(300), default="")
    state: Mapped[str] = mapped_column(String(16), index=True, default="queued")
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    duration_s: Mapped[float] = mapped_column(Float, default=0.0)
    video_s: Mapped[float] = mapped_column(Float, default=0.0)
    fps: Mapped[float] = mapped_column(Float, default=0.0)
    eta_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    error: Mapped[str] = mapped_column(Text, default="")
    persons: Mapped[int] = mapped_column(Integer, default=0)
    probe_id: Mapped[int | None] = mapped_column(ForeignKey("probe.id"), nullable=True)
    upload_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
