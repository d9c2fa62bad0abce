"""Gallery ingestion from a folder tree or a CSV/JSONL manifest, resumable.

Photos are committed in batches (one transaction and one index write each), photos
are identified by the SHA-256 of their bytes, and the index is repaired from SQL on open: so an
ingest killed at any moment and run again ends with exactly the faces of a
clean run. Decoding, detection, alignment and embedding run in a process pool;
only the parent writes to the database.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from facetrace import fields
from facetrace.engine import FacePipeline
from facetrace.errors import DeletedPhoto, InvalidRequest, ManifestError
from facetrace.gallery.photo import Analysed, PhotoJob, Refused, analyse_photo
from facetrace.imaging import ImageLimits
from facetrace.pool import MIN_ITEMS_FOR_POOL, PhotoPool, map_photos
from facetrace.store.repo import PhotoRecord, known_hashes
from facetrace.types import BoundingBox, Provenance

if TYPE_CHECKING:
    from facetrace.gallery.directory import Gallery

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {
    ".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif",
    ".pgm", ".ppm", ".pnm", ".heic", ".heif",
}  # fmt: skip
MANIFEST_FIELDS = (
    "path", "subject_id", "subject_name", "source_url", "source_title",
    "collection", "captured_date", "legal_basis", "metadata", "box",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class IngestItem:
    """One photo to ingest, with its record (subject and provenance) and optionally the
    subject's face box."""

    path: Path
    record: PhotoRecord
    box: BoundingBox | None = None


@dataclass(frozen=True, slots=True)
class Prepared:
    """A photo after the pipeline (computed in a worker), with its record: what the
    parent stores."""

    item: IngestItem
    photo: Analysed


@dataclass(frozen=True, slots=True)
class Skipped:
    """A photo that was not stored, and why."""

    item: IngestItem
    reason: str


@dataclass
class IngestSummary:
    """Counts of one ingest run; ``skipped`` lists each photo left out with its reason."""

    total: int = 0
    photos_added: int = 0
    faces_added: int = 0
    already_present: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    report_path: Path | None = None
    stopped: bool = False  # ended early on request (the photos not reached are not done)

    @property
    def skipped_by_reason(self) -> dict[str, int]:
        return dict(Counter(reason.split(":")[0] for _, reason in self.skipped))

    def as_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "photos_added": self.photos_added,
            "faces_added": self.faces_added,
            "already_present": self.already_present,
            "skipped": len(self.skipped),
            "skipped_by_reason": self.skipped_by_reason,
            "seconds": round(self.seconds, 2),
            "photos_per_second": round(self.total / self.seconds, 2) if self.seconds else None,
            "report": str(self.report_path) if self.report_path else None,
        }


# -- reading sources ---------------------------------------------------------


def _subject_name(folder: str) -> str:
    return folder.replace("_", " ").strip()


def scan_folder(
    root: Path, *, collection: str = "default", legal_basis: str = ""
) -> list[IngestItem]:
    """Photos in ``root/<subject>/...``: each first-level folder is one subject.

    Files directly in ``root`` have no subject and are not returned. Order is
    sorted, so runs are repeatable.
    """
    if not root.is_dir():
        raise ManifestError(str(root), None, "not a directory")
    items: list[IngestItem] = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        for path in sorted(sub.rglob("*")):
            if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
                items.append(
                    IngestItem(
                        path=path,
                        record=PhotoRecord(
                            subject_id=sub.name,
                            subject_name=_subject_name(sub.name),
                            provenance=Provenance(collection=collection, legal_basis=legal_basis),
                            path=str(path),
                        ),
                    )
                )
    return items


def _parse_box(value: Any, source: str, line: int) -> BoundingBox | None:
    if value in (None, "", []):
        return None
    try:
        parts = value if isinstance(value, list) else str(value).replace(";", ",").split(",")
        x1, y1, x2, y2 = (round(float(v)) for v in parts)
        return BoundingBox(x1, y1, x2, y2)
    except (ValueError, TypeError) as exc:
        raise ManifestError(source, line, f"box must be x1,y1,x2,y2, got {value!r}") from exc


def _row_to_item(
    row: dict[str, Any], *, base: Path, source: str, line: int, collection: str, legal_basis: str
) -> IngestItem:
    unknown = set(row) - set(MANIFEST_FIELDS)
    if unknown:
        raise ManifestError(source, line, f"unknown columns {sorted(unknown)}")
    path_s = str(row.get("path") or "").strip()
    subject = str(row.get("subject_id") or "").strip()
    if not path_s:
        raise ManifestError(source, line, "missing 'path'")
    if not subject:
        raise ManifestError(source, line, "missing 'subject_id'")
    meta = row.get("metadata") or {}
    if isinstance(meta, str):
        try:
            meta = json.loads(meta) if meta.strip() else {}
        except json.JSONDecodeError as exc:
            raise ManifestError(source, line, f"metadata is not JSON: {exc}") from exc
    if not isinstance(meta, dict):
        raise ManifestError(source, line, "metadata must be a JSON object")
    path = Path(path_s)
    if not path.is_absolute():
        path = base / path
    try:  # only http(s) links: a javascript: or data: URL would be rendered as a link
        source_url = fields.check(fields.Url, str(row.get("source_url") or ""), field="source_url")
    except InvalidRequest as exc:
        raise ManifestError(source, line, str(exc)) from exc
    return IngestItem(
        path=path,
        record=PhotoRecord(
            subject_id=subject,
            subject_name=str(row.get("subject_name") or ""),
            provenance=Provenance(
                collection=str(row.get("collection") or collection),
                legal_basis=str(row.get("legal_basis") or legal_basis),
                source_url=source_url,
                source_title=str(row.get("source_title") or ""),
                captured_date=str(row.get("captured_date") or ""),
            ),
            path=str(path),
            extra=meta,
        ),
        box=_parse_box(row.get("box"), source, line),
    )


MAX_MANIFEST_ERRORS = 50  # rows listed when a manifest has many bad rows


def read_manifest(
    path: Path, *, collection: str = "default", legal_basis: str = "", source: str | None = None
) -> list[IngestItem]:
    """Every row of a CSV (with header) or JSONL manifest, validated before anything is stored.

    Relative photo paths are resolved against the manifest's folder. ``source`` names
    the manifest in messages (default: its path; the service gives the user's own file
    name). Raises :class:`ManifestError` listing every bad row by line (the first
    :data:`MAX_MANIFEST_ERRORS` of them), so that all can be fixed at once.
    """
    source = source or str(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(source, None, f"cannot read manifest: {exc}") from exc
    rows: list[tuple[int, dict[str, Any]]] = []
    problems: list[tuple[int | None, str]] = []
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                problems.append((n, f"not valid JSON: {exc.msg}"))
                continue
            if not isinstance(obj, dict):
                problems.append((n, "each line must be a JSON object"))
                continue
            rows.append((n, obj))
    elif path.suffix.lower() in (".csv", ".tsv"):
        delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
        reader = csv.DictReader(text.splitlines(), delimiter=delimiter)
        if not reader.fieldnames or "path" not in reader.fieldnames:
            raise ManifestError(source, 1, "the header must name at least 'path' and 'subject_id'")
        for n, row in enumerate(reader, start=2):
            if None in row:
                problems.append((n, "more fields than the header has"))
                continue
            rows.append((n, {k: v for k, v in row.items() if v is not None}))
    else:
        raise ManifestError(source, None, "a manifest must be .csv, .tsv or .jsonl")
    if not rows and not problems:
        raise ManifestError(source, None, "the manifest has no rows")
    base = path.parent
    items: list[IngestItem] = []
    for n, row in rows:
        try:
            items.append(
                _row_to_item(
                    row,
                    base=base,
                    source=source,
                    line=n,
                    collection=collection,
                    legal_basis=legal_basis,
                )
            )
        except ManifestError as exc:
            problems.append((n, exc.reason))
    if problems:
        problems.sort(key=lambda p: p[0] or 0)
        raise ManifestError.several(source, problems[:MAX_MANIFEST_ERRORS], total=len(problems))
    return items


def collect_items(
    path: Path, *, collection: str = "default", legal_basis: str = "", source: str | None = None
) -> list[IngestItem]:
    """Items from a folder tree or a manifest file (``source``: its name in messages)."""
    if path.is_dir():
        return scan_folder(path, collection=collection, legal_basis=legal_basis)
    return read_manifest(path, collection=collection, legal_basis=legal_basis, source=source)


# -- the pipeline, in workers -----------------------------------------------


def prepare(item: IngestItem, pipeline: FacePipeline, limits: ImageLimits) -> Prepared | Skipped:
    """Decode, find every face, choose the subject's face and embed; never raises on bad input."""
    return _with_item(item, analyse_photo(_job(item), pipeline, limits))


def _job(item: IngestItem) -> PhotoJob:
    return PhotoJob(path=item.path, box=item.box)


def _with_item(item: IngestItem, result: Analysed | Refused) -> Prepared | Skipped:
    """A worker's result for ``item`` (which stayed in the parent), with its record."""
    if isinstance(result, Refused):
        return Skipped(item, result.reason)
    return Prepared(item=item, photo=result)


def skip_known(
    gallery: Gallery, items: Sequence[IngestItem], summary: IngestSummary
) -> list[IngestItem]:
    """The items whose photo (by SHA-256) is not stored yet, counting the others in
    ``summary.already_present``: a resumed ingest does no model work twice. On a
    gallery without photos nothing is read here (each file is then read once, by the
    worker that decodes it)."""
    with gallery.reads() as s:
        known = known_hashes(s)
    if not known:
        return list(items)
    todo: list[IngestItem] = []
    for item in items:
        sha = _sha256_file(item.path)
        if sha is not None and sha in known:
            summary.already_present += 1
        else:
            todo.append(item)
    return todo


def _sha256_file(path: Path) -> str | None:
    try:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        return h.hexdigest()
    except OSError:
        return None


ProgressFn = Callable[[int, int, IngestSummary], None]

BATCH_SIZE = 32  # photos per transaction (and per index write, searchable together)


@dataclass(frozen=True, slots=True)
class Batch:
    """One committed batch of an ingest, for :func:`ingest`'s ``on_batch``: its number
    (from 1), the photos it handled (stored, already present or skipped), what it
    added, and the run's counts so far (``done`` of ``total``) including it."""

    number: int
    photos: int
    photos_added: int
    faces_added: int
    skipped: int
    done: int
    total: int


BatchHook = Callable[[Session, Batch], None]


def keep_photo(path: Path, sha256: str, store: Path) -> Path:
    """The photo's copy in ``store`` (``<store>/<sha[:2]>/<sha><suffix>``), made once:
    a hard link when the store is on the same file system, else a copy. The service
    keeps its reference photos there, so an upload's folder can go when its job ends."""
    dest = store / sha256[:2] / f"{sha256}{path.suffix.lower()}"
    if dest.exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    try:
        os.link(path, tmp)
    except OSError:
        shutil.copyfile(path, tmp)
    tmp.replace(dest)
    return dest


def _one_at_a_time(results: Iterator[Any], lock: AbstractContextManager[Any]) -> Iterator[Any]:
    """``results`` with each step (a photo through the shared pipeline) under ``lock``."""
    try:
        while True:
            with lock:
                try:
                    result = next(results)
                except StopIteration:
                    return
            yield result
    finally:
        close = getattr(results, "close", None)
        if close is not None:
            close()


def _tally(results: Sequence[Any]) -> tuple[int, int, int]:
    """(photos added, faces added, refused as deleted earlier) of a batch's results."""
    added = [r for r in results if not isinstance(r, DeletedPhoto) and not r.duplicate]
    deleted = sum(isinstance(r, DeletedPhoto) for r in results)
    return len(added), sum(len(r.face_ids) for r in added), deleted


def ingest(
    gallery: Gallery,
    items: Sequence[IngestItem],
    *,
    workers: int = 1,
    limits: ImageLimits | None = None,
    allow_deleted: bool = False,
    report_path: Path | None = None,
    progress: ProgressFn | None = None,
    batch_size: int = BATCH_SIZE,
    on_batch: BatchHook | None = None,
    should_stop: Callable[[], bool] | None = None,
    photo_store: Path | None = None,
    inline_lock: AbstractContextManager[Any] | None = None,
    nice: int = 0,
    pool: PhotoPool | None = None,
) -> IngestSummary:
    """Store ``items`` in ``gallery`` (a :class:`facetrace.gallery.Gallery`).

    Photos already present (same SHA-256) are skipped before any model runs. The
    pipeline runs on ``workers`` processes; the parent stores the results in batches
    of ``batch_size`` photos, one transaction and one index write each, so a batch's
    faces become searchable when it commits. ``on_batch(session, batch)`` runs inside
    each batch's transaction (a job's progress and audit entry commit with it);
    ``should_stop()``
    is asked after each batch, and a true answer ends the run there (``stopped``).
    With ``photo_store``, each stored photo is recorded at its copy there
    (:func:`keep_photo`), not at its source path. ``inline_lock`` is held around each
    photo when the pipeline runs in this process (the gallery's pipeline, which a
    service's searches share); ``nice`` is added to the pool processes' niceness.
    ``pool``: workers the caller started earlier (:class:`facetrace.pool.PhotoPool`, with
    the gallery's pipeline options, ``limits`` and ``nice``), used instead of new ones.
    Returns the summary; skipped photos and their reasons
    also go to ``report_path`` as CSV when given.
    """
    limits = limits or (pool.limits if pool is not None else ImageLimits())
    summary = IngestSummary(total=len(items))
    start = time.monotonic()
    todo = skip_known(gallery, items, summary)
    done = summary.already_present
    if progress:
        progress(done, summary.total, summary)
    pending: list[Prepared] = []
    pending_skips = 0
    batches = 0

    def commit() -> None:
        nonlocal pending, pending_skips, batches
        if not pending and not pending_skips:
            return
        batches += 1
        results = _store(pending)
        for p, r in zip(pending, results, strict=True):
            if isinstance(r, DeletedPhoto):
                summary.skipped.append((str(p.item.path), f"deleted earlier: {r}"))
        added, faces, _ = _tally(results)
        summary.already_present += sum(
            not isinstance(r, DeletedPhoto) and r.duplicate for r in results
        )
        summary.photos_added += added
        summary.faces_added += faces
        pending, pending_skips = [], 0

    def _store(batch: list[Prepared]) -> list[Any]:
        from facetrace.gallery.directory import NewPhoto

        # counts as they will be once this batch is in, for the hook in its transaction
        def hook(session: Session, results: list[Any]) -> None:
            if on_batch is None:
                return
            added, faces, deleted = _tally(results)
            on_batch(
                session,
                Batch(
                    number=batches,
                    photos=len(batch) + pending_skips,
                    photos_added=added,
                    faces_added=faces,
                    skipped=pending_skips + deleted,
                    done=done,
                    total=summary.total,
                ),
            )

        photos = [
            NewPhoto(
                sha256=p.photo.sha256,
                width=p.photo.width,
                height=p.photo.height,
                faces=p.photo.faces,
                subject_face=p.photo.subject_face,
                record=p.item.record
                if photo_store is None
                else replace(
                    p.item.record, path=str(keep_photo(p.item.path, p.photo.sha256, photo_store))
                ),
            )
            for p in batch
        ]
        return list(gallery.add_photos(photos, allow_deleted=allow_deleted, in_transaction=hook))

    # only the path and box go to a worker (facetrace.gallery.photo imports no SQL); the
    # results come back in input order and are paired with their items here
    analysed: Iterator[Any] = map_photos(
        analyse_photo,
        [_job(item) for item in todo],
        options=gallery.pipeline.options,
        limits=limits,
        workers=workers,
        inline=gallery.pipeline,
        nice=nice,
        pool=pool,
    )
    results: Iterator[Any] = (_with_item(item, r) for item, r in zip(todo, analysed, strict=True))
    inline = pool is None and (workers <= 1 or len(todo) < MIN_ITEMS_FOR_POOL)
    if inline_lock is not None and inline:
        results = _one_at_a_time(results, inline_lock)
    try:
        for result in results:
            done += 1
            if isinstance(result, Skipped):
                summary.skipped.append((str(result.item.path), result.reason))
                pending_skips += 1
            else:
                pending.append(result)
            if len(pending) + pending_skips >= batch_size:
                commit()
                if should_stop is not None and should_stop():
                    summary.stopped = True
                    break
            if progress:
                progress(done, summary.total, summary)
        else:
            commit()
    finally:
        for it in (results, analysed):
            close = getattr(it, "close", None)
            if close is not None:
                close()  # a stopped run: the pool drops the photos not started
    if progress:
        progress(done, summary.total, summary)
    gallery.save_index()
    summary.seconds = time.monotonic() - start
    if report_path is not None and summary.skipped:
        report_path.parent.mkdir(parents=True, exist_ok=True)
        with open(report_path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["path", "reason"])
            writer.writerows(summary.skipped)
        summary.report_path = report_path
    return summary
