"""Vector indexes behind one protocol (:class:`facetrace.index.base.VectorIndex`)."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_search_threads = 1
_applied = threading.local()  # the count this thread last gave OpenMP


def set_search_threads(n: int) -> None:
    """Threads FAISS may use inside one search (call at an entry point).

    One probe at a time is scanned fastest by one thread: with OpenMP's threads
    waiting on a busy machine, a 1,000-face flat search took 16 ms on two
    threads and 0.03 ms on one (BENCHMARKS.md). Batch work (index builds,
    benchmarks) sets its own count. OpenMP keeps the count per thread, so the
    threads that later search (a web server's pool) apply it with
    :func:`use_search_threads`.
    """
    global _search_threads
    _search_threads = max(1, n)
    _applied.n = None  # this thread too, even if it had applied an older count
    use_search_threads()


def use_search_threads() -> None:
    """Give the calling thread the search thread count (cheap after its first call).

    A thread OpenMP has not seen starts with one thread per core, whatever the
    thread that called :func:`set_search_threads` was told.
    """
    if getattr(_applied, "n", None) == _search_threads:
        return
    import faiss

    faiss.omp_set_num_threads(_search_threads)
    _applied.n = _search_threads


@contextmanager
def batch_threads(n: int | None = None) -> Iterator[int]:
    """FAISS on ``n`` threads (default: every core) for a build, then back as it was.

    An HNSW build of 1M faces takes ~13 min on two cores and about twice that on the
    one thread searches use, so rebuilding a lost index on open must not inherit it.
    """
    import faiss

    before = faiss.omp_get_max_threads()
    wanted = max(1, n or os.cpu_count() or 1)
    faiss.omp_set_num_threads(wanted)
    try:
        yield wanted
    finally:
        faiss.omp_set_num_threads(before)
