"""Grouping benchmark: quality of each algorithm and threshold on labelled sets, and the
time and memory of grouping 100k and 1M faces.

    python -m benchmarks.bench_grouping [--parts quality,scale,resamples] [--sizes 100000,1000000]

*Resamples* (:mod:`benchmarks.grouping_resamples`): precision as an unseen set would see
it, on identity-disjoint resamples of the LFW half with a calibration refitted on the
other identities; its own section of BENCHMARKS.md ("grouping-resamples").

*Quality*: the labelled sets of :mod:`benchmarks.labelled_sets` (LFW half, AT&T,
webphotos13; facetrace's own pipeline vectors), and, to see how precision holds across
sets, LFW subsets: 10 random halves by identity, the people with two or more photos
only, and LFW without its two largest identities; and LFW with AT&T mixed in. For each
target false-match rate (threshold from the packaged calibration table) and algorithm:
pairwise and BCubed precision/recall/F1 (:mod:`facetrace.grouping.metrics`).

*Scale*: real LFW vectors plus synthetic faces drawn to match them
(:mod:`benchmarks.gallery_data`, as the index benchmark does); the graph index is
built (exact up to 50k, HNSW beyond), every face searched for its neighbours, and each
algorithm run on the graph; times, edges, edge recall against an exact scan of a
sample, peak RSS, and quality against the synthetic identities.

Results go to ``.bench/grouping-*.json`` and the "Grouping" section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import time
from typing import Any

import faiss
import numpy as np
import numpy.typing as npt

from benchmarks import gallery_data, grouping_resamples, labelled_sets
from benchmarks.common import ROOT, write_section
from facetrace.calibration import packaged_calibration
from facetrace.grouping.cluster import Algorithm, cluster, cluster_for_precision
from facetrace.grouping.folder import DEFAULT_FMR, DEFAULT_MIN_QUALITY
from facetrace.grouping.graph import (
    DEFAULT_K,
    GRAPH_HNSW_EF,
    build_index,
    fmr_for_size,
    knn_graph,
    two_hop,
)
from facetrace.grouping.metrics import score
from facetrace.index.flat import FlatIndex

log = logging.getLogger(__name__)

OUT = ROOT / ".bench"
FMRS = (3e-4, 1e-4, 7e-5, 5e-5, 3e-5, 1e-5, 1e-6)
CALIBRATION = "dlib-resnet-v1+flip"
F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _threshold(fmr: float) -> float:
    cal = packaged_calibration(CALIBRATION)
    if cal is None:
        raise SystemExit(f"no packaged calibration {CALIBRATION}")
    return float(cal.threshold_for_fmr(fmr))


def quality_sets(min_quality: float) -> dict[str, tuple[F32, I64]]:
    """Every labelled set and subset measured, faces below ``min_quality`` left out."""
    lfw = labelled_sets.load("lfw")
    att = labelled_sets.load("att")
    web = labelled_sets.load("webphotos13")

    def good(s: labelled_sets.LabelledSet) -> tuple[F32, I64]:
        keep = s.quality >= min_quality
        return s.vectors[keep], s.labels[keep]

    lv, ll = good(lfw)
    sets: dict[str, tuple[F32, I64]] = {
        "LFW half": (lv, ll),
        "AT&T": good(att),
        "webphotos13": good(web),
    }
    uids, counts = np.unique(ll, return_counts=True)
    rng = np.random.default_rng(1)
    for i in range(10):
        pick = np.isin(ll, rng.choice(uids, uids.size // 2, replace=False))
        sets[f"LFW random half {i}"] = (lv[pick], ll[pick])
    multi = np.isin(ll, uids[counts >= 2])
    sets["LFW, 2+ photos only"] = (lv[multi], ll[multi])
    small = ~np.isin(ll, uids[counts >= 100])
    sets["LFW without its 2 largest"] = (lv[small], ll[small])
    av, al = good(att)
    sets["LFW + AT&T"] = (np.concatenate([lv, av]), np.concatenate([ll, al + int(ll.max()) + 1]))
    return sets


def run_quality(min_quality: float = DEFAULT_MIN_QUALITY) -> dict[str, Any]:
    """Every set x target FMR x algorithm; returns and saves the rows."""
    rows: list[dict[str, Any]] = []
    for name, (vectors, labels) in quality_sets(min_quality).items():
        loosest = _threshold(max(FMRS))
        base = knn_graph(build_index(vectors), vectors, min_score=loosest, k=DEFAULT_K)
        methods = list(Algorithm) if not name.startswith("LFW random") else [Algorithm.AVERAGE]
        for fmr in FMRS:
            t = _threshold(fmr)
            graph = base.above(t)
            for method in methods:
                start = time.perf_counter()
                found = cluster(graph, method, threshold=t, vectors=vectors)
                s = score(found, labels)
                rows.append(
                    {
                        "set": name,
                        "fmr": fmr,
                        "threshold": t,
                        "algorithm": method.value,
                        "edges": graph.edges,
                        "seconds": time.perf_counter() - start,
                        **s.as_dict(),
                    }
                )
        log.info("%s: %d faces, %d people", name, len(vectors), np.unique(labels).size)
    result = {"min_quality": min_quality, "rows": rows}
    _save("grouping-quality.json", result)
    return result


def scale_gallery(n: int, seed: int = 1) -> tuple[F32, I64]:
    """``n`` faces: the LFW half's real vectors, then synthetic people drawn to match."""
    lfw = labelled_sets.load("lfw")
    model = gallery_data.fit(lfw.vectors, lfw.labels)
    vectors = np.empty((n, lfw.vectors.shape[1]), dtype=np.float32)
    real = min(n, len(lfw.vectors))
    vectors[:real] = lfw.vectors[:real]
    labels = np.empty(n, dtype=np.int64)
    labels[:real] = lfw.labels[:real]
    if n > real:
        _, synth_labels = gallery_data.synthesize(model, n - real, seed=seed, out=vectors[real:])
        labels[real:] = synth_labels + int(lfw.labels.max()) + 1
    return vectors, labels


def run_scale(
    sizes: list[int],
    fmr: float = DEFAULT_FMR,
    sample: int = 2000,
    methods: list[Algorithm] | None = None,
) -> dict[str, Any]:
    """Time and memory of each step of grouping ``n`` faces, for each size."""
    out: dict[str, Any] = {"fmr": fmr, "k": DEFAULT_K, "sizes": []}
    t = _threshold(fmr)
    for n in sizes:
        vectors, labels = scale_gallery(n)
        row: dict[str, Any] = {"n": n, "threshold": t, "rss_gallery_gib": peak_rss_gib()}
        start = time.perf_counter()
        index = build_index(vectors)
        row["index"] = type(index).__name__
        row["index_s"] = time.perf_counter() - start
        row["ef_search"] = GRAPH_HNSW_EF[1] if row["index"] == "HnswIndex" else None
        start = time.perf_counter()
        graph = knn_graph(index, vectors, min_score=t, k=DEFAULT_K)
        row["graph_s"] = time.perf_counter() - start
        row["edges_searched"] = graph.edges
        row["edge_recall_searched"] = _edge_recall(vectors, graph, t, sample)
        exact = isinstance(index, FlatIndex)
        del index
        start = time.perf_counter()
        if not exact:  # as neighbour_graph does for an approximate index
            graph = two_hop(graph, vectors, min_score=t)
        row["two_hop_s"] = time.perf_counter() - start
        row["edges"] = graph.edges
        row["rss_graph_gib"] = peak_rss_gib()
        row["edge_recall"] = _edge_recall(vectors, graph, t, sample)
        log.info("%s", {k: v for k, v in row.items() if k != "algorithms"})
        row["algorithms"] = []
        runs: list[tuple[Algorithm, float, float]] = [(m, fmr, t) for m in methods or Algorithm]
        sized = fmr_for_size(fmr, n)
        if sized < fmr:  # the threshold facetrace group uses at this size
            runs.append((Algorithm.AVERAGE, sized, _threshold(sized)))
        for method, run_fmr, run_t in runs:
            if method == Algorithm.LEIDEN and n > 200_000:
                continue  # its Python edge list alone would need several GiB at 1M
            start = time.perf_counter()
            found = cluster(graph, method, threshold=run_t, vectors=vectors)
            took = time.perf_counter() - start
            s = score(found, labels)
            row["algorithms"].append(
                {
                    "algorithm": method.value,
                    "fmr": run_fmr,
                    "threshold": run_t,
                    "seconds": took,
                    "rss_gib": peak_rss_gib(),
                    **s.as_dict(),
                }
            )
            log.info("%d faces, %s at %.4f: %.1f s %s", n, method.value, run_t, took, s.as_dict())
        # what facetrace group does at this size: the size-adapted floor, raised where the
        # table expects more than its share of the grouped pairs to be strangers
        sized_t = _threshold(sized)
        start = time.perf_counter()
        found, used = cluster_for_precision(
            graph.above(sized_t),
            floor=sized_t,
            calibration=packaged_calibration(CALIBRATION),
            vectors=vectors,
        )
        took = time.perf_counter() - start
        s = score(found, labels)
        row["algorithms"].append(
            {"algorithm": "average, product rule", "fmr": sized, "threshold": used,
             "seconds": took, "rss_gib": peak_rss_gib(), **s.as_dict()}
        )  # fmt: skip
        log.info("%d faces, product rule at %.4f: %.1f s %s", n, used, took, s.as_dict())
        out["sizes"].append(row)
        _save("grouping-scale.json", out)
    out["synthetic"] = realism(fmr)
    _save("grouping-scale.json", out)
    return out


def realism(fmr: float, n: int = 200_000, pairs: int = 10_000_000) -> dict[str, Any]:
    """How the synthetic faces compare with the real ones they were fitted to: genuine
    and impostor score percentiles of each, and the share of impostor pairs of each at
    or above the grouping thresholds next to the calibration table's estimate."""
    lfw = labelled_sets.load("lfw")
    model = gallery_data.fit(lfw.vectors, lfw.labels)
    synth, synth_labels = gallery_data.synthesize(model, n, seed=7)
    cal = packaged_calibration(CALIBRATION)
    assert cal is not None
    out: dict[str, Any] = {
        "real": gallery_data.similarity_stats(lfw.vectors, lfw.labels),
        "synthetic": gallery_data.similarity_stats(synth, synth_labels),
        "pairs": pairs,
        "rates": [],
    }
    real = _impostor_scores(lfw.vectors, lfw.labels, pairs)
    fake = _impostor_scores(synth, synth_labels, pairs)
    for target in sorted({fmr, 1e-4, 1e-5, 1e-6, fmr_for_size(fmr, 1_000_000)}, reverse=True):
        t = _threshold(target)
        out["rates"].append(
            {
                "fmr": target,
                "threshold": t,
                "table": float(cal.false_match_rate(t)),
                "real": float((real >= t).mean()),
                "synthetic": float((fake >= t).mean()),
            }
        )
    log.info("synthetic realism: %s", out)
    return out


def _impostor_scores(vectors: F32, labels: I64, pairs: int) -> F32:
    """Scores of ``pairs`` random pairs of faces of different people."""
    rng = np.random.default_rng(3)
    parts = []
    for _ in range(0, pairs, 1_000_000):
        a = rng.integers(0, len(vectors), 1_000_000)
        b = rng.integers(0, len(vectors), 1_000_000)
        diff = labels[a] != labels[b]
        parts.append(np.einsum("ij,ij->i", vectors[a[diff]], vectors[b[diff]]))
    return np.concatenate(parts)


def _edge_recall(vectors: F32, graph: Any, t: float, sample: int) -> float:
    """Share of the exact above-threshold neighbours (top-k) of sampled faces the graph has."""
    rng = np.random.default_rng(0)
    rows = np.sort(rng.choice(len(vectors), size=min(sample, len(vectors)), replace=False))
    scores, nbrs = faiss.knn(
        vectors[rows], vectors, DEFAULT_K + 1, metric=faiss.METRIC_INNER_PRODUCT
    )
    have = set(zip(graph.src.tolist(), graph.dst.tolist(), strict=True))
    want = found = 0
    for r, srow, nrow in zip(rows.tolist(), scores, nbrs, strict=True):
        for s, j in zip(srow.tolist(), nrow.tolist(), strict=True):
            if j == r or j < 0 or s < t:
                continue
            want += 1
            found += (min(r, j), max(r, j)) in have
    return found / want if want else 1.0


def _save(name: str, data: dict[str, Any]) -> None:
    OUT.mkdir(exist_ok=True)
    (OUT / name).write_text(json.dumps(data, indent=1))


def _load(name: str) -> dict[str, Any] | None:
    path = OUT / name
    return json.loads(path.read_text()) if path.exists() else None


def _f(x: float) -> str:
    return f"{x:.4f}"


def markdown(quality: dict[str, Any] | None, scale: dict[str, Any] | None) -> str:
    """The BENCHMARKS.md section from the saved results."""
    parts: list[str] = []
    if quality is not None:
        rows = quality["rows"]
        parts.append(
            f"Faces below quality {quality['min_quality']} are left out, as `facetrace group` "
            "does. Threshold = the score whose false-match rate in the packaged calibration "
            f"table (`{CALIBRATION}`) is the target. k = {DEFAULT_K} neighbours per face.\n"
        )
        parts.append("### LFW half: every algorithm and threshold\n")
        parts.append(
            "| FMR target | threshold | algorithm | pairwise P | pairwise R | pairwise F1 "
            "| BCubed P | BCubed R | BCubed F1 | groups |\n" + "|---" * 10 + "|"
        )
        for r in rows:
            if r["set"] == "LFW half":
                parts.append(
                    f"| {r['fmr']:g} | {r['threshold']:.4f} | {r['algorithm']} "
                    f"| {_f(r['pairwise_precision'])} | {_f(r['pairwise_recall'])} "
                    f"| {_f(r['pairwise_f1'])} | {_f(r['bcubed_precision'])} "
                    f"| {_f(r['bcubed_recall'])} | {_f(r['bcubed_f1'])} | {r['groups']} |"
                )
        parts.append("\n### How precision holds across sets (average linkage)\n")
        sets = list(dict.fromkeys(r["set"] for r in rows if not r["set"].startswith("LFW random")))
        head = "| FMR target | " + " | ".join(sets) + " | 10 LFW random halves: min P, min R |"
        parts.append(head + "\n|" + "---|" * (len(sets) + 2))
        for fmr in FMRS:
            cells = []
            for name in sets:
                r = next(
                    x
                    for x in rows
                    if x["set"] == name and x["fmr"] == fmr and x["algorithm"] == "average"
                )
                cells.append(f"{_f(r['pairwise_precision'])} / {_f(r['bcubed_recall'])}")
            halves = [x for x in rows if x["set"].startswith("LFW random") and x["fmr"] == fmr]
            worst = (
                f"{_f(min(h['pairwise_precision'] for h in halves))} / "
                f"{_f(min(h['bcubed_recall'] for h in halves))}"
            )
            parts.append(f"| {fmr:g} | " + " | ".join(cells) + f" | {worst} |")
        parts.append("\nCells: pairwise precision / BCubed recall.\n")
        sizes = {
            r["set"]: (r["faces"], r["identities"])
            for r in rows
            if r["fmr"] == FMRS[0] and r["algorithm"] == "average"
        }
        parts.append(
            "Sets (faces, people): "
            + "; ".join(f"{k} {v[0]}, {v[1]}" for k, v in sizes.items() if "random" not in k)
            + f"; random halves {min(v[0] for k, v in sizes.items() if 'random' in k)}-"
            f"{max(v[0] for k, v in sizes.items() if 'random' in k)} faces.\n"
        )
    if scale is not None:
        parts.append(
            f"### Scale: real LFW + synthetic faces, FMR target {scale['fmr']:g}, "
            f"k = {scale['k']}\n"
        )
        parts.append(
            "| faces | graph index | efSearch | index build s | neighbour search s "
            "| edge recall searched | two-hop s | edges | edge recall | peak RSS after graph GiB "
            "|\n|---|---|---|---|---|---|---|---|---|---|"
        )
        for row in scale["sizes"]:
            parts.append(
                f"| {row['n']:,} | {row['index']} | {row.get('ef_search') or '-'} "
                f"| {row['index_s']:.1f} | {row['graph_s']:.1f} "
                f"| {row.get('edge_recall_searched', row['edge_recall']):.4f} "
                f"| {row.get('two_hop_s', 0.0):.1f} | {row['edges']:,} "
                f"| {row['edge_recall']:.4f} | {row['rss_graph_gib']:.2f} |"
            )
        parts.append(
            "\n| faces | algorithm | pair FMR | threshold | seconds | total with graph s "
            "| pairwise P | pairwise R | BCubed P | BCubed R | peak RSS GiB |"
            "\n|---|---|---|---|---|---|---|---|---|---|---|"
        )
        for row in scale["sizes"]:
            base = row["index_s"] + row["graph_s"] + row.get("two_hop_s", 0.0)
            for a in row["algorithms"]:
                q = [
                    _f(a[k]) if k in a else "-"
                    for k in (
                        "pairwise_precision",
                        "pairwise_recall",
                        "bcubed_precision",
                        "bcubed_recall",
                    )
                ]
                rss = f"{a['rss_gib']:.2f}" if "rss_gib" in a else "-"
                parts.append(
                    f"| {row['n']:,} | {a['algorithm']} | {a.get('fmr', scale['fmr']):.2g} "
                    f"| {a.get('threshold', row['threshold']):.4f} | {a['seconds']:.1f} "
                    f"| {base + a['seconds']:.1f} | " + " | ".join(q) + f" | {rss} |"
                )
        real = scale.get("synthetic")
        if real is not None:
            parts.append(
                "\n**How realistic the synthetic faces are.** Impostor pairs (different "
                "people) at or above each threshold: the calibration table's estimate, the "
                "real LFW half and 200,000 synthetic faces (10M random pairs each):\n"
            )
            parts.append(
                "| pair FMR target | threshold | table | real LFW | synthetic |\n"
                "|---|---|---|---|---|"
            )
            for r in real["rates"]:
                parts.append(
                    f"| {r['fmr']:.2g} | {r['threshold']:.4f} | {r['table']:.2g} "
                    f"| {r['real']:.2g} | {r['synthetic']:.2g} |"
                )
            st = ("genuine_p1", "genuine_p50", "impostor_p50", "impostor_p99", "impostor_p99.99")
            parts.append("\n| scores | " + " | ".join(st) + " |\n|---" * 1 + "|---" * len(st) + "|")
            for name in ("real", "synthetic"):
                parts.append(f"| {name} | " + " | ".join(f"{real[name][k]:.4f}" for k in st) + " |")
    return "\n".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--parts", default="quality,scale")
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--no-write", action="store_true", help="leave BENCHMARKS.md alone")
    parser.add_argument(
        "--algorithms", default="", help="comma-separated, for the scale part (default: all)"
    )
    parser.add_argument("--splits", type=int, default=20, help="for the resamples part")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    parts = args.parts.split(",")
    if "resamples" in parts:
        resampled = grouping_resamples.run(args.splits)
        _save("grouping-resamples.json", resampled)
        if not args.no_write:
            write_section(
                "grouping-resamples",
                "Grouping faces into people: precision on unseen people",
                f"python -m benchmarks.bench_grouping --parts resamples --splits {args.splits}",
                grouping_resamples.markdown(resampled),
            )
        parts.remove("resamples")
        if not parts:
            return
    if "quality" in parts:
        run_quality()
    if "scale" in parts:
        chosen = [Algorithm(a) for a in args.algorithms.split(",") if a]
        run_scale([int(s) for s in args.sizes.split(",")], methods=chosen or None)
    if not args.no_write and parts == ["scale"]:
        # a scale run alone has its own section: the quality figures above stay as measured
        write_section(
            "grouping-scale",
            "Grouping faces into people: scale",
            f"python -m benchmarks.bench_grouping --parts {args.parts} --sizes {args.sizes}"
            + (f" --algorithms {args.algorithms}" if args.algorithms else ""),
            markdown(None, _load("grouping-scale.json")),
        )
    elif not args.no_write:
        write_section(
            "grouping",
            "Grouping faces into people",
            f"python -m benchmarks.bench_grouping --parts {args.parts} --sizes {args.sizes}",
            markdown(_load("grouping-quality.json"), _load("grouping-scale.json")),
        )


if __name__ == "__main__":
    main()
