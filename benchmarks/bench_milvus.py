"""Milvus standalone server next to FAISS, in one run: build, latency, recall, filter, deletes.

    python -m benchmarks.bench_milvus [--sizes 100000,1000000] [--queries 200]

Both backends get the same gallery (LFW embeddings filled up with synthetic faces,
:func:`benchmarks.bench_index.build_gallery`), the same queries and the same exact
ground truth (``faiss.knn``). Faces are tagged with ten collections; the filter is one
of them (10 % of the gallery), checked against an exact scan of that collection.

* FAISS: the kind facetrace picks for the size (``flat`` to 200k, ``hnsw`` above),
  built through :func:`facetrace.index.factory.make_index`.
* Milvus: the standalone server of the PyPI package ``milvus`` (started here on free
  loopback ports with its default settings, stopped at the end), through facetrace's
  :class:`~facetrace.index.milvus.MilvusIndex`: ``HNSW`` (M 32, efConstruction 200)
  swept over ``ef``, read with ``Strong`` consistency (every read waits for the
  server's next 200 ms time tick) and with ``Bounded`` (the search itself).

Build time is insert + flush + index build until every row is indexed (+ load).
Deletes: 1,000 faces removed in batches of 100 (the size of a photo or subject
delete), time per batch, and checked never to come back. Writes ``.bench/milvus-<n>.json``
and the ``milvus`` section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import subprocess
import sys
import time
from typing import Any

import faiss
import numpy as np
import numpy.typing as npt

from benchmarks import lfw_embeddings
from benchmarks.bench_index import K, build_gallery, latencies_ms, recall_at_k
from benchmarks.common import ROOT, write_section
from facetrace.index.base import Selector, VectorIndex
from facetrace.index.factory import choose_kind, make_index
from facetrace.index.milvus import MilvusIndex

log = logging.getLogger(__name__)
F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]
OUT = ROOT / ".bench"
GROUPS = 10
MILVUS_EF = (32, 64, 128, 256)
MILVUS_BUILD = {"M": 32, "efConstruction": 200}
FAISS_EF = (64, 128, 176, 256)


def _rss_mib(pid: int | None) -> float:
    if pid is None:
        return float("nan")
    out = subprocess.run(["ps", "-o", "rss=", "-p", str(pid)], capture_output=True, text=True)
    return int(out.stdout.strip() or 0) / 1024


def _measure(
    label: str,
    search: Any,
    queries: F32,
    truth: I64,
    filt_truth: I64,
    selector: Selector,
    latency_queries: int,
) -> dict[str, Any]:
    """Recall@10 (all, and within the 10 % filter), p50/p99 one query at a time."""
    _, found = search(queries, K, None)
    _, found_f = search(queries, K, selector)
    lat = queries[:latency_queries]
    p50, p99 = latencies_ms(lambda q: search(q, K, None), lat)
    f50, f99 = latencies_ms(lambda q: search(q, K, selector), lat)
    row = {
        "setting": label,
        "recall": recall_at_k(found, truth),
        "p50_ms": p50,
        "p99_ms": p99,
        "filter_recall": recall_at_k(found_f, filt_truth),
        "filter_p50_ms": f50,
        "filter_p99_ms": f99,
    }
    log.info("%s", row)
    return row


def _deletes(index: VectorIndex, ids: I64, queries: F32) -> dict[str, Any]:
    gone = ids[:: max(1, ids.size // 1000)][:1000]
    times = []
    for start in range(0, gone.size, 100):
        t = time.perf_counter()
        index.remove(gone[start : start + 100].tolist())
        times.append(time.perf_counter() - t)
    _, found = index.search(queries, K)
    back = np.isin(found, gone).sum()
    return {
        "deleted": int(gone.size),
        "ms_per_100": 1000 * float(np.median(times)),
        "came_back": int(back),
    }


def _wait_indexed(index: MilvusIndex, n: int, timeout: float = 3600) -> None:
    client, name = index._client, index.collection
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = client.describe_index(name, "vector")
        if int(info.get("indexed_rows", 0)) >= n and not int(info.get("pending_index_rows", 0)):
            return
        time.sleep(2)
    raise TimeoutError(f"Milvus did not index {n} rows in {timeout} s")


def synthetic_gallery(n: int, n_queries: int, dim: int = 128) -> tuple[F32, F32, str]:
    """Clustered unit vectors (identities of ~4 photos, the spread of face vectors), and
    queries near gallery identities and far from them, when no LFW cache exists."""
    rng = np.random.default_rng(11)
    centres = rng.standard_normal((max(1, n // 4), dim)).astype(np.float32)
    gallery = centres[rng.integers(0, centres.shape[0], n)]
    gallery += 0.55 * rng.standard_normal((n, dim)).astype(np.float32)
    near = centres[rng.integers(0, centres.shape[0], n_queries // 2)]
    near += 0.55 * rng.standard_normal(near.shape).astype(np.float32)
    far = rng.standard_normal((n_queries - near.shape[0], dim)).astype(np.float32)
    queries = np.vstack([near, far])
    for arr in (gallery, queries):
        arr /= np.linalg.norm(arr, axis=1, keepdims=True)
    return gallery, queries, "synthetic clustered vectors (no LFW cache)"


def _load() -> str:
    """The load average (1, 5, 15 minutes): the machine is shared."""
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def run_size(
    n: int, n_queries: int, uri: str, pid: int | None, faiss_kind: str = ""
) -> dict[str, Any]:
    load_start = _load()
    if lfw_embeddings.CACHE.exists():
        gallery, enrolled, strangers, _ = build_gallery(n)
        queries = np.vstack([enrolled[: n_queries // 2], strangers[: n_queries // 2]])
        source = "LFW dlib embeddings filled up with synthetic faces"
    else:
        gallery, queries, source = synthetic_gallery(n, n_queries)
    ids = np.arange(n, dtype=np.int64)
    groups = (np.random.default_rng(3).integers(0, GROUPS, n) + 1).astype(np.int64)
    selector = Selector(groups=frozenset({1}))
    faiss.omp_set_num_threads(2)
    _, truth = faiss.knn(queries, gallery, K, metric=faiss.METRIC_INNER_PRODUCT)
    in_one = np.flatnonzero(groups == 1)
    _, local = faiss.knn(queries, gallery[in_one], K, metric=faiss.METRIC_INNER_PRODUCT)
    filt_truth = ids[in_one][local]
    latency_queries = min(len(queries), 200)
    res: dict[str, Any] = {
        "n": n,
        "queries": len(queries),
        "data": source,
        "load_start": load_start,
        "faiss": {},
        "milvus": {},
    }

    kind = faiss_kind or choose_kind(n)
    start = time.perf_counter()
    fx = make_index(kind, gallery.shape[1])
    fx.add(ids, gallery, groups)
    res["faiss"] = {"kind": kind, "build_s": time.perf_counter() - start, "rows": []}
    faiss.omp_set_num_threads(1)
    settings: tuple[Any, ...] = FAISS_EF if kind == "hnsw" else ("exact",)
    for ef in settings:
        search = fx.search
        if kind == "hnsw":
            search = lambda q, k, sel, v=int(ef), ix=fx: ix.search(q, k, sel, ef_search=v)  # type: ignore[call-arg]  # noqa: E731
        res["faiss"]["rows"].append(
            _measure(
                f"{kind} ef {ef}" if kind == "hnsw" else kind,
                search,
                queries,
                truth,
                filt_truth,
                selector,
                latency_queries,
            )
        )
    res["faiss"]["deletes"] = _deletes(fx, ids, queries)
    del fx

    index = MilvusIndex(
        gallery.shape[1],
        uri=uri,
        collection=f"bench_{n}",
        index_type="HNSW",
        index_params=MILVUS_BUILD,
        num_partitions=64,
        timeout=600,
    )
    try:
        start = time.perf_counter()
        index.add(ids, gallery, groups)
        inserted = time.perf_counter() - start
        index._client.flush(index.collection, timeout=3600)
        _wait_indexed(index, n)
        index._client.release_collection(index.collection)
        index._client.load_collection(index.collection, timeout=3600)
        res["milvus"] = {
            "index": f"HNSW M {MILVUS_BUILD['M']} efC {MILVUS_BUILD['efConstruction']}",
            "insert_s": inserted,
            "build_s": time.perf_counter() - start,
            "rss_mib": _rss_mib(pid),
            "rows": [],
        }
        for level in ("Bounded", "Strong"):
            index.consistency_level = level
            for ef in MILVUS_EF if level == "Bounded" else (128,):
                index.search_params = {"ef": ef}
                res["milvus"]["rows"].append(
                    _measure(
                        f"HNSW ef {ef}, {level}",
                        index.search,
                        queries,
                        truth,
                        filt_truth,
                        selector,
                        latency_queries,
                    )
                )
        index.consistency_level = "Strong"
        res["milvus"]["deletes"] = _deletes(index, ids, queries)
    finally:
        index._client.drop_collection(index.collection)
        index.close()
    res["load_end"] = _load()
    OUT.mkdir(exist_ok=True)
    (OUT / f"milvus-{n}.json").write_text(json.dumps(res, indent=1))
    return res


def markdown(results: list[dict[str, Any]]) -> str:
    lines = [
        "| faces | backend | setting | build | recall@10 | p50 / p99 ms | 10 % filter "
        "recall@10 | filter p50 / p99 ms | delete 100 faces |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for res in results:
        n = f"{res['n']:,}"
        for name, part in (("FAISS", res["faiss"]), ("Milvus server", res["milvus"])):
            build = f"{part['build_s']:.0f} s"
            dels = part["deletes"]
            delete = f"{dels['ms_per_100']:.1f} ms ({dels['came_back']} came back)"
            for row in part["rows"]:
                lines.append(
                    f"| {n} | {name} | {row['setting']} | {build} | {row['recall']:.3f} | "
                    f"{row['p50_ms']:.2f} / {row['p99_ms']:.2f} | {row['filter_recall']:.3f} | "
                    f"{row['filter_p50_ms']:.2f} / {row['filter_p99_ms']:.2f} | {delete} |"
                )
        m = res["milvus"]
        lines.append(
            f"\n{n} faces ({res.get('data', 'LFW')}): Milvus insert {m['insert_s']:.0f} s "
            f"of the {m['build_s']:.0f} s build, server RSS {m['rss_mib']:.0f} MiB after loading"
            f" ({m['rss_mib'] * 2**20 / res['n']:.0f} bytes per face, the whole server)."
            + (
                f" Load average (1/5/15 min) {res['load_start']} at the start of this size, "
                f"{res['load_end']} at its end."
                if "load_start" in res
                else ""
            )
        )
    return "\n".join(lines)


def capacity_row() -> str:
    """The capacity table's header and the server's row (see
    :func:`benchmarks.bench_index.milvus_capacity_row`, which adds it to the index
    section's table too)."""
    from benchmarks.bench_index import CAPACITY_RAM, CLUSTER, milvus_capacity_row

    header = (
        "| index | bytes/face (measured at) | " + " | ".join(CAPACITY_RAM) + f" | {CLUSTER[0]} |"
    )
    rule = "|---|---|" + "---|" * (len(CAPACITY_RAM) + 1)
    row = milvus_capacity_row()
    return "\n".join([header, rule, row]) if row else "(needs a run at 1M faces or more)"


def write(command: str) -> None:
    """The ``milvus`` section of BENCHMARKS.md from every size saved in ``.bench``."""
    saved = []
    for path in sorted(OUT.glob("milvus-*.json"), key=lambda p: int(p.stem.split("-")[1])):
        saved.append(json.loads(path.read_text()))
    body = (
        "Milvus 2.3.5 standalone (PyPI `milvus`, default server settings, embedded etcd, "
        "local storage) on this machine, through facetrace's MilvusIndex over gRPC on "
        "loopback, next to FAISS in the same run on the same vectors and queries. "
        "Latency is one query at a time from one client thread. `Strong` reads wait for "
        "the server's next time tick (200 ms by default); `Bounded` is the search itself.\n\n"
        + markdown(saved)
        + "\n\nCapacity, measured (the row the index section's capacity table gains for the "
        "server; 75 % of memory usable):\n\n" + capacity_row()
    )
    write_section("milvus", "Milvus standalone server next to FAISS", command, body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument(
        "--faiss-kind",
        default="",
        help="the FAISS kind beside the server (default: what facetrace picks for the size; "
        "flat saves the 1M HNSW build on a busy machine)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    sys.path.insert(0, str(ROOT))
    from tests.milvus_server import milvus_server

    # a SIGTERM (a timeout, a Ctrl-C of the lock holder) still stops the server below
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sizes = [int(s) for s in args.sizes.split(",")]
    results = []
    with milvus_server() as running:
        for n in sizes:
            results.append(run_size(n, args.queries, running.uri, running.pid, args.faiss_kind))
    write(
        f"python -m benchmarks.bench_milvus --sizes {args.sizes} --queries {args.queries}"
        + (f" --faiss-kind {args.faiss_kind}" if args.faiss_kind else "")
    )
    print(markdown(results))


if __name__ == "__main__":
    main()
