"""Vector indexes behind one protocol (:class:`facetrace.index.base.VectorIndex`)."""

from __future__ import annotations


def set_search_threads(n: int) -> None:
    """Threads FAISS may use inside one search (process-wide; call at an entry point).

    One probe at a time is scanned fastest by one thread: with OpenMP's threads
    waiting on a busy machine, a 1,000-face flat search took 16 ms on two
    threads and 0.03 ms on one (BENCHMARKS.md). Batch work (index builds,
    benchmarks) sets its own count.
    """
    import faiss

    faiss.omp_set_num_threads(max(1, n))
