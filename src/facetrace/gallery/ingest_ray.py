"""Bulk ingestion beyond one machine: Ray Data maps the face pipeline over the photo list.

The photo list becomes a Ray dataset; ``map_batches`` runs :func:`facetrace.ingest.prepare`
in Ray workers (one pipeline per worker, models loaded once), anywhere in the Ray
cluster. The driver streams the results back and stores each photo through the
gallery, exactly like the local path: metadata in SQL (PostgreSQL for a team), then
the vector in the gallery's index (Milvus for a cluster). One writer keeps SQL the
source of truth, so a run killed at any moment and started again skips the photos
already stored (same SHA-256) and the index is repaired from SQL on open.

Results cross the Ray object store as plain columns (JSON text and float32 bytes),
never as pickled facetrace objects. The local process pool stays the default
(:func:`facetrace.ingest.ingest`); this path needs the ``ray`` extra.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from facetrace.config import PipelineOptions
from facetrace.engine import FacePipeline
from facetrace.errors import DeletedPhoto, FacetraceError
from facetrace.gallery.ingest import IngestItem, IngestSummary, skip_known
from facetrace.gallery.photo import Analysed, PhotoJob, analyse_photo
from facetrace.imaging import ImageLimits
from facetrace.types import BoundingBox, Detection, Face, Landmarks, Quality, QualityReason

log = logging.getLogger(__name__)


def _face_meta(face: Face) -> dict[str, Any]:
    d, q = face.detection, face.quality
    return {
        "box": d.box.as_list(),
        "landmarks": d.landmarks.as_array().tolist(),
        "score": d.score,
        "quality": q.score,
        "reasons": [str(r) for r in q.reasons],
        "details": q.details,
        "model_id": face.model_id,
    }


def _face_from(meta: dict[str, Any], vector: np.ndarray[Any, np.dtype[np.float32]]) -> Face:
    return Face(
        detection=Detection(
            box=BoundingBox(*meta["box"]),
            landmarks=Landmarks.from_array(meta["landmarks"]),
            score=float(meta["score"]),
        ),
        quality=Quality(
            score=float(meta["quality"]),
            reasons=tuple(QualityReason(r) for r in meta["reasons"]),
            details={k: float(v) for k, v in meta["details"].items()},
        ),
        vector=vector,
        model_id=str(meta["model_id"]),
    )


class _PrepareBatch:
    """A Ray Data map_batches callable: one pipeline per worker, photos in, columns out."""

    def __init__(self, options: PipelineOptions, limits: ImageLimits) -> None:
        self.pipeline = FacePipeline(options.for_worker())
        self.limits = limits

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {
            "row": [],
            "sha256": [],
            "width": [],
            "height": [],
            "subject_face": [],
            "faces": [],
            "vectors": [],
            "skipped": [],
        }
        for row, path, box in zip(batch["row"], batch["path"], batch["box"], strict=True):
            # workers need the path and the box; the record stays with the driver
            job = PhotoJob(
                path=Path(str(path)), box=BoundingBox(*json.loads(str(box))) if box else None
            )
            result = analyse_photo(job, self.pipeline, self.limits)
            out["row"].append(int(row))
            if isinstance(result, Analysed):
                out["sha256"].append(result.sha256)
                out["width"].append(result.width)
                out["height"].append(result.height)
                out["subject_face"].append(result.subject_face)
                out["faces"].append(json.dumps([_face_meta(f) for f in result.faces]))
                vecs = np.stack([f.vector for f in result.faces]).astype(np.float32)
                out["vectors"].append(vecs.tobytes())
                out["skipped"].append("")
            else:
                for key in ("sha256", "faces"):
                    out[key].append("")
                for key in ("width", "height", "subject_face"):
                    out[key].append(-1)
                out["vectors"].append(b"")
                out["skipped"].append(result.reason)
        return out


def connect_ray(
    address: str | None = None,
    *,
    attempts: int = 3,
    timeout: float = 60.0,
    node_ip_address: str | None = None,
) -> None:
    """Connect this process to the Ray cluster at ``address`` (``None``: ``RAY_ADDRESS``
    or a new local instance), trying ``attempts`` times. ``node_ip_address`` is this
    machine's address in the cluster when Ray would guess it wrong (several nodes on
    one machine, on a loopback address).

    Ray waits fixed times of its own for the GCS and the raylet; on a loaded machine or
    a cluster still starting, either times out now and then, so a failed attempt is
    shut down and tried again after a pause that grows to ``timeout`` seconds in all.
    """
    import ray

    if ray.is_initialized():
        return
    pause = max(0.5, timeout / (2**attempts))
    for attempt in range(1, attempts + 1):
        try:
            extra: dict[str, Any] = {"_node_ip_address": node_ip_address} if node_ip_address else {}
            ray.init(address=address, include_dashboard=False, log_to_driver=False, **extra)
            return
        except Exception as exc:  # Ray raises bare Exceptions and ConnectionErrors
            ray.shutdown()
            if attempt == attempts:
                where = address or "a local Ray instance"
                raise FacetraceError(
                    f"cannot connect to Ray at {where} after {attempts} attempts: {exc}"
                ) from exc
            log.warning("Ray start-up attempt %d/%d failed: %s", attempt, attempts, exc)
            time.sleep(pause)
            pause *= 2


def ingest_ray(
    gallery: Any,
    items: Sequence[IngestItem],
    *,
    batch_size: int = 8,
    concurrency: int | None = None,
    limits: ImageLimits | None = None,
    allow_deleted: bool = False,
    address: str | None = None,
    connect_attempts: int = 3,
    connect_timeout: float = 60.0,
) -> IngestSummary:
    """Store ``items`` in ``gallery``, running the pipeline as a Ray Data batch map.

    Connects to the running Ray cluster (``address``, else ``RAY_ADDRESS``), or starts
    a local one when there is none, with :func:`connect_ray` (``connect_attempts``,
    ``connect_timeout``). ``concurrency`` is the number of pipeline workers (default:
    one per CPU Ray sees). Photos already stored are skipped before any model runs, so
    a run that failed (a node lost, the driver killed) is resumed by running it again.
    """
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise FacetraceError(
            "Ray ingestion needs the ray extra: pip install 'facetrace[ray]'"
        ) from exc
    limits = limits or ImageLimits()
    summary = IngestSummary(total=len(items))
    start = time.monotonic()
    todo = skip_known(gallery, items, summary)
    if todo:
        connect_ray(address, attempts=connect_attempts, timeout=connect_timeout)
        workers = concurrency or max(1, int(ray.cluster_resources().get("CPU", 1)))
        dataset = ray.data.from_items(
            [
                {
                    "row": i,
                    "path": str(item.path),
                    "box": json.dumps(item.box.as_list()) if item.box else "",
                }
                for i, item in enumerate(todo)
            ]
        ).map_batches(
            _PrepareBatch,
            fn_constructor_kwargs={"options": gallery.pipeline.options, "limits": limits},
            batch_size=batch_size,
            concurrency=workers,
            num_cpus=1,
        )
        dim = gallery.descriptor.dim
        for row in dataset.iter_rows():
            _store(gallery, todo[int(row["row"])], row, dim, summary, allow_deleted)
    gallery.save_index()
    summary.seconds = time.monotonic() - start
    return summary


def _store(
    gallery: Any,
    item: IngestItem,
    row: dict[str, Any],
    dim: int,
    summary: IngestSummary,
    allow_deleted: bool,
) -> None:
    """Write one prepared photo through the gallery (SQL first, then the index)."""
    if row["skipped"]:
        summary.skipped.append((str(item.path), str(row["skipped"])))
        return
    vectors = np.frombuffer(row["vectors"], dtype=np.float32).reshape(-1, dim)
    faces = [_face_from(m, vectors[i].copy()) for i, m in enumerate(json.loads(row["faces"]))]
    try:
        added = gallery.add_photo(
            sha256=str(row["sha256"]),
            width=int(row["width"]),
            height=int(row["height"]),
            faces=faces,
            subject_face=int(row["subject_face"]),
            record=item.record,
            allow_deleted=allow_deleted,
        )
    except DeletedPhoto as exc:
        summary.skipped.append((str(item.path), f"deleted earlier: {exc}"))
        return
    if added.duplicate:
        summary.already_present += 1
    else:
        summary.photos_added += 1
        summary.faces_added += len(added.face_ids)
