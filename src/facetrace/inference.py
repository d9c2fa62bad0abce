"""Face analysis for request threads on every core: a pool of spawned worker processes,
one :class:`~facetrace.engine.FacePipeline` each.

dlib's detector is not for two threads at once and the pipeline holds the GIL for much
of its run, so a server that analyses probes in its own process runs one at a time
whatever the number of cores. Here each worker decodes a probe and runs detection,
landmarks and embedding on it; the server only waits. A worker that dies (the
out-of-memory killer, a crash in native code) fails the requests it had with
:class:`~facetrace.errors.InferenceUnavailable` (a 503) instead of leaving them waiting,
and the pool is started afresh for the next request.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from facetrace import errors
from facetrace.config import PipelineOptions
from facetrace.engine import FacePipeline
from facetrace.imaging import DecodeBudget, ImageLimits, decode_image
from facetrace.pool import exit_with_parent
from facetrace.types import BoundingBox, Face, Landmarks

log = logging.getLogger(__name__)

#: seconds one analysis may take before its request is answered 503: a 20 MB photo
#: takes a few seconds on a busy machine, so this only catches a stuck worker
DEFAULT_TIMEOUT_S = 120.0


@dataclass(frozen=True, slots=True)
class Analysis:
    """A photo's upright size and every face found in it, largest first, in the photo's
    own coordinates (however it was decoded)."""

    width: int
    height: int
    faces: tuple[Face, ...]


def _in_photo(face: Face, scale: float) -> Face:
    """``face`` found in pixels decoded at ``scale`` of the photo's side, in the photo's
    own coordinates."""
    if scale == 1.0:
        return face
    d = face.detection
    box = d.box
    detection = replace(
        d,
        box=BoundingBox(
            math.floor(box.x1 / scale),
            math.floor(box.y1 / scale),
            math.ceil(box.x2 / scale),
            math.ceil(box.y2 / scale),
        ),
        landmarks=Landmarks.from_array(d.landmarks.as_array() / scale),
    )
    return replace(face, detection=detection)


@dataclass(frozen=True, slots=True)
class _Failure:
    """An error raised in a worker, sent back as values (domain errors do not all
    survive pickling: their constructors take more than the message)."""

    kind: str
    message: str
    source: str = ""
    reason: str = ""


_WORKER: dict[str, Any] = {}  # the worker process's pipeline and limits


def _init_worker(
    options: PipelineOptions, limits: ImageLimits, max_decoded_pixels: int | None = None
) -> None:
    exit_with_parent()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    _WORKER["pipeline"] = FacePipeline(options.for_worker())
    _WORKER["limits"] = limits
    _WORKER["max_decoded_pixels"] = max_decoded_pixels


def _run(
    data: bytes, source: str, box: tuple[int, int, int, int] | None, detector: str | None
) -> Analysis | _Failure:
    try:
        image = decode_image(
            data,
            source=source,
            limits=_WORKER["limits"],
            max_decoded_pixels=_WORKER.get("max_decoded_pixels"),
        )
        pipeline: FacePipeline = _WORKER["pipeline"]
        if box is None:
            faces = tuple(pipeline.analyse(image.pixels, detector=detector))
        else:  # the box is in the photo's own coordinates
            scaled = BoundingBox(*(round(v * image.scale) for v in box))
            faces = (pipeline.analyse_box(image.pixels, scaled),)
        w, h = image.upright_size
        return Analysis(width=w, height=h, faces=tuple(_in_photo(f, image.scale) for f in faces))
    except errors.ImageError as exc:
        return _Failure(type(exc).__name__, str(exc), exc.source, exc.reason)
    except errors.InvalidRequest as exc:
        return _Failure("InvalidRequest", str(exc))
    except Exception as exc:  # any other failure goes back as words, never unpicklable
        return _Failure(type(exc).__name__, str(exc))


def _ping() -> int:
    """Make the worker load its models (detector and embedder) now; its pid."""
    pipeline: FacePipeline = _WORKER["pipeline"]
    pipeline.detect(np.zeros((64, 64, 3), dtype=np.uint8))
    size = pipeline.descriptor.chip_size
    pipeline.embed_chips(np.zeros((1, size, size, 3), dtype=np.uint8))
    return os.getpid()


def _raise(failure: _Failure) -> None:
    if failure.kind == "ImageTooLarge":
        raise errors.ImageTooLarge(failure.source, failure.reason)
    if failure.kind == "ImageError":
        raise errors.ImageError(failure.source, failure.reason)
    if failure.kind == "InvalidRequest":
        raise errors.InvalidRequest(failure.message)
    if failure.kind == "ModelUnavailable":
        raise errors.ModelUnavailable(failure.message)
    raise errors.InferenceUnavailable(f"face analysis failed: {failure.kind}: {failure.message}")


class InferencePool:
    """``workers`` processes analysing photos; safe to call from many threads at once.

    Args:
        options: the gallery's pipeline options (each worker gets one inference thread).
        limits: the decoding limits for probes.
        workers: processes (default: one per core).
        timeout_s: longest wait for one analysis before it is answered as unavailable.
        max_decoded_pixels: a larger JPEG is decoded reduced to at least this area (see
            :func:`facetrace.imaging.decode_image`); the answers say by how much.
    """

    def __init__(
        self,
        options: PipelineOptions,
        *,
        limits: ImageLimits,
        workers: int | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_decoded_pixels: int | None = None,
    ) -> None:
        self.options = options
        self.max_decoded_pixels = max_decoded_pixels
        self.limits = limits
        self.workers = max(1, workers or os.cpu_count() or 1)
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None
        self._closed = False
        self.restarts = 0  # pools replaced after a worker died

    def _current(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._closed:
                raise errors.InferenceUnavailable("the face-analysis workers were shut down")
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    max_workers=self.workers,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_init_worker,
                    initargs=(self.options, self.limits, self.max_decoded_pixels),
                )
            return self._pool

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        """Drop a pool whose worker died; the next call starts a new one."""
        with self._lock:
            if self._pool is broken:
                self._pool = None
                self.restarts += 1
        broken.shutdown(wait=False, cancel_futures=True)

    def _wait(self, pool: ProcessPoolExecutor, future: Future[Any]) -> Any:
        try:
            return future.result(timeout=self.timeout_s)
        except BrokenProcessPool as exc:
            log.error("a face-analysis worker died; starting the pool again: %s", exc)
            self._replace(pool)
            raise errors.InferenceUnavailable(
                "a face-analysis worker stopped unexpectedly while analysing this photo; "
                "the workers are being restarted: try again in a moment"
            ) from exc
        except FutureTimeout as exc:
            future.cancel()
            raise errors.InferenceUnavailable(
                f"face analysis did not finish within {self.timeout_s:.0f} s: the service "
                "is overloaded or a worker is stuck; try again later"
            ) from exc

    def _call(
        self,
        data: bytes,
        source: str,
        box: tuple[int, int, int, int] | None,
        detector: str | None = None,
    ) -> Analysis:
        pool = self._current()
        try:
            future = pool.submit(_run, data, source, box, detector)
        except BrokenProcessPool as exc:  # it broke before this request reached it
            self._replace(pool)
            raise errors.InferenceUnavailable(
                "the face-analysis workers stopped unexpectedly and are being restarted: "
                "try again in a moment"
            ) from exc
        result = self._wait(pool, future)
        if isinstance(result, _Failure):
            _raise(result)
        assert isinstance(result, Analysis)
        return result

    def analyse(self, data: bytes, *, source: str, detector: str | None = None) -> Analysis:
        """Decode ``data`` and find every face with its vector (one pipeline run, with
        ``detector`` instead of the configured one if given). Raises ImageError
        (ImageTooLarge), InvalidRequest (an unknown detector), or InferenceUnavailable
        when no worker could answer."""
        return self._call(data, source, None, detector)

    def analyse_box(self, data: bytes, *, source: str, box: tuple[int, int, int, int]) -> Face:
        """The face inside ``box`` (the photo's own coordinates): landmarks found in it,
        then its vector."""
        return self._call(data, source, box).faces[0]

    def warm(self) -> list[int]:
        """Start the workers and load their models now rather than on the first probes;
        returns the worker pids (fewer than ``workers`` if one was still busy)."""
        pool = self._current()
        futures = [pool.submit(_ping) for _ in range(self.workers)]
        return sorted({int(self._wait(pool, f)) for f in futures})

    def pids(self) -> list[int]:
        """The worker processes alive now (for tests and diagnostics)."""
        with self._lock:
            pool = self._pool
        procs = getattr(pool, "_processes", None) or {}
        return sorted(int(p) for p in procs)

    def close(self) -> None:
        """Stop the workers; later calls are refused with InferenceUnavailable."""
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


class ProbeAnalyser:
    """Probe photos analysed for request threads: on an :class:`InferencePool` of
    ``workers`` processes (started on first use, as many as there are cores in the
    service), or with ``workers=0`` in this process, one at a time under ``lock`` (dlib's
    detector is not for two threads at once). Either way inside the decode ``budget``:
    a photo's header is read first and the photo waits for room before anything decodes
    it. The service's state owns one and closes it at shutdown.

    Args:
        pipeline: returns the gallery's pipeline (its options, models cache included, are
            the workers'); called on first use, so the gallery may still be opening.
        limits: the decoding limits for probes; max_decoded_pixels: a larger JPEG is
            decoded reduced to at least this area (:func:`facetrace.imaging.decode_image`).
        lock: held around an analysis in this process (the service shares it with an
            import that runs its pipeline inline).
    """

    def __init__(
        self,
        pipeline: Callable[[], FacePipeline],
        *,
        limits: ImageLimits,
        budget: DecodeBudget,
        workers: int = 0,
        max_decoded_pixels: int | None = None,
        lock: threading.Lock | None = None,
    ) -> None:
        self._pipeline = pipeline
        self.limits = limits
        self.budget = budget
        self.workers = max(0, workers)
        self.max_decoded_pixels = max_decoded_pixels
        self._lock = lock or threading.Lock()
        self._start_lock = threading.Lock()
        self._pool: InferencePool | None = None
        self._closed = False

    def pool(self) -> InferencePool | None:
        """The worker processes (started on first use), None when probes are analysed in
        this process. Refused (InferenceUnavailable) once closed."""
        if self.workers == 0:
            return None
        pool = self._pool
        if pool is not None:
            return pool
        options = self._pipeline().options
        with self._start_lock:
            if self._closed:
                raise errors.InferenceUnavailable("the face-analysis workers were shut down")
            if self._pool is None:
                self._pool = InferencePool(
                    options,
                    limits=self.limits,
                    workers=self.workers,
                    max_decoded_pixels=self.max_decoded_pixels,
                )
            return self._pool

    def analyse(self, data: bytes, *, source: str, detector: str | None = None) -> Analysis:
        """Decode a photo and find every face with its vector, largest first (one pipeline
        run, with ``detector`` if given). Raises ImageError, InvalidRequest for an unknown
        detector (before decoding), Busy when the budget has no room in time,
        InferenceUnavailable when no worker could answer; a photo without a face gives no
        faces. Boxes and landmarks are in the photo's own (upright) coordinates."""
        pipeline = self._pipeline()
        pipeline.detector_for(detector)  # an unknown name is refused before decoding
        pool = self.pool()
        if pool is not None:
            with self.budget.admitting(
                data, source=source, limits=self.limits, max_decoded_pixels=self.max_decoded_pixels
            ):
                return pool.analyse(data, source=source, detector=detector)
        with self.budget.decoding(
            data, source=source, limits=self.limits, max_decoded_pixels=self.max_decoded_pixels
        ) as image:
            with self._lock:
                faces = pipeline.analyse(image.pixels, detector=detector)
            w, h = image.upright_size
            return Analysis(
                width=w, height=h, faces=tuple(_in_photo(f, image.scale) for f in faces)
            )

    def analyse_box(self, data: bytes, *, source: str, box: tuple[int, int, int, int]) -> Face:
        """The face inside ``box`` (the photo's own coordinates): landmarks found in the
        box, then its vector; inside the decode budget like :meth:`analyse`."""
        pool = self.pool()
        if pool is not None:
            with self.budget.admitting(
                data, source=source, limits=self.limits, max_decoded_pixels=self.max_decoded_pixels
            ):
                return pool.analyse_box(data, source=source, box=box)
        with self.budget.decoding(
            data, source=source, limits=self.limits, max_decoded_pixels=self.max_decoded_pixels
        ) as image:
            scaled = BoundingBox(*(round(v * image.scale) for v in box))
            pipeline = self._pipeline()
            with self._lock:
                face = pipeline.analyse_box(image.pixels, scaled)
            return _in_photo(face, image.scale)

    def close(self) -> None:
        """Stop the worker processes; later analyses are refused."""
        with self._start_lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()
