"""The faces of sampled frames found on every core: a pool of spawned worker processes.

Nearly all of a video's cost is per frame and independent of the other frames: the CNN
detector's pyramid (about 85 % of it on a 720p frame), then the landmarks, chips and
vectors of its faces. Decoding, cut detection and tracking are cheap and need the frames
in order, so they stay in the calling process; the frames go to ``workers`` processes
(one per core by default), each with its own :class:`VideoFaceFinder` on one inference
thread, a few frames ahead, and their faces come back in frame order. The tracker
therefore sees exactly what the in-process finder would give it.

Why processes rather than ONNX Runtime's own threads: the detector's network is small
(six convolutions on one pyramid level at a time), so intra-op threads wait on each other
at every operator; on a shared machine a waiting thread spins or is descheduled, and two
threads on 2 busy cores cost about twice the CPU of one for the same frame
(``BENCHMARKS.md``, "Search by video"). One frame per process needs no synchronisation.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from facetrace.config import PipelineOptions
from facetrace.engine import FacePipeline
from facetrace.errors import InferenceUnavailable
from facetrace.pool import exit_with_parent
from facetrace.video.faces import DETECT_PIXELS, FrameFace, RGBImage, VideoFaceFinder

_WORKER: dict[str, Any] = {}


def _init_worker(options: PipelineOptions, detect_pixels: int, min_score: float) -> None:
    exit_with_parent()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    pipeline = FacePipeline(options.for_worker())
    _WORKER["finder"] = VideoFaceFinder(
        pipeline, detect_pixels=detect_pixels, min_score=min_score, threads=1
    )


def _faces(pixels: RGBImage, frame_index: int, timestamp_s: float) -> list[FrameFace]:
    finder: VideoFaceFinder = _WORKER["finder"]
    return finder.faces(pixels, frame_index, timestamp_s)


def _warm() -> int:
    finder: VideoFaceFinder = _WORKER["finder"]
    finder.warm()
    return os.getpid()


class FrameWorkers:
    """``workers`` processes finding the faces of frames; the pool starts on first use.

    Args:
        options: the pipeline options of the gallery (so the vectors are comparable);
            each worker runs them on one inference thread.
        detect_pixels, min_score: as :class:`VideoFaceFinder`.
        workers: processes (default: one per core).
    """

    def __init__(
        self,
        options: PipelineOptions,
        *,
        detect_pixels: int = DETECT_PIXELS,
        min_score: float = 0.0,
        workers: int | None = None,
    ) -> None:
        self.options = options
        self.detect_pixels = detect_pixels
        self.min_score = min_score
        self.workers = max(1, workers or os.cpu_count() or 1)
        self._pool: ProcessPoolExecutor | None = None

    @property
    def window(self) -> int:
        """Frames sent ahead of the one the tracker waits for: two per worker keeps every
        worker busy while bounding the frames held in memory."""
        return 2 * self.workers

    def _current(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
                initargs=(self.options, self.detect_pixels, self.min_score),
            )
        return self._pool

    def warm(self) -> None:
        """Start the workers and load their models now (not on the first frames)."""
        pool = self._current()
        for future in [pool.submit(_warm) for _ in range(self.workers)]:
            self.result(future)

    def submit(
        self, pixels: RGBImage, frame_index: int, timestamp_s: float
    ) -> Future[list[FrameFace]]:
        """The faces of one frame, found by the next free worker."""
        pool = self._current()
        try:
            return pool.submit(_faces, pixels, frame_index, timestamp_s)
        except BrokenProcessPool as exc:
            self.close()
            raise InferenceUnavailable(
                "a video worker process stopped unexpectedly: analyse the video again"
            ) from exc

    def result(self, future: Future[Any]) -> Any:
        """``future``'s result; a worker that died is reported as InferenceUnavailable
        and the pool is started afresh on the next use."""
        try:
            return future.result()
        except BrokenProcessPool as exc:
            self.close()
            raise InferenceUnavailable(
                "a video worker process stopped unexpectedly (out of memory, or a crash in "
                "native code): analyse the video again"
            ) from exc

    def pids(self) -> list[int]:
        """The worker processes started now (for tests and diagnostics)."""
        procs = getattr(self._pool, "_processes", None) or {}
        return sorted(int(p) for p in procs)

    def close(self) -> None:
        """Stop the workers (frames not started are dropped); the next use starts a pool."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> FrameWorkers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
