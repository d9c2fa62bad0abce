"""Vector indexes behind one protocol (:class:`facetrace.index.base.VectorIndex`)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager


def set_search_threads(n: int) -> None:
    """Threads FAISS may use inside one search (process-wide; call at an entry point).

    One probe at a time is scanned fastest by one thread: with OpenMP's threads
    waiting on a busy machine, a 1,000-face flat search took 16 ms on two
    threads and 0.03 ms on one (BENCHMARKS.md). Batch work (index builds,
    benchmarks) sets its own count.
    """
    import faiss

    faiss.omp_set_num_threads(max(1, n))


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
