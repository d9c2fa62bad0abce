"""Vector index benchmark: build time, memory, latency, throughput and recall@10.

    python -m benchmarks.bench_index [--sizes 100000,1000000] [--kinds flat,hnsw,ivf-sq8]

For each gallery size, the gallery is the enrolled part of LFW (real dlib embeddings,
see :mod:`benchmarks.lfw_embeddings`) filled up with synthetic faces drawn to match
them (:mod:`benchmarks.gallery_data`). Two query sets: *enrolled* (a held-out photo of
someone with other photos in the gallery) and *strangers* (people not in the gallery:
their true neighbours are only near-ties among impostors, the hard case for graphs).
Ground truth is an exact scan (``faiss.knn``), timed as the physical reference.

Prints Markdown and returns (and saves in ``.bench/index-<size>.json``) a dict.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import numpy.typing as npt

from benchmarks import gallery_data, lfw_embeddings
from facetrace.index.base import MISSING_ID, Selector
from facetrace.index.factory import make_index
from facetrace.index.faiss_ann import IvfIndex
from facetrace.index.hnsw import HnswIndex

log = logging.getLogger(__name__)

K = 10
F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]
OUT = lfw_embeddings.REPO_ROOT / ".bench"

HNSW_EF = (32, 64, 96, 128, 192, 256, 320, 384)
IVF_NPROBE = (16, 32, 64, 128, 256, 512)
BUILD_PARAMS: dict[str, dict[str, Any]] = {"hnsw": {"m": 48}}
#: kinds measured here that are a recipe with parameters: HNSW as one graph searched on
#: one core, next to the default (one shard per core, searched at once)
BENCH_RECIPES: dict[str, tuple[str, dict[str, Any]]] = {"hnsw-1graph": ("hnsw", {"shards": 1})}


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def recall_at_k(found: I64, truth: I64) -> float:
    """Mean share of the true top-k found, over queries."""
    hits = [len(set(f.tolist()) & set(t.tolist())) / K for f, t in zip(found, truth, strict=True)]
    return float(np.mean(hits))


def latencies_ms(search: Callable[[F32], object], queries: F32) -> tuple[float, float]:
    """p50 and p99 of one-query-at-a-time latency, in milliseconds."""
    times = []
    for row in range(len(queries)):
        q = queries[row : row + 1]
        start = time.perf_counter()
        search(q)
        times.append(time.perf_counter() - start)
    arr = np.asarray(times) * 1000
    return float(np.percentile(arr, 50)), float(np.percentile(arr, 99))


def build_gallery(n: int, seed: int = 1) -> tuple[F32, F32, F32, dict[str, float]]:
    """(gallery (n, 128), enrolled queries, stranger queries, similarity stats)."""
    vectors, labels = lfw_embeddings.load()
    split = gallery_data.split_lfw(vectors, labels, seed=seed)
    model = gallery_data.fit(vectors, labels)
    fill = n - len(split.gallery)
    gallery = np.empty((n, vectors.shape[1]), dtype=np.float32)
    gallery[: len(split.gallery)] = split.gallery[:n]
    synth, synth_labels = gallery_data.synthesize(
        model, max(fill, 0), seed=seed, out=gallery[len(split.gallery) :]
    )
    stats = {
        **{f"real_{k}": v for k, v in gallery_data.similarity_stats(vectors, labels).items()},
        **{
            f"synthetic_{k}": v
            for k, v in gallery_data.similarity_stats(
                synth[:200_000], synth_labels[:200_000]
            ).items()
        },
    }
    del synth
    return gallery, split.enrolled_queries, split.stranger_queries, stats


def sweep(
    name: str,
    search: Callable[[F32, int], tuple[F32, I64]],
    settings: tuple[int, ...],
    queries: dict[str, F32],
    truth: dict[str, I64],
    threads: int,
) -> list[dict[str, Any]]:
    """Latency (one thread, one query at a time), batch throughput (``threads``) and
    recall of one index over its search-time parameter."""
    faiss.omp_set_num_threads(1)
    rows = []
    both = np.vstack(list(queries.values()))
    for value in settings:
        row: dict[str, Any] = {"kind": name, "param": value}
        for qname, q in queries.items():
            _, found = search(q, value)
            row[f"recall_{qname}"] = recall_at_k(found, truth[qname])
        row["p50_ms"], row["p99_ms"] = latencies_ms(lambda q, v=value: search(q, v), both)
        faiss.omp_set_num_threads(threads)
        start = time.perf_counter()
        search(both, value)
        row["batch_qps"] = len(both) / (time.perf_counter() - start)
        faiss.omp_set_num_threads(1)
        log.info("%s", row)
        rows.append(row)
    return rows


def hnsw_bytes(index: HnswIndex) -> int:
    """Vectors, links, levels, labels and group tags of every shard."""
    total = 0
    for shard in index.graphs:
        graph = shard.graph
        hnsw = graph.hnsw
        total += (
            graph.ntotal * graph.d * 4
            + hnsw.neighbors.size() * 4
            + hnsw.offsets.size() * 8
            + hnsw.levels.size() * 4
            + shard.labels.nbytes
            + shard.groups.nbytes
        )
    return int(total)


def ivf_bytes(index: IvfIndex) -> int:
    ivf = index._ivf
    # codes and ids in the lists, centroids, and the id -> group table (16 bytes a face)
    total = ivf.ntotal * (ivf.code_size + 8 + 16) + ivf.nlist * ivf.d * 4
    if index._store is not None:
        store = index._store
        # fp16 codes, labels, and the sorted lookup built at the first search
        total += store.codes.ntotal * store.codes.code_size + store.labels.nbytes * 3
    return int(total)


def run(
    sizes: list[int],
    kinds: list[str],
    *,
    n_queries: int = 400,
    ef_construction: int = 256,
    delete_share: float = 0.1,
    threads: int = 2,
) -> dict[str, Any]:
    """Benchmark every kind at every size; returns {size: {...}} and writes JSON."""
    results: dict[str, Any] = {}
    for n in sizes:
        t0 = time.perf_counter()
        gallery, enrolled, strangers, stats = build_gallery(n)
        queries = {"enrolled": enrolled[:n_queries], "strangers": strangers[:n_queries]}
        both = np.vstack(list(queries.values()))
        ids = np.arange(n, dtype=np.int64)
        log.info("gallery of %d built in %.0f s", n, time.perf_counter() - t0)
        res: dict[str, Any] = {"n": n, "similarity": stats, "rows": [], "builds": []}
        # exact reference: faiss's brute-force kNN straight over the array
        faiss.omp_set_num_threads(threads)
        start = time.perf_counter()
        _, exact_both = faiss.knn(both, gallery, 100, metric=faiss.METRIC_INNER_PRODUCT)
        exact_batch_s = time.perf_counter() - start
        split = len(queries["enrolled"])
        truth100 = {"enrolled": exact_both[:split], "strangers": exact_both[split:]}
        truth = {k: v[:, :K] for k, v in truth100.items()}
        faiss.omp_set_num_threads(1)
        p50, p99 = latencies_ms(
            lambda q, g=gallery: faiss.knn(q, g, K, metric=faiss.METRIC_INNER_PRODUCT),
            both[: min(len(both), max(20, int(2e8 // n)))],
        )
        res["rows"].append(
            {
                "kind": "exact scan",
                "param": "-",
                "recall_enrolled": 1.0,
                "recall_strangers": 1.0,
                "p50_ms": p50,
                "p99_ms": p99,
                "batch_qps": len(both) / exact_batch_s,
            }
        )
        res["builds"].append({"kind": "exact scan", "build_s": 0.0, "bytes": gallery.nbytes})
        # a "collection" to delete and a filter of the same size
        rng = np.random.default_rng(5)
        victims = rng.choice(ids, size=int(delete_share * n), replace=False)
        victim_set = set(victims.tolist())
        # each face tagged with its collection's id, as the gallery does: 1, the victims 2
        collections = np.ones(n, dtype=np.int64)
        collections[victims] = 2
        truth_after = {
            k: np.array([[i for i in row if i not in victim_set][:K] for row in v])
            for k, v in truth100.items()
        }
        for kind in kinds:
            if kind == "flat" and n > 2_000_000:
                continue  # the exact scan above is the same computation
            log.info("building %s at %d", kind, n)
            faiss.omp_set_num_threads(threads)
            start = time.perf_counter()
            recipe, extra = BENCH_RECIPES.get(kind, (kind, {}))
            build_params = {**BUILD_PARAMS.get(recipe, {}), **extra}
            if recipe == "hnsw":
                build_params["ef_construction"] = ef_construction
            index: Any = make_index(recipe, gallery.shape[1], **build_params)
            index.add(ids, gallery, collections)
            build_s = time.perf_counter() - start
            if kind == "flat":
                nbytes = n * (gallery.shape[1] * 4 + 8)
                search = lambda q, v, ix=index: ix.search(q, K)  # noqa: E731
                params: tuple[int, ...] = (0,)
            elif kind.startswith("hnsw"):
                nbytes = hnsw_bytes(index)
                search = lambda q, v, ix=index: ix.search(q, K, ef_search=v)  # noqa: E731
                params = HNSW_EF
            else:
                nbytes = ivf_bytes(index)
                search = lambda q, v, ix=index: ix.search(q, K, nprobe=v)  # noqa: E731
                params = IVF_NPROBE
            res["builds"].append(
                {"kind": kind, "build_s": build_s, "bytes": nbytes, "settings": index.settings()}
            )
            log.info("built %s in %.0f s, %.0f bytes/face", kind, build_s, nbytes / n)
            settings = index.settings()
            default_param = settings.get("ef_search", settings.get("nprobe_default", 0))
            params = tuple(sorted({*params, default_param}))
            rows = sweep(kind, search, params, queries, truth, threads)
            for row in rows:  # the setting a gallery searches with unless told otherwise
                row["default"] = row["param"] == default_param
            res["rows"].extend(rows)
            faiss.omp_set_num_threads(1)
            # filter: a 10% collection, a group filter answered inside the search (the
            # gallery's --collection); the first search builds the cached group bitmap
            allow = Selector(groups=frozenset({2}))
            vict_vecs = gallery[np.sort(victims)]
            _, fil_truth = faiss.knn(both, vict_vecs, K, metric=faiss.METRIC_INNER_PRODUCT)
            fil_truth = np.sort(victims)[fil_truth]
            start = time.perf_counter()
            index.search(both[:1], K, allow)
            first_ms = (time.perf_counter() - start) * 1000
            start = time.perf_counter()
            _, fil_found = index.search(both, K, allow)
            filter_s = time.perf_counter() - start
            fil_p50, _ = latencies_ms(lambda q, ix=index, a=allow: ix.search(q, K, a), both[:100])
            # delete that collection
            start = time.perf_counter()
            removed = index.remove(victims)
            delete_s = time.perf_counter() - start
            default = params[len(params) // 2] if kind != "flat" else 0
            _, after = search(both, default)
            leaked = int(np.isin(after[after != MISSING_ID], victims).sum())
            res["builds"][-1].update(
                {
                    "filter10_recall": recall_at_k(fil_found, fil_truth),
                    "filter10_p50_ms": fil_p50,
                    "filter10_first_ms": first_ms,
                    "filter10_batch_qps": len(both) / filter_s,
                    "delete_s": delete_s,
                    "deleted": removed,
                    "leaked_after_delete": leaked,
                    "recall_after_delete": recall_at_k(
                        after, np.vstack([truth_after["enrolled"], truth_after["strangers"]])
                    ),
                    "after_delete_param": default,
                }
            )
            log.info("%s", res["builds"][-1])
            del index
        res["peak_rss_gib"] = peak_rss_gib()
        keep_previous(res, OUT / f"index-{n}.json", kinds)
        results[str(n)] = res
        OUT.mkdir(exist_ok=True)
        (OUT / f"index-{n}.json").write_text(json.dumps(res, indent=1, default=str))
        del gallery
    return results


def keep_previous(res: dict[str, Any], path: Path, kinds: list[str]) -> None:
    """Carry over the rows of kinds this run did not measure from an earlier run's file,
    so ``--kinds ivf-sq8`` re-measures one kind without dropping the others."""
    if not path.exists():
        return
    old = json.loads(path.read_text())
    rerun = {*kinds, "exact scan"}
    res["rows"] = [r for r in old["rows"] if r["kind"] not in rerun] + res["rows"]
    res["builds"] = [b for b in old["builds"] if b["kind"] not in rerun] + res["builds"]
    res["peak_rss_gib"] = max(res["peak_rss_gib"], old.get("peak_rss_gib", 0.0))
    kinds_order = ("exact scan", "flat", "hnsw", "hnsw-1graph", "ivf-sq8", "ivf-sq8-raw")
    order = {k: i for i, k in enumerate(kinds_order)}
    res["rows"].sort(key=lambda r: order.get(r["kind"], len(order)))
    res["builds"].sort(key=lambda b: order.get(b["kind"], len(order)))


def markdown(results: dict[str, Any]) -> str:
    """The results as Markdown tables (one per size)."""
    lines: list[str] = []
    for n, res in results.items():
        lines.append(f"#### {int(n):,} faces\n")
        lines.append(
            "| index | search param | recall@10 enrolled | recall@10 strangers "
            "| p50 ms | p99 ms | batch q/s |"
        )
        lines.append("|---|---|---|---|---|---|---|")
        for r in res["rows"]:
            lines.append(
                f"| {r['kind']} | {r['param']}{' (default)' if r.get('default') else ''} "
                f"| {r['recall_enrolled']:.3f} "
                f"| {r['recall_strangers']:.3f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} "
                f"| {r['batch_qps']:.0f} |"
            )
        lines.append("")
        lines.append(
            "| index | build s | bytes/face | 10% filter: recall, p50 ms "
            "| delete 10%: s, leaked, recall after |"
        )
        lines.append("|---|---|---|---|---|")
        for b in res["builds"]:
            filt = dele = "-"
            if "delete_s" in b:
                filt = f"{b['filter10_recall']:.3f}, {b['filter10_p50_ms']:.2f}"
                dele = (
                    f"{b['delete_s']:.2f}, {b['leaked_after_delete']}, "
                    f"{b['recall_after_delete']:.3f} (param {b['after_delete_param']})"
                )
            lines.append(
                f"| {b['kind']} | {b['build_s']:.1f} | {b['bytes'] / int(n):.0f} "
                f"| {filt} | {dele} |"
            )
        lines.append(f"\nPeak RSS of the run so far: {res['peak_rss_gib']:.1f} GiB\n")
    return "\n".join(lines)


CAPACITY_RAM = {"24 GiB machine": 24 * 2**30, "256 GiB machine": 256 * 2**30}
CLUSTER = ("10 nodes x 256 GiB (Milvus)", 10 * 256 * 2**30)
USABLE = 0.75  # the rest: OS, SQL, the process itself, headroom for builds


def capacity_table(results: dict[str, Any]) -> str:
    """Bytes per face per index kind (largest measured size) and faces that fit."""
    per_face: dict[str, tuple[float, int]] = {}
    for n, res in results.items():
        for b in res["builds"]:
            per_face[b["kind"]] = (b["bytes"] / int(n), int(n))
    lines = [
        "| index | bytes/face (measured at) | " + " | ".join(CAPACITY_RAM) + f" | {CLUSTER[0]} |",
        "|---|---|" + "---|" * (len(CAPACITY_RAM) + 1),
    ]
    for kind, (bpf, n) in per_face.items():
        if kind == "exact scan":
            continue  # the same payload as flat
        fits = [f"{USABLE * ram / bpf / 1e6:,.0f}M" for ram in CAPACITY_RAM.values()]
        # Milvus keeps its own copy per replica and ~30% overhead (segments, growing data)
        cluster = f"{USABLE * CLUSTER[1] / (bpf * 1.3) / 1e9:,.1f}B"
        lines.append(f"| {kind} | {bpf:.0f} ({n:,}) | " + " | ".join(fits) + f" | {cluster} |")
    server = milvus_capacity_row()
    if server:
        lines.append(server)
    return "\n".join(lines)


def milvus_capacity_row() -> str:
    """The Milvus server's row, measured by ``benchmarks.bench_milvus`` at its largest size
    (``.bench/milvus-<n>.json``): the whole server's RSS after loading per face, so an
    upper bound; no 30 % added for the cluster column, the overhead is in the figure.
    "" when the server has not been measured here at 1M faces or more."""
    saved = []
    for path in OUT.glob("milvus-*.json"):
        res = json.loads(path.read_text())
        if res.get("milvus", {}).get("rss_mib"):
            saved.append(res)
    if not saved:
        return ""
    res = max(saved, key=lambda r: int(r["n"]))
    n = int(res["n"])
    if n < 1_000_000:
        return ""  # the server's own baseline (~250 MiB) would dominate the figure
    bpf = float(res["milvus"]["rss_mib"]) * 2**20 / n
    fits = [f"{USABLE * ram / bpf / 1e6:,.0f}M" for ram in CAPACITY_RAM.values()]
    cluster = f"{USABLE * CLUSTER[1] / bpf / 1e9:,.1f}B"
    name = f"Milvus server, {res['milvus']['index']} (server RSS)"
    return f"| {name} | {bpf:.0f} ({n:,}) | " + " | ".join(fits) + f" | {cluster} |"


def similarity_table(results: dict[str, Any]) -> str:
    """Real vs synthetic genuine/impostor cosine statistics (from the first size)."""
    stats = next(iter(results.values()))["similarity"]
    keys = ["genuine_p1", "genuine_p50", "impostor_p50", "impostor_p99", "impostor_p99.99"]
    lines = ["| cosine | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
    for src in ("real", "synthetic"):
        lines.append(f"| {src} | " + " | ".join(f"{stats[f'{src}_{k}']:.3f}" for k in keys) + " |")
    return "\n".join(lines)


def saved_results() -> dict[str, Any]:
    """Every size measured so far (``.bench/index-*.json``), smallest first."""
    found = {}
    for path in OUT.glob("index-*.json"):
        res = json.loads(path.read_text())
        found[str(res["n"])] = res
    return dict(sorted(found.items(), key=lambda kv: int(kv[0])))


def write_benchmarks_md(notes: str, command: str) -> None:
    """Replace the "Vector index" section of BENCHMARKS.md with every saved result."""
    from benchmarks.common import write_section

    results = saved_results()
    body = "\n\n".join(
        [
            notes.strip(),
            "### Synthetic faces against real ones\n\n" + similarity_table(results),
            "### Results\n\n" + markdown(results),
            "### Capacity\n\n"
            f"Index payload only, {USABLE:.0%} of memory usable.\n\n" + capacity_table(results),
        ]
    )
    write_section("index", "Vector index", command, body)


NOTES_FILE = Path(__file__).with_name("bench_index_notes.md")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--kinds", default="flat,hnsw,hnsw-1graph,ivf-sq8,ivf-sq8-raw")
    parser.add_argument("--queries", type=int, default=400)
    parser.add_argument("--ef-construction", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2, help="for builds and batches")
    parser.add_argument("--nlist", type=int, default=None, help="IVF lists (default 4*sqrt(n))")
    parser.add_argument("--no-write", action="store_true", help="leave BENCHMARKS.md alone")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.nlist:
        for kind in ("ivf-sq8", "ivf-sq8-raw"):
            BUILD_PARAMS[kind] = {"nlist": args.nlist}
    results = run(
        [int(s) for s in args.sizes.split(",")],
        args.kinds.split(","),
        n_queries=args.queries,
        ef_construction=args.ef_construction,
        threads=args.threads,
    )
    print(markdown(results))  # the command's report
    if not args.no_write:
        command = "python -m benchmarks.bench_index " + " ".join(sys.argv[1:])
        write_benchmarks_md(NOTES_FILE.read_text(encoding="utf-8"), command.strip())


if __name__ == "__main__":
    main()
