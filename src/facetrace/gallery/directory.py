"""A gallery: one data directory holding the SQL store and the vector index, kept consistent.

SQL is the source of truth. Every write commits to SQL first and then touches
the index; the index is saved from time to time and on close. On open the
index is compared with SQL and repaired (faces added or removed, group tags
corrected), so a crash at any moment loses nothing and duplicates nothing.

Each indexed face carries its collection's SQL id as its index *group*, so a search
restricted to collections (``--collection``, a department's scope) is a group
filter applied inside the index, whatever the number of faces in those collections.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from sqlalchemy.orm import Session

from facetrace.calibration import (
    Calibration,
    ModeChoice,
    TemplateCalibration,
    choose_mode,
    packaged_calibration,
    packaged_template_calibration,
)
from facetrace.config import ModePolicy, PipelineOptions, ScoreKind, SearchMode
from facetrace.engine import FacePipeline
from facetrace.errors import (
    DeletedPhoto,
    FaceIndexError,
    IndexUnavailable,
    LowQualityFace,
    ModelMismatch,
    NoFaceFound,
    ReadOnlyGallery,
)
from facetrace.gallery import templates
from facetrace.gallery.peek import INDEX_FILE, INDEX_STATE_KEY
from facetrace.index import batch_threads, use_search_threads
from facetrace.index.base import (
    RemoteIndex,
    Selector,
    VectorIndex,
    index_group_counts,
    index_health,
    index_id_groups_in,
    index_present,
)
from facetrace.index.factory import canonical_kind, choose_kind, load_index, make_index
from facetrace.index.faiss_ann import auto_nlist
from facetrace.index.persist import is_manifest, read_manifest
from facetrace.rwlock import RWLock
from facetrace.scoring.asnorm import Cohort, cohort_bytes, read_cohort
from facetrace.store import repo
from facetrace.store import templates as stored_templates
from facetrace.store.db import Database, sqlite_url, transaction
from facetrace.types import Face
from facetrace.vision.descriptors import dlib_descriptor
from facetrace.vision.detect import main_face
from facetrace.vision.models import ModelDescriptor

log = logging.getLogger(__name__)

DeleteKind = Literal["subject", "photo", "collection"]

#: set in gallery_meta once SQL's templates were compared with its faces
TEMPLATES_CHECKED_KEY = "templates_checked"
#: a background rebuild's progress, for other processes (``facetrace index status``)
REBUILD_STATUS_FILE = "index.rebuild.json"
SAVE_EVERY_S = 30.0
REBUILD_CHUNK = 100_000


@dataclass(frozen=True, slots=True)
class TemplateMatch:
    """A candidate's template that scored above its best single face: its raw cosine
    (``Candidate.score`` is that cosine on the single-face scale: the face score with the
    same estimated false-match rate) and the faces it averages."""

    cosine: float
    n_faces: int
    face_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Candidate:
    """One gallery subject proposed for a probe face, best face first.

    ``false_match_rate`` is the estimated chance that a random different person
    scores at least this high against one reference face; ``gallery_fpir`` is
    the chance that a gallery of this size holds such a person at all.
    """

    rank: int
    score: float
    false_match_rate: float
    gallery_fpir: float
    above_threshold: bool
    info: repo.FaceInfo
    cosine: float | None = None  # the raw cosine when ``score`` is AS-norm on its scale
    template: TemplateMatch | None = None  # set when the subject's template scored best

    @property
    def matched_by(self) -> str:
        """``template`` when the subject's template gave the score, else ``face``."""
        return "face" if self.template is None else "template"

    def as_dict(self) -> dict[str, Any]:
        i = self.info
        t = self.template
        return {
            "rank": self.rank,
            "score": round(self.score, 4),
            "cosine": round(self.score if self.cosine is None else self.cosine, 4),
            "matched_by": self.matched_by,
            "template": None
            if t is None
            else {"faces": t.n_faces, "cosine": round(t.cosine, 4), "face_ids": list(t.face_ids)},
            "false_match_rate": self.false_match_rate,
            "gallery_fpir": self.gallery_fpir,
            "above_threshold": self.above_threshold,
            "subject": {"id": i.subject_external_id, "name": i.subject_name},
            "face_id": i.face_id,
            "photo": {"id": i.photo_id, "sha256": i.photo_sha256, "path": i.photo_path},
            "box": list(i.box),
            "provenance": asdict(i.provenance),
        }


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """The search result for one face of the probe photo. In the identification mode
    ``candidates`` are the subjects at or above ``threshold``; in the investigation mode
    they are the ``k`` most similar, whatever their score (``threshold`` is then the
    identification threshold, for reference, and ``below_threshold`` is empty)."""

    face_index: int
    face: Face
    threshold: float
    candidates: tuple[Candidate, ...]
    below_threshold: tuple[Candidate, ...] = ()
    mode: ModeChoice | None = None

    @property
    def no_candidate(self) -> bool:
        """True when the answer lists nobody: no subject reaches the threshold
        (identification), or the gallery has nobody to list (investigation)."""
        return not self.candidates

    def as_dict(self) -> dict[str, Any]:
        q = self.face.quality
        return {
            "face_index": self.face_index,
            "box": self.face.detection.box.as_list(),
            "detector_score": round(self.face.detection.score, 4),
            "quality": q.score,
            "quality_reasons": [str(r) for r in q.reasons],
            "mode": None if self.mode is None else str(self.mode.mode),
            "mode_choice": None if self.mode is None else self.mode.as_dict(),
            "threshold": round(self.threshold, 4),
            "no_candidate": self.no_candidate,
            "candidates": [c.as_dict() for c in self.candidates],
            "below_threshold": [c.as_dict() for c in self.below_threshold],
        }


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """A 1:1 comparison: score, decision at the model's threshold, estimated FMR."""

    score: float
    threshold: float
    same: bool
    false_match_rate: float
    quality_a: float
    quality_b: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "score": round(self.score, 4),
            "threshold": self.threshold,
            "decision": "same" if self.same else "different",
            "false_match_rate": self.false_match_rate,
            "quality_a": self.quality_a,
            "quality_b": self.quality_b,
        }


@dataclass(slots=True)
class AddResult:
    """What :meth:`Gallery.add_photo` did."""

    photo_id: int | None
    face_ids: list[int] = field(default_factory=list)
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class NewPhoto:
    """A photo for :meth:`Gallery.add_photos`: its hash, size, faces and record (subject,
    provenance, path)."""

    sha256: str
    width: int
    height: int
    faces: Sequence[Face]
    subject_face: int | None
    record: repo.PhotoRecord


class Gallery:
    """The data directory: SQL metadata + vector index + the face pipeline."""

    def __init__(
        self,
        data_dir: Path,
        *,
        database_url: str | None = None,
        pipeline: PipelineOptions | None = None,
        index_kind: str = "auto",
        index_params: dict[str, Any] | None = None,
        database: Database | None = None,
        rebuild_in_background: bool = False,
        read_only: bool = False,
    ) -> None:
        self.data_dir = Path(data_dir)
        # a reader (a CLI search while the service owns the directory) repairs its copy
        # of the index in memory and never writes the index file or the gallery's SQL
        self.read_only = read_only
        self.index_kind = index_kind
        self._background = rebuild_in_background and not read_only
        # Searches read the index on the shared side of ``_rw``; a change to it (an
        # import batch's faces, a delete, the switch to a rebuilt index) takes the
        # exclusive side for that step only. ``_writes`` orders the writers and the
        # saves among themselves without holding searches back: a save only reads.
        self._rw = RWLock()
        self._writes = threading.RLock()
        self._temporary = False  # serving an exact stand-in while the real index builds
        self._rebuilder: threading.Thread | None = None
        self._closed = False
        self.rebuild: dict[str, Any] | None = None  # progress of a background rebuild
        self.index_params = dict(index_params or {})
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._owns_database = database is None
        if database is None:
            database = Database.open(
                database_url or sqlite_url(self.data_dir), upgrade=not read_only
            )
        self.database = database
        self.database_url = database.url
        self.engine = database.engine
        self.sessions = database.sessions  # may write: transaction(self.sessions)
        self.reads = database.reads  # only reads: never waits for a writer on SQLite
        options = pipeline or PipelineOptions()
        if options.cache_dir is None:
            options = replace(options, cache_dir=self.data_dir / "models")
        self.pipeline = FacePipeline(options)
        self.descriptor: ModelDescriptor = self.pipeline.descriptor
        self._calibration_cache: tuple[Any, Calibration] | None = None
        self._check_model()
        self.index_path = self.data_dir / INDEX_FILE
        self.index: VectorIndex = self._open_index()
        self._unsaved = 0
        self._last_save = time.monotonic()
        self._watermark = 0  # the highest face id this process knows to be in the index
        self.last_repair: dict[str, Any] = {}
        # subject templates: SQL rows kept with the faces, searched from memory
        # (facetrace.gallery.templates says why)
        self.templates = templates.TemplateIndex(self.descriptor.dim)
        self.repair()
        if self._pending_rebuild is not None:
            self._start_rebuild(*self._pending_rebuild)

    @classmethod
    def open(
        cls,
        data_dir: Path,
        *,
        database_url: str | None = None,
        pipeline: PipelineOptions | None = None,
        index_kind: str = "auto",
        index_params: dict[str, Any] | None = None,
        database: Database | None = None,
        rebuild_in_background: bool = False,
        read_only: bool = False,
    ) -> Gallery:
        """Open (creating if needed) the gallery in ``data_dir``.

        ``index_kind`` (a recipe of :mod:`facetrace.index.factory`) applies when the
        index is created, with ``index_params`` (e.g. a Milvus ``uri``); an existing
        index keeps its kind until ``rebuild_index``. ``database`` is an open
        :class:`~facetrace.store.db.Database` to share (the service's); without it the
        gallery opens its own on ``database_url`` (default: SQLite in ``data_dir``)
        and closes it with itself. A ``read_only`` gallery never writes: its index is
        repaired from SQL in memory only, never saved, and every write is refused
        (:class:`~facetrace.errors.ReadOnlyGallery`); it may run beside the directory's
        owner (see :mod:`facetrace.gallery.owner`).
        """
        return cls(
            data_dir,
            database_url=database_url,
            pipeline=pipeline,
            index_kind=index_kind,
            index_params=index_params,
            database=database,
            rebuild_in_background=rebuild_in_background,
            read_only=read_only,
        )

    def __enter__(self) -> Gallery:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Save the index if it changed, release the index's connection and the database.

        A background rebuild still running is abandoned (nothing of it is saved; the
        next open starts it again)."""
        with self._writes:
            self._closed = True
            if self._unsaved and not self.read_only:
                self.save_index()
        close = getattr(self.index, "close", None)  # Milvus: its client (Lite: a file lock)
        if close is not None:
            close()
        if self._owns_database:
            self.database.dispose()

    # -- consistency -------------------------------------------------------

    def _check_model(self) -> None:
        if self.read_only:
            with self.reads() as s:
                stored = repo.get_meta(s, "model_id")
            if stored is not None and stored != self.descriptor.model_id:
                raise self._mismatch(stored)
            return
        with transaction(self.sessions) as s:
            stored = repo.get_meta(s, "model_id")
            if stored is None:
                repo.set_meta(s, key="model_id", value=self.descriptor.model_id)
                repo.set_meta(s, key="dim", value=self.descriptor.dim)
            elif stored != self.descriptor.model_id:
                raise self._mismatch(stored)

    def _mismatch(self, stored: Any) -> ModelMismatch:
        known = isinstance(stored, str) and dlib_descriptor(stored) is not None
        hint = (
            f"set FACETRACE_PIPELINE__MODEL={stored} to search it with its own model, "
            "or re-ingest it into another data directory"
            if known
            else "use another data directory or re-ingest"
        )
        return ModelMismatch(
            f"the gallery in {self.data_dir} holds vectors of model {stored!r}; "
            f"the configured model is {self.descriptor.model_id!r}. A gallery never "
            f"mixes models: {hint}."
        )

    def _writable(self, what: str) -> None:
        """Refuse ``what`` on a gallery opened read-only."""
        if self.read_only:
            raise ReadOnlyGallery(f"{self.data_dir}: the gallery was opened read-only; {what}")

    def _saved_kind(self) -> str | None:
        """The kind recorded in the index file, None if there is none or it is unreadable."""
        try:
            if not self.index_path.exists() or not is_manifest(self.index_path):
                return None
            return str(read_manifest(self.index_path).get("kind"))
        except IndexUnavailable:
            return None

    def _open_index(self) -> VectorIndex:
        saved = self._saved_kind()
        try:
            wanted = None if self.index_kind == "auto" else canonical_kind(self.index_kind)[0]
        except IndexUnavailable:
            wanted = None  # an unknown recipe fails where it is used: building a new index
        if self.index_path.exists():
            if wanted is not None and wanted != (saved or "flat"):
                log.warning(
                    "the data directory holds a %s index; index kind %s applies to a new "
                    "index only (facetrace index rebuild, or remove %s to start afresh)",
                    saved or "flat",
                    self.index_kind,
                    self.index_path,
                )
            extra: dict[str, Any] = {}
            if saved == "milvus":  # reopened with what is configured now (token, URI...)
                keep = self.index_params if wanted == "milvus" else ("token",)
                extra = {k: v for k, v in self.index_params.items() if k in keep}
            try:
                return load_index(self.index_path, self.descriptor.dim, **extra)
            except IndexUnavailable:
                if saved == "milvus":
                    raise  # the collection lives on a server: say why, never rebuild over it
                log.warning("index %s unreadable; rebuilding it from SQL", self.index_path)
        with self.reads() as s:
            n_faces = repo.searchable_total(s)
            state = repo.get_meta(s, INDEX_STATE_KEY)
        kind = choose_kind(n_faces) if self.index_kind == "auto" else self.index_kind
        lost = state.get("kind") if isinstance(state, dict) else None
        if self.index_kind == "auto" and lost in ("hnsw", "ivf-sq8"):
            kind = str(lost)  # a lost index comes back as the kind it was, not a new pick
        if self._background and n_faces and canonical_kind(kind)[0] not in ("flat", "milvus"):
            # a graph or IVF build takes minutes (~8 at 1M HNSW on 2 cores): serve exact
            # search from a copy of the vectors now, build the real index behind it
            self._pending_rebuild = (kind, n_faces, dict(self.index_params))
            self._temporary = True
            log.warning(
                "index %s missing: serving exact search while a %s index of %d faces "
                "is built in the background",
                self.index_path,
                kind,
                n_faces,
            )
            return self._build_index("flat", n_faces=n_faces)
        return self._build_index(kind, n_faces=n_faces, **self.index_params)

    _pending_rebuild: tuple[str, int, dict[str, Any]] | None = None

    def _start_rebuild(self, kind: str, n_faces: int, params: dict[str, Any]) -> None:
        self._pending_rebuild = None
        now = time.time()
        self.rebuild = {
            "state": "building",
            "kind": kind,
            "done": 0,
            "total": n_faces,
            "serving": "flat (exact search)",
            "started_at": now,
            "started": datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds"),
        }
        self._write_rebuild_status()
        self._rebuilder = threading.Thread(
            target=self._rebuild_in_background,
            args=(kind, n_faces, params),
            name="facetrace-index-rebuild",
            daemon=True,
        )
        self._rebuilder.start()

    def _write_rebuild_status(self) -> None:
        """The rebuild's progress for other processes (``facetrace index status``)."""
        if self.rebuild is None:
            return
        path = self.data_dir / REBUILD_STATUS_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({**self.rebuild, "pid": os.getpid()}))
        tmp.replace(path)

    def _rebuild_progress(self, done: int, total: int) -> None:
        if self.rebuild is not None:
            self.rebuild.update(done=done, total=total)
            self._write_rebuild_status()

    def _rebuild_in_background(self, kind: str, n_faces: int, params: dict[str, Any]) -> None:
        """Build the real index from SQL, catch up with the writes made meanwhile, switch."""
        assert self.rebuild is not None
        try:
            with self.reads() as s:
                snapshot = repo.max_face_id(s)
            new = self._build_index(
                kind, n_faces=n_faces, progress=self._rebuild_progress, **params
            )
            with self._writes, self.reads() as s:
                if self._closed:
                    raise IndexUnavailable("the gallery was closed during the rebuild")
                # faces added while it was built, and deletes logged meanwhile
                fresh = repo.searchable_after(s, snapshot)[0]
                missing = fresh[~index_present(new, fresh)]
                if missing.size:
                    got = repo.index_entries(s, missing, self.descriptor.dim)
                    new.add(got.ids, got.vectors, got.groups)
                pending = repo.pending_deletes(s)
                if pending:
                    new.remove(pending)
                with self._rw.write():
                    self.index = new
                    self._temporary = False
                self.save_index()
            self.rebuild.update(
                state="done",
                done=int(new.count),
                serving=str(new.settings().get("kind")),
                caught_up=int(missing.size),
                seconds=round(time.time() - float(self.rebuild["started_at"]), 1),
            )
            log.info("background rebuild done: %s", self.rebuild)
        except Exception as exc:  # keep serving exact search, and say why
            log.exception("background index rebuild failed")
            self.rebuild.update(state="failed", error=f"{type(exc).__name__}: {exc}")
        self._write_rebuild_status()

    def wait_rebuilt(self, timeout: float | None = None) -> bool:
        """Wait for a background rebuild to finish; True if none is running any more."""
        thread = self._rebuilder
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True

    def _build_index(
        self,
        kind: str,
        *,
        n_faces: int,
        progress: Callable[[int, int], None] | None = None,
        **params: Any,
    ) -> VectorIndex:
        """A new index of recipe ``kind`` filled with every searchable face in SQL;
        ``progress(done, total)`` is called after every chunk of faces."""
        resolved = choose_kind(n_faces) if kind == "auto" else kind
        index = make_index(resolved, self.descriptor.dim, **params)
        log.info("building a %s index of %d faces from SQL", resolved, n_faces)
        with self.reads() as s, batch_threads():
            truth = repo.searchable_ids(s)
            train = getattr(index, "train", None)
            if train is not None and truth.size:
                # an IVF index learns its lists from a random sample, not the first chunk
                rng = np.random.default_rng(0)
                size = min(truth.size, 64 * auto_nlist(truth.size))
                sample = rng.choice(truth, size=size, replace=False)
                vecs = repo.vectors_for(s, np.sort(sample), self.descriptor.dim)[1]
                train(vecs, n_total=int(truth.size))
            for start in range(0, truth.size, REBUILD_CHUNK):
                got = repo.index_entries(
                    s, truth[start : start + REBUILD_CHUNK], self.descriptor.dim
                )
                index.add(got.ids, got.vectors, got.groups)
                if progress is not None:
                    progress(min(start + REBUILD_CHUNK, int(truth.size)), int(truth.size))
        return index

    def rebuild_index(self, kind: str = "auto", **params: Any) -> dict[str, Any]:
        """Replace the index by a new one of recipe ``kind`` built from SQL; returns its settings.

        The new index is saved atomically over the old one only once complete, so an
        interrupted rebuild leaves the previous index in place.
        """
        self._writable("the index is rebuilt by the directory's owner")
        if kind.strip().lower() == "milvus":
            raise IndexUnavailable(
                "a Milvus collection is not rebuilt in place: drop it with Milvus's tools and "
                "reopen the gallery, which refills it from SQL"
            )
        with self.reads() as s:
            n_faces = repo.searchable_total(s)
            pending = repo.pending_deletes(s)
            top = repo.max_face_id(s)
        index = self._build_index(kind, n_faces=n_faces, **params)
        with self._writes:
            index.save(self.index_path)
            with self._rw.write():
                self.index = index
            self._watermark = top
            self._record_save(pending)
        log.info("index rebuilt as %s with %d faces", index.settings().get("kind"), index.count)
        return index.settings()

    # -- repair on open ----------------------------------------------------

    def _index_stamp(self) -> list[int] | None:
        """What identifies the saved index file: its modification time (ns) and size."""
        try:
            st = self.index_path.stat()
        except OSError:
            return None
        return [st.st_mtime_ns, st.st_size]

    def _record_save(self, confirmed: list[int]) -> None:
        """After a save: note which index file holds what (the watermark) and forget the
        logged deletes it now holds durably (``confirmed``, read before the save)."""
        with transaction(self.sessions) as s:
            repo.set_meta(
                s,
                key=INDEX_STATE_KEY,
                value={
                    "stamp": self._index_stamp(),
                    "watermark": self._watermark,
                    "kind": self.index.settings().get("kind"),
                },
            )
            if confirmed:
                repo.confirm_pending_deletes(s, face_ids=confirmed)
        self._unsaved = 0
        self._last_save = time.monotonic()

    def repair(self) -> dict[str, Any]:
        """Bring the index in line with SQL on open, reading only what changed.

        SQL keeps, for the saved index file, a *watermark* (every searchable face up to
        that id is in it) and the deletes it has not confirmed. So the repair removes
        the logged deletes, adds the faces above the watermark that the index lacks,
        and then checks the searchable faces per collection: the counts SQL keeps with
        every write (``collection_face_count``, one row per collection) against the
        index's counts. Only collections whose counts differ are compared
        id by id; without a usable record (first open, an index file written by
        something else, a count that matches no collection) the full
        :meth:`reconcile` runs. What the watermark repair changed is saved like any
        other write (periodically, or at close), not during the open. Returns what was
        done, also kept in ``last_repair``.
        """
        start = time.perf_counter()
        if self.read_only and isinstance(self.index, RemoteIndex):
            # the collection lives on a server its owner keeps in step: a reader never
            # writes to it
            self.last_repair = {
                "mode": "none (read-only, remote index)",
                "templates": self.repair_templates(),
            }
            return self.last_repair
        with self.reads() as s:
            state = repo.get_meta(s, INDEX_STATE_KEY)
        with self._writes:
            if not isinstance(state, dict) or state.get("stamp") != self._index_stamp():
                done: dict[str, Any] = {"mode": "full", **self.reconcile()}
            else:
                done = {"mode": "watermark", **self._repair_from(int(state.get("watermark", 0)))}
        done["templates"] = self.repair_templates()
        done["seconds"] = round(time.perf_counter() - start, 3)
        self.last_repair = done
        log.info("index repair on open: %s", done)
        return done

    def repair_templates(self) -> dict[str, int]:
        """Recompute the subject templates SQL holds out of step with its faces, then
        bring the in-memory template index in line with SQL. A read-only gallery only loads.

        Every write keeps SQL's templates in step with its faces in its own transaction,
        so only a gallery that predates templates (or was written by a version without
        them, which never records :data:`TEMPLATES_CHECKED_KEY`) can be out of step:
        the comparison, one grouped query over every face, runs once per gallery, not
        at every open (0.6 s at 100k faces)."""
        done = {"subjects": 0, "templates": 0}
        if not self.read_only:
            with self.reads() as s:
                checked = repo.get_meta(s, TEMPLATES_CHECKED_KEY) is not None
            if not checked:
                with transaction(self.sessions) as s:
                    done = templates.repair(s)
                    repo.set_meta(s, key=TEMPLATES_CHECKED_KEY, value=True)
        self.sync_templates()
        return done

    def sync_templates(self) -> dict[str, int]:
        """Catch the in-memory template index up with SQL's templates (a cheap check when
        nothing changed; another process's merge or import is picked up here)."""
        with self.reads() as s:
            return self.templates.sync(s)

    def _repair_from(self, watermark: int) -> dict[str, Any]:
        dim = self.descriptor.dim
        with self.reads() as s:
            pending = repo.pending_deletes(s)
            with self._rw.write():
                removed = self.index.remove(pending) if pending else 0
            # faces above the watermark (face ids are never reused, migration 0020), and
            # logged deletes whose id SQLite gave to a new face before 0020: add those
            # the index lacks
            fresh = np.union1d(
                repo.searchable_after(s, watermark)[0], repo.searchable_among(s, pending)
            )
            missing = fresh[~index_present(self.index, fresh)]
            if missing.size:
                got = repo.index_entries(s, missing, dim)
                with self._rw.write():
                    self.index.add(got.ids, got.vectors, got.groups)
            sql_counts = repo.stored_searchable_counts(s)  # one row per collection
            self._watermark = max(watermark, repo.max_face_id(s))
        done: dict[str, Any] = {"added": int(missing.size), "removed": int(removed)}
        wrong = self._groups_out_of_step(sql_counts)
        if wrong is None:
            log.warning("index counts match no collection of SQL; comparing every face")
            full = self.reconcile()
            done.update(full, mode_fallback="full")
        elif wrong:
            fixed = self.reconcile(groups=wrong)
            done.update(
                {k: done.get(k, 0) + v for k, v in fixed.items()}, collections_compared=len(wrong)
            )
        if missing.size or removed or pending or wrong or wrong is None:
            # held in memory like any write, saved by the next periodic save or at close
            # (a repair that only compared collections id by id changed the index too):
            # a FAISS save rewrites the whole file (~6 s at 1M faces here) and a Milvus
            # one flushes the server's segments (~3 s), whatever the size of the repair.
            # A crash before that save repeats the same repair on the next open.
            self._unsaved += int(missing.size) + len(pending) or 1
        return done

    def _groups_out_of_step(self, sql_counts: dict[int, int]) -> list[int] | None:
        """Collections whose searchable face count differs between SQL and the index
        (``None``: the index holds faces of collections SQL does not know)."""
        total = int(self.index.count)
        if isinstance(self.index, RemoteIndex) and total == sum(sql_counts.values()):
            return []  # a count per collection would be one query each: only on a mismatch
        groups = np.asarray(sorted(sql_counts), dtype=np.int64)
        have = index_group_counts(self.index, groups)
        want = np.asarray([sql_counts[int(g)] for g in groups], dtype=np.int64)
        if total != int(have.sum()):
            return None
        return [int(g) for g in groups[have != want]]

    def reconcile(self, groups: Iterable[int] | None = None) -> dict[str, int]:
        """Make the index hold exactly the searchable faces in SQL, each tagged with its
        collection; returns what changed. ``groups`` (collection ids) limits the
        comparison to those collections' faces.

        Handles an index behind SQL (faces added), ahead of it (faces removed), faces
        with a wrong or unknown group (retagged: an index saved before faces carried
        groups has every group unknown) and, should one ever appear, a face indexed
        twice (all copies removed, then added once).
        """
        with self._writes:
            return self._reconcile(groups)

    def _reconcile(self, groups: Iterable[int] | None) -> dict[str, int]:
        only = None if groups is None else sorted({int(g) for g in groups})
        with self.reads() as s:
            if only is None:
                truth, truth_groups = repo.searchable_groups(s)
                have, have_groups = self.index.id_groups()
            else:
                truth, truth_groups = repo.searchable_in_groups(s, only)
                have, have_groups = index_id_groups_in(self.index, np.asarray(only))
            uniq, counts = np.unique(have, return_counts=True)
            doubled = uniq[counts > 1]
            regroup = _wrong_groups(truth, truth_groups, have, have_groups, doubled)
            if doubled.size:
                with self._rw.write():
                    self.index.remove(int(i) for i in doubled)
                uniq = np.setdiff1d(uniq, doubled, assume_unique=True)
            missing = np.setdiff1d(truth, uniq, assume_unique=True)
            extra = np.setdiff1d(uniq, truth, assume_unique=True)
            if missing.size:
                got = repo.index_entries(s, missing, self.descriptor.dim)
                with self._rw.write():
                    self.index.add(got.ids, got.vectors, got.groups)
        with self._rw.write():
            if extra.size:
                self.index.remove(int(i) for i in extra)
            if regroup.size:
                self.index.set_groups(truth[regroup], truth_groups[regroup])
        if truth.size:
            self._watermark = max(self._watermark, int(truth.max()))
        self._check_counts(truth_groups, only)
        if only is None:
            with self.reads() as s:
                self._watermark = max(self._watermark, repo.max_face_id(s))
        changed = bool(missing.size or extra.size or regroup.size)
        if changed:
            log.warning(
                "index repaired from SQL: %d faces added, %d removed (%d were doubled), "
                "%d retagged with their collection",
                missing.size,
                extra.size,
                doubled.size,
                regroup.size,
            )
        if changed or only is None:  # a full pass also records the file it checked
            self.save_index()
        return {
            "added": int(missing.size),
            "removed": int(extra.size),
            "regrouped": int(regroup.size),
        }

    def _check_counts(self, truth_groups: npt.NDArray[np.int64], only: list[int] | None) -> None:
        """Correct SQL's kept counts of the collections just compared id by id if they
        differ from the faces found (faces written while the triggers were missing):
        otherwise every open would compare those collections again."""
        if self.read_only:
            return
        values, counts = np.unique(truth_groups, return_counts=True)
        found = {int(g): int(n) for g, n in zip(values, counts, strict=True)}
        with self.reads() as s:
            kept = repo.stored_searchable_counts(s)
        if only is not None:
            kept = {g: n for g, n in kept.items() if g in only}
        if kept == found:
            return
        with transaction(self.sessions) as s:
            changed = repo.recount_searchable(s, groups=only)
        if changed:
            log.warning("kept face counts corrected from SQL's faces: %s", changed)

    def save_index(self) -> None:
        """Persist the index atomically, then record in SQL what the saved file holds.

        The exact stand-in served during a background rebuild is never saved: a crash
        then leaves no index file, and the next open starts the rebuild again.
        """
        with self._writes:  # no writer changes the index meanwhile; searches go on
            if self._temporary or self.read_only:  # a reader's copy is never saved
                self._unsaved = 0
                self._last_save = time.monotonic()
                return
            with self.reads() as s:
                pending = repo.pending_deletes(s)  # removed from the index before this save
            self.index.save(self.index_path)
            self._record_save(pending)

    def _maybe_save(self) -> None:
        with self._writes:
            if self._unsaved and time.monotonic() - self._last_save > SAVE_EVERY_S:
                self.save_index()

    # -- writes ------------------------------------------------------------

    def add_photo(
        self,
        *,
        sha256: str,
        width: int,
        height: int,
        faces: Sequence[Face],
        subject_face: int | None,
        record: repo.PhotoRecord,
        allow_deleted: bool = False,
    ) -> AddResult:
        """Store a photo with all its faces; the subject face goes into the index.

        A photo already stored (same SHA-256) is left alone (``duplicate``); a
        deleted one raises :class:`DeletedPhoto` unless ``allow_deleted``.
        """
        result = self.add_photos(
            [NewPhoto(sha256, width, height, faces, subject_face, record)],
            allow_deleted=allow_deleted,
        )[0]
        if isinstance(result, DeletedPhoto):
            raise result
        return result

    def add_photos(
        self,
        photos: Sequence[NewPhoto],
        *,
        allow_deleted: bool = False,
        in_transaction: Callable[[Session, list[AddResult | DeletedPhoto]], None] | None = None,
    ) -> list[AddResult | DeletedPhoto]:
        """Store a batch of photos in one transaction, then index their subject faces in
        one step (searchable from then on): :meth:`add_photo` for many, without a commit
        and an index write per photo. A photo already stored (same SHA-256, also twice in
        the batch) gives a ``duplicate`` result; a deleted one a :class:`DeletedPhoto`
        (unless ``allow_deleted``), the others are stored all the same.
        ``in_transaction(session, results)`` runs inside the batch's transaction (an
        import's progress and audit entry commit with its photos, or not at all)."""
        self._writable("photos are added by the directory's owner")
        for photo in photos:
            for face in photo.faces:
                if face.model_id != self.descriptor.model_id:
                    raise ModelMismatch(
                        f"face of model {face.model_id!r} offered to a gallery of "
                        f"{self.descriptor.model_id!r}"
                    )
            if photo.subject_face is not None and not 0 <= photo.subject_face < len(photo.faces):
                n = len(photo.faces)
                raise FaceIndexError(f"subject face {photo.subject_face} of {n} faces")
        results: list[AddResult | DeletedPhoto] = []
        indexed: list[tuple[int, Any, int]] = []
        touched: set[int] = set()  # subjects whose templates the batch changes
        with transaction(self.sessions) as s:
            shas = [p.sha256 for p in photos]
            present = repo.present_hashes(s, shas)
            tombstoned = repo.tombstoned_hashes(s, shas)
            slots: list[int] = []  # where each photo to store goes in ``results``
            to_store: list[repo.PhotoInsert] = []
            for photo in photos:
                if photo.sha256 in present:
                    results.append(AddResult(photo_id=None, duplicate=True))
                    continue
                if photo.sha256 in tombstoned:
                    if not allow_deleted:
                        results.append(
                            DeletedPhoto(
                                f"{photo.record.path or photo.sha256}: this photo was "
                                "deleted from the gallery; use allow_deleted to ingest it again"
                            )
                        )
                        continue
                    repo.clear_tombstone(s, sha256=photo.sha256)
                present.add(photo.sha256)
                slots.append(len(results))
                results.append(AddResult(photo_id=None))  # filled in below
                to_store.append(
                    repo.PhotoInsert(
                        sha256=photo.sha256,
                        width=photo.width,
                        height=photo.height,
                        record=photo.record,
                        faces=photo.faces,
                        subject_face=photo.subject_face,
                    )
                )
            stored = repo.insert_photos(s, photos=to_store)
            for slot, insert, (photo_id, rows) in zip(slots, to_store, stored, strict=True):
                indexed.extend(
                    (r.id, insert.faces[r.face_index].vector, r.collection_id)
                    for r in rows
                    if r.is_subject
                )
                touched.update(r.subject_id for r in rows if r.is_subject and r.subject_id)
                results[slot] = AddResult(photo_id=photo_id, face_ids=[r.id for r in rows])
            # the batch's subjects' templates commit with its faces, or not at all
            templates.refresh(s, touched)
            if in_transaction is not None:
                in_transaction(s, results)
        if indexed:
            self._add_indexed(indexed)
        if touched:
            self.sync_templates()
        return results

    def _add_indexed(self, indexed: list[tuple[int, Any, int]]) -> None:
        """Index a committed batch's faces: the one step a batch holds searches back."""
        ids = np.array([i for i, _, _ in indexed], dtype=np.int64)
        vectors = np.stack([v for _, v, _ in indexed]).astype(np.float32)
        groups = np.array([g for _, _, g in indexed], dtype=np.int64)
        with self._writes:
            with self._rw.write():
                self.index.add(ids, vectors, groups)
            self._watermark = max(self._watermark, int(ids.max()))
            self._unsaved += len(indexed)
            self._maybe_save()

    def forget(self, face_ids: Sequence[int]) -> int:
        """Drop deleted faces from the index; it is saved on the usual schedule and on close.

        Call it once SQL no longer holds them (after the deleting transaction commits),
        so an index saved before this (or a crash before the next save) is repaired on
        open: the faces never return. Saving here would rewrite a whole HNSW graph
        (0.9 GB at 1M) per delete. Returns the number of faces.
        """
        self._writable("faces are deleted by the directory's owner")
        ids = [int(i) for i in face_ids]
        with self._writes:
            with self._rw.write():
                self.index.remove(ids)
            self._unsaved += max(1, len(ids))
            self._maybe_save()
        self.sync_templates()  # the deleting transaction rewrote its subjects' templates
        return len(ids)

    @staticmethod
    def remove_rows(
        session: Session, *, kind: DeleteKind, target: str, collection: str | None = None
    ) -> list[int]:
        """Delete a subject (external id, of ``collection`` when given: the same id in two
        collections is two subjects), photo (id or SHA-256) or collection (name) in
        the caller's transaction, leaving tombstones; returns the face ids removed, for
        :meth:`forget` once that transaction has committed. Raises NotFound.

        The ids are also logged in that transaction as deletes the index has yet to
        confirm, so that the repair on open removes them even if :meth:`forget` never
        runs (a crash) or the index is not saved before one. The templates of the
        subjects that lose faces are rewritten in that transaction too."""
        if kind == "subject":
            touched = {repo.find_subject(session, target, collection).id}
            ids = repo.delete_subject(session, external_id=target, collection=collection)
        elif kind == "photo":
            touched = stored_templates.subjects_of_photo(session, target)
            ids = repo.delete_photo(session, photo=target)
        else:
            touched = stored_templates.subjects_of_collection(session, target)
            ids = repo.delete_collection(session, name=target)
        repo.log_pending_deletes(session, face_ids=ids)
        templates.refresh(session, touched)
        return ids

    def delete(self, kind: DeleteKind, target: str, collection: str | None = None) -> int:
        """:meth:`remove_rows` in a transaction of its own, then :meth:`forget`."""
        self._writable("deletions are made by the directory's owner")
        with transaction(self.sessions) as s:
            ids = self.remove_rows(s, kind=kind, target=target, collection=collection)
        return self.forget(ids)

    def delete_subject(self, external_id: str, collection: str | None = None) -> int:
        """Delete a subject's photos and faces (tombstoned); returns faces removed."""
        return self.delete("subject", external_id, collection)

    def delete_photo(self, photo: str) -> int:
        """Delete a photo by id or SHA-256 (tombstoned); returns faces removed."""
        return self.delete("photo", photo)

    def delete_collection(self, name: str) -> int:
        """Delete a whole collection (tombstoned); returns faces removed."""
        return self.delete("collection", name)

    # -- calibration -------------------------------------------------------

    def calibration(self) -> Calibration | None:
        """The gallery's own table if calibrated, else the packaged default for the model.

        The stored table is re-read on every call (another process may have
        recalibrated) but parsed only when it changed: searches call this.
        """
        with self.reads() as s:
            data = repo.get_meta(s, "calibration")
        if data is not None:
            if self._calibration_cache is None or self._calibration_cache[0] != data:
                self._calibration_cache = (data, Calibration.from_json(data))
            return self._calibration_cache[1]
        name = self.descriptor.calibration_name
        return packaged_calibration(name) if name else None

    def set_calibration(self, calibration: Calibration, *, key: str = "calibration") -> None:
        """Store a table measured on the operator's own labelled data (``key``
        ``calibration_asnorm`` for the AS-norm score's table)."""
        self._writable("the calibration is stored by the directory's owner")
        if calibration.model_id != self.descriptor.model_id:
            raise ModelMismatch(
                f"calibration of {calibration.model_id!r} for a gallery of "
                f"{self.descriptor.model_id!r}"
            )
        if key not in ("calibration", "calibration_asnorm"):
            raise ValueError(f"unknown calibration key {key!r}")
        with transaction(self.sessions) as s:
            repo.set_meta(s, key=key, value=calibration.to_json())

    # -- reads -------------------------------------------------------------

    def index_health(self) -> dict[str, Any]:
        """Whether searches can be answered now: the index's (or its server's) health,
        and a background rebuild's progress, for ``facetrace index status`` and the
        service's readiness. While a lost index is rebuilt, searches are answered (by
        exact search), so ``ok`` stays true and ``rebuild`` says how far it is."""
        with self._rw.read():
            out = {
                "kind": self.index.settings().get("kind", "unknown"),
                **index_health(self.index),
            }
        if self.rebuild is not None:
            out["rebuild"] = dict(self.rebuild)
        return out

    def status(self) -> dict[str, Any]:
        """Counts, model, index settings and calibration source, for ``facetrace status``."""
        with self.reads() as s:
            counts = repo.counts(s)
        cal = self.calibration()
        with self._rw.read():
            settings = self.index.settings()
        return {
            "data_dir": str(self.data_dir),
            "database": self.engine.url.render_as_string(hide_password=True),
            "model": self.descriptor.model_id,
            "dim": self.descriptor.dim,
            **counts,
            "index": settings,
            "calibration": None
            if cal is None
            else {"source": cal.source, "impostor_pairs": cal.impostor_pairs},
        }

    def reading(self) -> AbstractContextManager[None]:
        """The shared side of the index lock, for callers that read ``index`` themselves
        (the duplicate finder): searches go on alongside, index writes wait."""
        return self._rw.read()

    def subject_count(self) -> int:
        """Subjects in the gallery (the gallery size for FPIR)."""
        with self.reads() as s:
            return repo.count_subjects(s)

    def selector_for(self, collections: Iterable[str] | None) -> Selector | None:
        """A group selector restricting a search to some collections (``None``: all).

        Costs one lookup of the collection names, whatever their size: the index
        filters on the faces' group tags (unknown names match nothing).
        """
        if collections is None:
            return None
        with self.reads() as s:
            groups = repo.collection_ids(s, collections)
        return Selector(groups=frozenset(groups))

    def threshold(self, fpir: float) -> float:
        """The "no candidate" score threshold for a target FPIR at the current size."""
        return self._threshold(self.calibration(), fpir, self.subject_count())

    def choose_mode(
        self,
        requested: SearchMode | None,
        *,
        policy: ModePolicy,
        fpir: float,
        n_subjects: int | None = None,
    ) -> ModeChoice:
        """The mode of a search of this gallery (:func:`facetrace.calibration.choose_mode`
        with this gallery's table and size)."""
        return choose_mode(
            self.calibration(),
            policy=policy,
            requested=requested,
            fpir=fpir,
            gallery_subjects=self.subject_count() if n_subjects is None else n_subjects,
        )

    def _threshold(self, cal: Calibration | None, fpir: float, n_subjects: int) -> float:
        if cal is None:
            return self.descriptor.verify_threshold
        return cal.threshold_for_fpir(fpir, n_subjects)

    def search_vectors(
        self,
        vectors: npt.NDArray[np.float32],
        *,
        k: int = 10,
        fpir: float = 0.01,
        selector: Selector | None = None,
        include_below: bool = False,
        templates: bool = True,
    ) -> list[tuple[float, list[Candidate], list[Candidate]]]:
        """Top-``k`` subjects per vector: (threshold, above, below) per query.

        Faces are fetched generously and collapsed to the best face per subject. A
        subject with several faces in a collection is also scored by its template there
        (:mod:`facetrace.gallery.templates`), that score put on the single-face scale by
        the template false-match tables; the subject keeps the better of the two, its
        provenance the best of its faces the search may read (``Candidate.template``
        says when the template scored best). ``templates=False`` searches faces only
        (``facetrace eval identify --no-templates`` compares the two).
        """
        cal = self.calibration()
        n_subjects = self.subject_count()
        threshold = self._threshold(cal, fpir, n_subjects)
        fetch = max(k * 4, 40)
        use_search_threads()  # this may be a web server's worker thread, new to OpenMP
        with self._rw.read():  # alongside other searches; an index write waits for it
            scores, ids = self.index.search(vectors.astype(np.float32), fetch, selector)
        with self.reads() as s:
            info = repo.face_info(s, {int(i) for i in ids.reshape(-1) if i >= 0})
        cosines: npt.NDArray[np.floating[Any]] = scores
        ranked: npt.NDArray[np.floating[Any]] = scores
        norm = self.score_normalisation() if cal is not None else None
        if norm is not None and cal is not None:
            ranked, ids, cosines = self._as_norm(vectors, scores, ids, norm, cal)
        hits = (
            self._template_hits(vectors, k=max(2 * k, 20), selector=selector, cal=cal, norm=norm)
            if templates
            else [{} for _ in range(vectors.shape[0])]
        )
        rows: list[list[tuple[float, repo.FaceInfo, float | None, TemplateMatch | None]]] = []
        for r, (row_scores, row_ids, row_cos) in enumerate(zip(ranked, ids, cosines, strict=True)):
            best: dict[int, tuple[float, repo.FaceInfo, float | None, TemplateMatch | None]] = {}
            for score, fid, cos in zip(row_scores, row_ids, row_cos, strict=True):
                fi = info.get(int(fid))
                if fid < 0 or fi is None or fi.subject_id in best:
                    continue
                best[fi.subject_id] = (float(score), fi, None if norm is None else float(cos), None)
            for sid, (mapped, tpl, face) in hits[r].items():
                if sid not in best or mapped > best[sid][0]:
                    fi = best[sid][1] if sid in best else face
                    best[sid] = (mapped, fi, None, tpl)
            rows.append(sorted(best.values(), key=lambda e: -e[0])[:k])
        out: list[tuple[float, list[Candidate], list[Candidate]]] = []
        for entries in rows:
            above: list[Candidate] = []
            below: list[Candidate] = []
            for rank, (score, fi, cos, match) in enumerate(entries, start=1):
                fmr = cal.false_match_rate(score) if cal else float("nan")
                cand = Candidate(
                    rank=rank,
                    score=score,
                    false_match_rate=fmr,
                    gallery_fpir=cal.gallery_fpir(score, n_subjects) if cal else fmr,
                    above_threshold=bool(score >= threshold),
                    info=fi,
                    cosine=cos,
                    template=match,
                )
                (above if cand.above_threshold else below).append(cand)
            out.append((threshold, above, below if include_below else []))
        return out

    def template_calibration(self) -> TemplateCalibration | None:
        """The gallery's own template false-match tables if calibrated, else the packaged
        default for the model; None: templates are not searched (their scores could not
        be given an honest false-match rate)."""
        with self.reads() as s:
            data = repo.get_meta(s, "calibration_template")
        if data is not None:
            return TemplateCalibration.from_json(data)
        name = self.descriptor.calibration_name
        return packaged_template_calibration(name) if name else None

    def set_template_calibration(self, calibration: TemplateCalibration) -> None:
        """Store template tables measured on the operator's own labelled data."""
        self._writable("the calibration is stored by the directory's owner")
        if calibration.model_id != self.descriptor.model_id:
            raise ModelMismatch(
                f"calibration of {calibration.model_id!r} for a gallery of "
                f"{self.descriptor.model_id!r}"
            )
        with transaction(self.sessions) as s:
            repo.set_meta(s, key="calibration_template", value=calibration.to_json())

    def _template_hits(
        self,
        vectors: npt.NDArray[np.float32],
        *,
        k: int,
        selector: Selector | None,
        cal: Calibration | None,
        norm: tuple[Cohort, Calibration] | None,
    ) -> list[dict[int, tuple[float, TemplateMatch, repo.FaceInfo]]]:
        """Per query: subject id -> (its best template's score on the single-face scale,
        the template, the template's face most like the query: the provenance shown when
        none of the subject's faces came back from the face index).

        None are searched without both false-match tables, with AS-norm scores (not
        measured with templates) or with a selector of face ids (a template averages
        faces such a list might exclude); a collection selector applies to templates as
        to faces, each template being made of one collection's faces."""
        empty: list[dict[int, tuple[float, TemplateMatch, repo.FaceInfo]]] = [
            {} for _ in range(vectors.shape[0])
        ]
        if cal is None or norm is not None:
            return empty
        if selector is not None and (selector.allow is not None or selector.deny):
            return empty
        tcal = self.template_calibration()
        if tcal is None or tcal.model_id != self.descriptor.model_id:
            return empty
        self.sync_templates()
        found = self.templates.search(vectors, k, None if selector is None else selector.groups)
        members = {f for row in found for h in row for f in h.face_ids}
        if not members:
            return empty
        with self.reads() as s:
            got, vecs = repo.vectors_for(
                s, np.array(sorted(members), dtype=np.int64), vectors.shape[1]
            )
            where = {int(f): j for j, f in enumerate(got)}
            picks: list[dict[int, tuple[float, TemplateMatch, int]]] = []
            for q, row in zip(vectors, found, strict=True):
                mine: dict[int, tuple[float, TemplateMatch, int]] = {}
                for h in row:
                    mapped = tcal.on_face_scale(h.score, h.n_faces, cal)
                    if h.subject_id in mine and mine[h.subject_id][0] >= mapped:
                        continue
                    have = [f for f in h.face_ids if f in where]
                    if not have:
                        continue  # its faces were deleted since: SQL says so, skip it
                    face = max(have, key=lambda f: float(vecs[where[f]] @ q))
                    mine[h.subject_id] = (
                        mapped,
                        TemplateMatch(h.score, h.n_faces, h.face_ids),
                        face,
                    )
                picks.append(mine)
            info = repo.face_info(s, {f for row in picks for _, _, f in row.values()})
        return [
            {sid: (m, t, info[f]) for sid, (m, t, f) in row.items() if f in info} for row in picks
        ]

    def score_normalisation(self) -> tuple[Cohort, Calibration] | None:
        """The cohort and the AS-norm false-match table when candidates are AS-normed:
        the pipeline's ``score`` is ``asnorm`` and ``facetrace calibrate --cohort-out``
        stored both, measured on the operator's own labelled people; else None (raw
        cosines). No cohort ships with the package: it would be other people's faces."""
        if self.pipeline.options.score != ScoreKind.ASNORM:
            return None
        with self.reads() as s:
            data = repo.get_meta(s, "calibration_asnorm")
            packed = repo.get_meta(s, "asnorm_cohort")
        if not data or not packed:
            return None
        table = Calibration.from_json(data)
        cohort = read_cohort(base64.b64decode(packed), what="the gallery's AS-norm cohort")
        if cohort.model_id != self.descriptor.model_id:
            return None
        return cohort, table

    def set_cohort(self, cohort: Cohort) -> None:
        """Store the AS-norm cohort (faces of people outside every test) in the gallery."""
        self._writable("the cohort is stored by the directory's owner")
        if cohort.model_id != self.descriptor.model_id:
            raise ModelMismatch(
                f"cohort of {cohort.model_id!r} for a gallery of {self.descriptor.model_id!r}"
            )
        with transaction(self.sessions) as s:
            repo.set_meta(
                s, key="asnorm_cohort", value=base64.b64encode(cohort_bytes(cohort)).decode()
            )

    def _as_norm(
        self,
        vectors: npt.NDArray[np.float32],
        scores: npt.NDArray[np.float32],
        ids: npt.NDArray[np.int64],
        norm: tuple[Cohort, Calibration],
        cal: Calibration,
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """The fetched faces re-scored by AS-norm and re-ranked; each normalised score is
        put on the raw-cosine scale (the cosine with the same estimated false-match rate),
        so thresholds, rates and the pages keep their meaning. Returns (scores, ids, raw
        cosines), rows sorted by the new score; faces without a stored vector drop out."""
        cohort, table = norm
        wanted = np.unique(ids[ids >= 0])
        with self.reads() as s:
            found, refs = repo.vectors_for(s, wanted, self.descriptor.dim)
        where = {int(i): r for r, i in enumerate(found)}
        ref_mean, ref_sd = cohort.stats(refs) if len(found) else (np.zeros(0), np.zeros(0))
        probe_mean, probe_sd = cohort.stats(vectors)
        out_s = np.full(scores.shape, -np.inf)
        out_ids = np.full(ids.shape, -1, dtype=np.int64)
        out_cos = np.zeros(scores.shape, dtype=np.float32)
        for r in range(ids.shape[0]):
            rows = [(j, where[int(i)]) for j, i in enumerate(ids[r]) if int(i) in where]
            if not rows:
                continue
            cols = np.array([j for j, _ in rows])
            refs_at = np.array([k for _, k in rows])
            z = cohort.normalise(
                scores[r, cols],
                (probe_mean[r], probe_sd[r]),
                (ref_mean[refs_at], ref_sd[refs_at]),
            )
            order = np.argsort(-z, kind="stable")
            n = order.size
            out_s[r, :n] = [cal.score_for_fmr(table.false_match_rate(float(v))) for v in z[order]]
            out_ids[r, :n] = ids[r, cols[order]]
            out_cos[r, :n] = scores[r, cols[order]]
        return out_s, out_ids, out_cos

    def search(
        self,
        pixels: npt.NDArray[np.uint8],
        *,
        k: int = 10,
        face: int | None = None,
        force: bool = False,
        min_quality: float = 0.3,
        fpir: float = 0.01,
        collections: Iterable[str] | None = None,
        include_below: bool = False,
        templates: bool = True,
        mode: SearchMode | None = None,
        policy: ModePolicy | None = None,
    ) -> list[ProbeResult]:
        """Search every face of a probe photo (or only face number ``face``), in ``mode``
        or the one ``policy`` chooses (:meth:`choose_mode`; default policy: by size).

        Raises :class:`NoFaceFound` if the photo has no face, :class:`FaceIndexError`
        for a face number it does not have, and :class:`LowQualityFace` when a
        requested face is below ``min_quality`` and ``force`` is false. When all
        faces are searched, low-quality ones are skipped unless ``force``.
        """
        faces = self.pipeline.analyse(pixels)
        if not faces:
            raise NoFaceFound("no face was found in the probe photo")
        chosen = list(range(len(faces)))
        if face is not None:
            if not 0 <= face < len(faces):
                raise FaceIndexError(f"face {face} requested; the photo has {len(faces)} faces")
            chosen = [face]
        if not force:
            good = [i for i in chosen if faces[i].quality.score >= min_quality]
            if not good:
                worst = faces[chosen[0]].quality
                raise LowQualityFace(worst.score, min_quality, [str(r) for r in worst.reasons])
            chosen = good
        vectors = np.stack([faces[i].vector for i in chosen])
        how = self.choose_mode(mode, policy=policy or ModePolicy(), fpir=fpir)
        investigating = how.mode == SearchMode.INVESTIGATION
        rows = self.search_vectors(
            vectors,
            k=k,
            fpir=fpir,
            selector=self.selector_for(collections),
            include_below=include_below or investigating,
            templates=templates,
        )
        return [
            ProbeResult(
                face_index=i,
                face=faces[i],
                threshold=thr,
                candidates=tuple(listed(above, below, how.mode)),
                below_threshold=() if investigating else tuple(below),
                mode=how,
            )
            for i, (thr, above, below) in zip(chosen, rows, strict=True)
        ]

    def _probe_face(self, pixels: npt.NDArray[np.uint8]) -> Face:
        faces = self.pipeline.analyse(pixels)
        if not faces:
            raise NoFaceFound("no face was found in the photo")
        h, w = pixels.shape[:2]
        return faces[main_face([f.detection for f in faces], w, h)]

    def verify(self, a: npt.NDArray[np.uint8], b: npt.NDArray[np.uint8] | str) -> VerifyResult:
        """Compare the main face of photo ``a`` with photo ``b`` or gallery subject ``b``.

        Against a subject the best score over its reference faces counts. The
        decision uses the model's verification threshold; the false-match rate
        comes from the calibration table.
        """
        face_a = self._probe_face(a)
        if isinstance(b, str):
            vecs = self.subject_vectors(b)
            if vecs.shape[0] == 0:
                raise NoFaceFound(f"subject {b!r} has no indexed face")
            quality_b = float("nan")
        else:
            face_b = self._probe_face(b)
            vecs = face_b.vector[None, :]
            quality_b = face_b.quality.score
        score = float(np.max(vecs @ face_a.vector))
        cal = self.calibration()
        threshold = self.descriptor.verify_threshold
        return VerifyResult(
            score=score,
            threshold=threshold,
            same=score >= threshold,
            false_match_rate=cal.false_match_rate(score) if cal else float("nan"),
            quality_a=face_a.quality.score,
            quality_b=quality_b,
        )

    def subject_vectors(self, external_id: str) -> npt.NDArray[np.float32]:
        """The indexed vectors of one subject (raises ``NotFound``)."""
        with self.reads() as s:
            ids = np.array(repo.subject_face_ids(s, external_id), dtype=np.int64)
            _, vecs = repo.vectors_for(s, ids, self.descriptor.dim)
        return vecs

    def session(self) -> Session:
        """A plain session for read-only callers (the service layer)."""
        return self.reads()


def listed(
    above: Sequence[Candidate], below: Sequence[Candidate], mode: SearchMode
) -> list[Candidate]:
    """The candidates a result lists in ``mode``: those at or above the threshold
    (identification), or every one fetched, best first (investigation)."""
    if mode == SearchMode.IDENTIFICATION:
        return list(above)
    return sorted([*above, *below], key=lambda c: c.rank)


def _wrong_groups(
    truth: npt.NDArray[np.int64],
    truth_groups: npt.NDArray[np.int64],
    have: npt.NDArray[np.int64],
    have_groups: npt.NDArray[np.int64],
    doubled: npt.NDArray[np.int64],
) -> npt.NDArray[np.int64]:
    """Positions in ``truth`` (SQL ids, sorted) of faces the index holds with another group.

    Faces indexed twice are left out: they are removed and added again anyway.
    """
    if truth.size == 0 or have.size == 0:
        return np.empty(0, dtype=np.int64)
    order = np.argsort(have, kind="stable")
    held, held_groups = have[order], have_groups[order]
    at = np.clip(np.searchsorted(held, truth), 0, held.size - 1)
    wrong = (held[at] == truth) & (held_groups[at] != truth_groups)
    if doubled.size:
        wrong &= ~np.isin(truth, doubled)
    return np.flatnonzero(wrong)
