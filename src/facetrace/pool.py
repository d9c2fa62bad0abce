"""Run a per-photo function over many items, in this process or in a process pool.

Ingest, evaluation and calibration all do the same thing: build one face
pipeline per process (one inference thread each) and map a function over
photos, results in input order. Only the parent writes anywhere.
"""

from __future__ import annotations

import functools
import logging
import multiprocessing
import multiprocessing.connection
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from facetrace.config import PipelineOptions
from facetrace.engine import FacePipeline
from facetrace.errors import FacetraceError
from facetrace.imaging import ImageLimits

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

PhotoFn = Callable[[T, FacePipeline, ImageLimits], R]

# the worker process's pipeline, built once by the pool initializer
_WORKER: dict[str, Any] = {}

MIN_ITEMS_FOR_POOL = 4  # below this, starting processes costs more than it saves
CHUNKSIZE = 4


def exit_with_parent() -> None:
    """End this worker process when the process that started it ends, however it ends.

    A pool's workers hold both ends of its call queue, so a parent killed with
    ``kill -9`` (or by the out-of-memory killer) would leave them waiting forever, each
    with its models loaded. Every pool initializer calls this (ingest, the service's
    face analysis, video frames): the parent's sentinel becomes ready when it dies."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _init_worker(options: PipelineOptions, limits: ImageLimits, nice: int = 0) -> None:
    exit_with_parent()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if nice:
        os.nice(nice)
    _WORKER["pipeline"] = FacePipeline(options.for_worker())
    _WORKER["limits"] = limits


def _call_in_worker(fn: PhotoFn[T, R], item: T) -> R:
    return fn(item, _WORKER["pipeline"], _WORKER["limits"])


def _cache_models_in_worker() -> str | None:
    """Convert the models missing from the cache, here in a worker; why not, if it failed."""
    pipeline: FacePipeline = _WORKER["pipeline"]
    try:
        pipeline.cache_models()
    except FacetraceError as exc:
        return str(exc)
    return None


class PhotoPool:
    """``workers`` spawned processes, each with its own pipeline (one inference thread),
    started now, before their photos are known.

    A command that knows it will map photos starts its pool first, so that the workers
    import (about half a second each) while it opens the gallery and converts the models,
    instead of after; :func:`map_photos` also makes one for itself when given none. Each
    worker loads its models at its first photo. Close it (or use it as a context manager)
    to stop the workers."""

    def __init__(
        self, options: PipelineOptions, limits: ImageLimits, workers: int, *, nice: int = 0
    ) -> None:
        self.options = options
        self.limits = limits
        self.workers = max(1, workers)
        self.nice = nice
        self._executor = ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(options, limits, nice),
        )
        # each submit to a pool without an idle worker spawns one: all start now
        for _ in range(self.workers):
            self._executor.submit(os.getpid)
        # The first worker ready converts the models a fresh data directory lacks (about
        # 0.7 s, most of it importing onnx), once for all and on its own core, while this
        # process goes on (opening the gallery); no photo is sent before it is done.
        self._models: Future[str | None] = self._executor.submit(_cache_models_in_worker)

    def wait_for_models(self) -> None:
        """Return once the models are in the cache (or could not be converted: each worker
        then reports it for its photos)."""
        try:
            problem = self._models.result()
        except BrokenProcessPool as exc:  # the photos' map reports it again
            problem = str(exc)
        if problem:
            log.warning("could not prepare the model cache: %s", problem)

    def map(self, fn: PhotoFn[T, R], items: Sequence[T]) -> Iterator[R]:
        """``fn(item, pipeline, limits)`` for each item in the workers, in input order;
        closing the iterator early drops the items not started."""
        return self._executor.map(
            functools.partial(_call_in_worker, fn), items, chunksize=CHUNKSIZE
        )

    def pids(self) -> list[int]:
        """The worker processes alive now (for tests and diagnostics)."""
        procs = getattr(self._executor, "_processes", None) or {}
        return sorted(int(p) for p in procs)

    def close(self) -> None:
        """Stop the workers, dropping the items not started."""
        self._executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> PhotoPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def map_photos(
    fn: PhotoFn[T, R],
    items: Sequence[T],
    *,
    options: PipelineOptions,
    limits: ImageLimits,
    workers: int,
    inline: FacePipeline | None = None,
    nice: int = 0,
    pool: PhotoPool | None = None,
) -> Iterator[R]:
    """``fn(item, pipeline, limits)`` for each item, in input order.

    Args:
        fn: a module-level function (it is pickled to the workers).
        items: picklable inputs.
        options: pipeline settings; workers get one inference thread each.
        limits: image limits passed to ``fn``.
        workers: processes; 1 (or a short list) runs here, with ``inline`` if given.
        inline: an already-built pipeline to reuse when running in this process.
        nice: added to the workers' niceness (a service's import yields the cores to its
            searches: the scheduler runs a search's worker first when both are ready).
        pool: workers started earlier (:class:`PhotoPool`, with these ``options``,
            ``limits`` and ``nice``), used whatever ``workers`` and the item count say;
            the caller closes it.

    Raises:
        ValueError: ``pool`` was started with other options, limits or niceness.
    """
    if pool is not None and (pool.options, pool.limits, pool.nice) != (options, limits, nice):
        raise ValueError("the pool was started with other pipeline options, limits or nice")
    if pool is None and (workers <= 1 or len(items) < MIN_ITEMS_FOR_POOL):
        pipeline = inline or FacePipeline(options)
        for item in items:
            yield fn(item, pipeline, limits)
        return
    own = pool is None
    running = pool if pool is not None else PhotoPool(options, limits, workers, nice=nice)
    try:
        # missing models are converted once, by a worker, before any photo is sent: the
        # workers would otherwise each convert the same files at their first photo
        running.wait_for_models()
        yield from running.map(fn, items)
    finally:
        if own:  # a caller that stops early (a cancelled import) does not wait for the rest
            running.close()
