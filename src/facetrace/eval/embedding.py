"""Embed one face per photo for evaluation and calibration, in a process pool."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from facetrace.config import PipelineOptions
from facetrace.engine import FacePipeline
from facetrace.errors import FacetraceError
from facetrace.imaging import ImageLimits, load_image
from facetrace.pool import map_photos
from facetrace.vision.detect import centre_face, main_face

log = logging.getLogger(__name__)

SUBJECT_POLICY = (
    "each photo's subject is the face covering its centre (LFW's photos are centred on "
    "their subject); if no face found covers it, the CNN detector looks for one that does "
    "(counted in centre_face_by_cnn); else the largest, most central face"
)


@dataclass(frozen=True, slots=True)
class PhotoVector:
    """The main face's vector of one photo; ``how`` is detected, centre (fallback) or failed;
    ``quality`` the face's quality score (it weighs the face in a subject template)."""

    path: str
    vector: npt.NDArray[np.float32] | None
    how: str
    error: str = ""
    quality: float = 1.0


def embed_main_face(path: Path, pipeline: FacePipeline, limits: ImageLimits) -> PhotoVector:
    """The subject's face of a labelled photo: the face covering the photo's centre
    (:func:`~facetrace.vision.detect.centre_face`; LFW's photos are centred on their
    subject); when no face found covers it, the CNN detector looks for one that does
    (``how`` is then ``centre-cnn``), else the largest, most central face is taken; a
    centred box when no face is detected at all (pre-cropped sets)."""
    try:
        pixels = load_image(path, limits=limits).pixels
        h, w = pixels.shape[:2]
        faces = pipeline.analyse(pixels)
        detections = [f.detection for f in faces]
        if faces and centre_face(detections, w, h) is None and pipeline.detector.name != "cnn":
            found = pipeline.detect(pixels, detector="cnn")
            j = centre_face(found, w, h)
            if j is not None:
                face = pipeline.embed_detections(pixels, [found[j]])[0]
                return PhotoVector(str(path), face.vector, "centre-cnn", quality=face.quality.score)
        if faces:
            i = centre_face(detections, w, h)
            i = main_face(detections, w, h) if i is None else i
            return PhotoVector(
                str(path), faces[i].vector, "detected", quality=faces[i].quality.score
            )
        face = pipeline.analyse_centred(pixels)
        return PhotoVector(str(path), face.vector, "centre", quality=face.quality.score)
    except FacetraceError as exc:
        return PhotoVector(str(path), None, "failed", str(exc))


def embed_photos(
    paths: Sequence[Path],
    *,
    options: PipelineOptions,
    workers: int = 1,
    limits: ImageLimits | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[PhotoVector]:
    """One :class:`PhotoVector` per path, in order."""
    limits = limits or ImageLimits()
    out: list[PhotoVector] = []
    for pv in map_photos(embed_main_face, paths, options=options, limits=limits, workers=workers):
        out.append(pv)
        if progress:
            progress(len(out), len(paths))
    return out
