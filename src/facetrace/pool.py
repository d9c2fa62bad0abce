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
from concurrent.futures import ProcessPoolExecutor
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


def map_photos(
    fn: PhotoFn[T, R],
    items: Sequence[T],
    *,
    options: PipelineOptions,
    limits: ImageLimits,
    workers: int,
    inline: FacePipeline | None = None,
    nice: int = 0,
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
    """
    if workers <= 1 or len(items) < MIN_ITEMS_FOR_POOL:
        pipeline = inline or FacePipeline(options)
        for item in items:
            yield fn(item, pipeline, limits)
        return
    ctx = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=ctx,
        initializer=_init_worker,
        initargs=(options, limits, nice),
    )
    try:
        # Start every worker now (each submit to a pool without an idle worker spawns
        # one): they import while this process converts the models, instead of after.
        # They load no model before their first photo, which comes after the conversion.
        for _ in range(workers):
            pool.submit(os.getpid)
        try:  # convert missing model files once here, not in every worker at once
            (inline or FacePipeline(options)).cache_models()
        except FacetraceError as exc:  # each worker then reports it for its photos
            log.warning("could not prepare the model cache: %s", exc)
        yield from pool.map(functools.partial(_call_in_worker, fn), items, chunksize=CHUNKSIZE)
    finally:
        # a caller that stops early (a cancelled import) does not wait for the rest
        pool.shutdown(wait=True, cancel_futures=True)
