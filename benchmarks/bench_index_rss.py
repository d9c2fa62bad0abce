"""Memory of a process that holds only the 10M-face IVF-SQ8 index (nothing else).

    python -m benchmarks.bench_index_rss build   # ~10 min: generate, build, save (4 GB)
    python -m benchmarks.bench_index_rss load    # fresh process: load, search, peak RSS

The main benchmark's process also holds the float32 gallery and the generator's
temporaries, so its peak RSS says nothing about what serving the index costs.
"""

from __future__ import annotations

import json
import resource
import sys
import time

import faiss
import numpy as np

from benchmarks.bench_index import OUT, build_gallery
from facetrace.index.factory import load_index, make_index

DIR = OUT / "ivf10m"
N = 10_000_000


def build() -> None:
    faiss.omp_set_num_threads(2)
    gallery, enrolled, strangers, _ = build_gallery(N)
    DIR.mkdir(parents=True, exist_ok=True)
    np.save(DIR / "queries.npy", np.vstack([enrolled[:300], strangers[:300]]))
    index = make_index("ivf-sq8", 128, nlist=2048)
    index.add(np.arange(N, dtype=np.int64), gallery)
    del gallery
    index.save(DIR / "index")


def load() -> dict[str, float]:
    faiss.omp_set_num_threads(1)
    start = time.perf_counter()
    index = load_index(DIR / "index", 128)
    load_s = time.perf_counter() - start
    queries = np.load(DIR / "queries.npy")
    index.search(queries[:1], 10)  # builds the float16 store's id lookup once
    times = []
    for row in range(len(queries)):
        start = time.perf_counter()
        index.search(queries[row : row + 1], 10, nprobe=256)  # type: ignore[call-arg]
        times.append(time.perf_counter() - start)
    return {
        "count": index.count,
        "load_s": load_s,
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "p50_ms_nprobe256": float(np.median(times) * 1000),
    }


if __name__ == "__main__":
    if sys.argv[1:] == ["build"]:
        build()
    else:
        print(json.dumps(load()))  # the command's report
