"""The worker half of an ingest: one photo's path (and box) in, its faces out.

Kept free of SQL and of the ingest records, so that a pool worker imports neither
SQLAlchemy nor the store (about half a second per worker), and only the path and the box
cross to it: the parent keeps each photo's record and pairs it with the result by order.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from facetrace.engine import FacePipeline
from facetrace.errors import FacetraceError
from facetrace.imaging import ImageLimits, load_image
from facetrace.types import BoundingBox, Face
from facetrace.vision.detect import main_face

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PhotoJob:
    """What a worker needs of one photo: where it is and, from a manifest, the subject's
    face box."""

    path: Path
    box: BoundingBox | None = None


@dataclass(frozen=True, slots=True)
class Analysed:
    """A photo after the pipeline: its SHA-256, size, faces and the subject's face."""

    sha256: str
    width: int
    height: int
    faces: tuple[Face, ...]
    subject_face: int


@dataclass(frozen=True, slots=True)
class Refused:
    """A photo that gives nothing to store, and why."""

    reason: str


def _iou(a: BoundingBox, b: BoundingBox) -> float:
    ix = max(0, min(a.x2, b.x2) - max(a.x1, b.x1))
    iy = max(0, min(a.y2, b.y2) - max(a.y1, b.y1))
    inter = ix * iy
    return inter / float(a.area + b.area - inter)


def analyse_photo(job: PhotoJob, pipeline: FacePipeline, limits: ImageLimits) -> Analysed | Refused:
    """Decode, find every face, choose the subject's face and embed; never raises on bad
    input."""
    try:
        image = load_image(job.path, limits=limits)
        pixels = image.pixels
        faces = pipeline.analyse(pixels)
        h, w = pixels.shape[:2]
        if job.box is not None:
            overlaps = [_iou(f.detection.box, job.box) for f in faces]
            if overlaps and max(overlaps) >= 0.3:
                subject = overlaps.index(max(overlaps))
            else:
                faces.append(pipeline.analyse_box(pixels, job.box))
                subject = len(faces) - 1
        elif not faces:
            return Refused("no face found")
        else:
            subject = main_face([f.detection for f in faces], w, h)
        return Analysed(
            sha256=image.sha256, width=w, height=h, faces=tuple(faces), subject_face=subject
        )
    except FacetraceError as exc:
        return Refused(f"{type(exc).__name__}: {exc}")
    except (OSError, ValueError, RuntimeError) as exc:
        log.exception("unexpected error on %s", job.path)
        return Refused(f"error: {exc}")
