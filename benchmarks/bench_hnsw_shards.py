"""Experiment: one HNSW graph against a gallery split in shards searched in parallel.

    python -m benchmarks.bench_hnsw_shards [--size 1000000] [--shards 2]

Not a facetrace index kind (yet): it measures whether splitting the graph and
searching the shards on every core at once (FAISS ``IndexShards``, one C++ thread per
shard, results merged) buys the latency a single graph cannot reach on one core.
Same gallery, queries and ground truth as :mod:`benchmarks.bench_index`. Writes the
"HNSW shards" section of BENCHMARKS.md unless ``--no-write``.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import sys
import time

import faiss
import numpy as np

from benchmarks.bench_index import K, latencies_ms, recall_at_k
from benchmarks.bench_index import build_gallery as make_gallery

log = logging.getLogger(__name__)


def run(size: int, shards: int, m: int, ef_construction: int, efs: list[int]) -> list[str]:
    """Markdown rows: one per efSearch, for the single graph and for the shards."""
    gallery, enrolled, strangers, _ = make_gallery(size)
    queries = {"enrolled": enrolled[:400], "strangers": strangers[:400]}
    both = np.vstack(list(queries.values()))
    faiss.omp_set_num_threads(2)
    _, truth_both = faiss.knn(both, gallery, K, metric=faiss.METRIC_INNER_PRODUCT)
    split = len(queries["enrolled"])
    truth = {"enrolled": truth_both[:split], "strangers": truth_both[split:]}
    rows = []
    bounds = np.linspace(0, size, shards + 1).astype(int)
    sharded = faiss.IndexShards(gallery.shape[1], True, True)  # threaded, successive ids
    parts = []
    start = time.perf_counter()
    for lo, hi in itertools.pairwise(bounds):
        graph = faiss.IndexHNSWFlat(gallery.shape[1], m, faiss.METRIC_INNER_PRODUCT)
        graph.hnsw.efConstruction = ef_construction
        graph.add(gallery[lo:hi])
        parts.append(graph)  # IndexShards does not own its shards: keep them alive
        sharded.add_shard(graph)
    log.info("built %d shards in %.0f s", shards, time.perf_counter() - start)
    faiss.omp_set_num_threads(1)
    for ef in efs:
        params = faiss.SearchParametersHNSW(efSearch=ef)
        recalls = []
        for name, q in queries.items():
            _, found = sharded.search(q, K, params=params)
            recalls.append(recall_at_k(found, truth[name]))
        p50, p99 = latencies_ms(lambda q, p=params: sharded.search(q, K, params=p), both)
        rows.append(
            f"| {shards} x HNSW{m} (efC {ef_construction}) | {ef} | {recalls[0]:.3f} "
            f"| {recalls[1]:.3f} | {p50:.2f} | {p99:.2f} |"
        )
        log.info("%s", rows[-1])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--m", type=int, default=48)
    parser.add_argument("--ef-construction", type=int, default=256)
    parser.add_argument("--efs", default="64,96,128,160,192,256")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    rows = run(
        args.size, args.shards, args.m, args.ef_construction, [int(e) for e in args.efs.split(",")]
    )
    table = "\n".join(
        [
            "| index | efSearch | recall@10 enrolled | recall@10 strangers | p50 ms | p99 ms |",
            "|---|---|---|---|---|---|",
            *rows,
        ]
    )
    print(table)
    if not args.no_write:
        from benchmarks.common import write_section

        body = (
            f"{args.size:,} faces (the gallery of the vector index section), split into "
            f"{args.shards} graphs searched at once, one C++ thread each (FAISS "
            "`IndexShards`), top-10 merged. Latency is one query at a time, so it uses "
            f"{args.shards} cores per query; compare with the single graph's rows above.\n\n"
            + table
        )
        command = "python -m benchmarks.bench_hnsw_shards " + " ".join(sys.argv[1:])
        write_section("index-shards", "HNSW shards searched in parallel", command, body)


if __name__ == "__main__":
    main()
