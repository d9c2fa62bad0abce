"""Embed one face per photo for evaluation and calibration, in a process pool."""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from facetrace.engine import FacePipeline, PipelineOptions
from facetrace.errors import FacetraceError
from facetrace.imaging import ImageLimits, load_image
from facetrace.vision.detect import main_face

log = logging.getLogger(__name__)

_WORKER: dict[str, Any] = {}


@dataclass(frozen=True, slots=True)
class PhotoVector:
    """The main face's vector of one photo; ``how`` is detected, centre (fallback) or failed."""

    path: str
    vector: npt.NDArray[np.float32] | None
    how: str
    error: str = ""


def embed_main_face(path: Path, pipeline: FacePipeline, limits: ImageLimits) -> PhotoVector:
    """The largest, most central face; a centred box when none is detected (pre-cropped sets)."""
    try:
        pixels = load_image(path, limits=limits).pixels
        faces = pipeline.analyse(pixels)
        if faces:
            h, w = pixels.shape[:2]
            i = main_face([f.detection for f in faces], w, h)
            return PhotoVector(str(path), faces[i].vector, "detected")
        return PhotoVector(str(path), pipeline.analyse_centred(pixels).vector, "centre")
    except FacetraceError as exc:
        return PhotoVector(str(path), None, "failed", str(exc))


def _init(options: PipelineOptions, limits: ImageLimits) -> None:
    _WORKER["pipeline"] = FacePipeline(options.for_worker())
    _WORKER["limits"] = limits


def _work(path: Path) -> PhotoVector:
    return embed_main_face(path, _WORKER["pipeline"], _WORKER["limits"])


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
    if workers <= 1 or len(paths) < 8:
        pipeline = FacePipeline(options)
        for p in paths:
            out.append(embed_main_face(p, pipeline, limits))
            if progress:
                progress(len(out), len(paths))
        return out
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        workers, mp_context=ctx, initializer=_init, initargs=(options, limits)
    ) as pool:
        for pv in pool.map(_work, paths, chunksize=8):
            out.append(pv)
            if progress:
                progress(len(out), len(paths))
    return out
