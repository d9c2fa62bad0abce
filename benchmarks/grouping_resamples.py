"""Grouping precision as an unseen set would see it: identity-disjoint resamples of the
LFW half, grouped at thresholds from a calibration table that never saw their people.

    python -m benchmarks.bench_grouping --parts resamples [--splits 20]

Each split cuts the LFW half's identities into halves A and B at random. A calibration
table is refitted on A's impostor pairs (``refit``), and from B four kinds of set are
drawn (70 % of B's identities each, about 2,000 faces):

``all``            every photo of the people drawn;
``no 100+``        without the people who have 100 photos or more (the LFW half's two);
``cap 20``         at most 20 random photos a person;
``cap 10, no 100+`` at most 10 a person and without the two largest: few true pairs,
                   so the same wrong merges cost most precision here.

Each set is grouped with average linkage at a fixed per-pair false-match rate (the
old default at 5e-5) and with two set-adaptive rules, which raise the
threshold above the default rate when the table expects too many strangers' links for
the set (:func:`edge_share_threshold`, tried and not taken, and the product's default
:func:`facetrace.grouping.cluster.cluster_for_precision`), with the refitted
table and with the packaged one (fitted on the whole LFW half, these people included).
Pairwise precision and BCubed recall are reported as mean and worst over the splits,
against LFW's labels as they are and with :data:`SAME_PERSON` corrected.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from benchmarks import labelled_sets
from facetrace.calibration import (
    Calibration,
    fit_calibration,
    impostor_scores,
    packaged_calibration,
)
from facetrace.grouping.cluster import DEFAULT_STRANGER_PAIR_SHARE, cluster, cluster_for_precision
from facetrace.grouping.folder import DEFAULT_MIN_QUALITY
from facetrace.grouping.graph import DEFAULT_K, NeighbourGraph, build_index, knn_graph
from facetrace.grouping.metrics import score

log = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]

#: LFW label errors met among the wrong groups at the default, each checked: one person
#: filed under two spellings of a name, or a photo filed under the other person it shows.
#: Key: a person's folder, or one photo (``Folder_000N``); value: the folder of the
#: person it really is.
SAME_PERSON = {
    "Yingfan_Wang": "Wang_Yingfan",
    "Hasan_Wirayuda": "Hassan_Wirajuda",
    "Noer_Moeis": "Noer_Muis",
    "Dai_Chul_Chyung": "Chyung_Dai-chul",
    "Doc_Rivers": "Glenn_Rivers",
    "Cristina_Kirchner": "Cristina_Fernandez",
    "Carlos_Ruckauf_0001": "Eduardo_Duhalde",  # shows Duhalde (issue 15's error analysis)
    "Andrew_Gilligan_0001": "Andrew_Caldecott",  # the same photo as Andrew_Caldecott_0001
    "Martha_Bowen_0002": "Gabrielle_Rose",  # the same photo as Gabrielle_Rose_0001
    "Takahiro_Mori_0001": "Shinya_Taniguchi",  # the same swimmer at the same ceremony
}

FIXED_FMRS = (1e-4, 5e-5, 4e-5, 3e-5, 2e-5)
ADAPTIVE_FLOOR = 5e-5  # the adaptive rules never go below the default rate's threshold
EDGE_SHARES = (0.02, 0.025)
PAIR_SHARES = (0.015, DEFAULT_STRANGER_PAIR_SHARE, 0.03)

Labels = I64
#: a rule: (base graph, vectors, table) -> (labels, threshold used)
Rule = tuple[str, Callable[[NeighbourGraph, F32, Calibration], tuple[Labels, float]]]


def edge_share_threshold(
    graph: NeighbourGraph, cal: Calibration, floor: float, share: float
) -> float:
    """The lowest score >= ``floor`` at which the table expects at most ``share`` of the
    graph's edges to join strangers (``FMR(t) n(n-1)/2`` of them), Benjamini-Hochberg
    style. Tried and not taken: the k-NN graph caps a large identity's true edges at k a
    face, so a large set with many one-photo people (the whole LFW half) looks worse
    than it groups and loses recall (BCubed R 0.849 at share 0.025)."""
    n = graph.n
    scores = np.sort(graph.score[graph.score >= floor].astype(np.float64))[::-1]
    if scores.size == 0:
        return floor
    expected = cal.false_match_rates(scores) * (n * (n - 1) / 2)
    ok = expected <= share * np.arange(1, scores.size + 1)
    if ok[-1]:
        return floor
    meets = np.flatnonzero(ok)
    if meets.size == 0:
        return float(np.nextafter(np.float32(scores[0]), np.float32(np.inf)))
    return max(floor, float(scores[meets[-1]]))


def rules() -> list[Rule]:
    """A fixed rate each, then the adaptive rules above the default rate."""

    def fixed(f: float) -> Callable[[NeighbourGraph, F32, Calibration], tuple[Labels, float]]:
        def run(g: NeighbourGraph, v: F32, c: Calibration) -> tuple[Labels, float]:
            t = float(c.threshold_for_fmr(f))
            return cluster(g.above(t), threshold=t, vectors=v), t

        return run

    def edges(q: float) -> Callable[[NeighbourGraph, F32, Calibration], tuple[Labels, float]]:
        def run(g: NeighbourGraph, v: F32, c: Calibration) -> tuple[Labels, float]:
            t = edge_share_threshold(g, c, float(c.threshold_for_fmr(ADAPTIVE_FLOOR)), q)
            return cluster(g.above(t), threshold=t, vectors=v), t

        return run

    def pairs(q: float) -> Callable[[NeighbourGraph, F32, Calibration], tuple[Labels, float]]:
        def run(g: NeighbourGraph, v: F32, c: Calibration) -> tuple[Labels, float]:
            floor = float(c.threshold_for_fmr(ADAPTIVE_FLOOR))
            return cluster_for_precision(g, floor=floor, calibration=c, vectors=v, share=q)

        return run

    out: list[Rule] = [(f"FMR {f:g} (fixed)", fixed(f)) for f in FIXED_FMRS]
    out += [(f"FMR {ADAPTIVE_FLOOR:g}, strangers' edges <= {q:g}", edges(q)) for q in EDGE_SHARES]
    out += [(f"FMR {ADAPTIVE_FLOOR:g}, strangers' pairs <= {q:g}", pairs(q)) for q in PAIR_SHARES]
    return out


def corrected_labels(labels: I64, paths: list[str]) -> I64:
    """``labels`` with the people of :data:`SAME_PERSON` given their true label."""
    label_of: dict[str, int] = {}
    for p, lab in zip(paths, labels.tolist(), strict=True):
        label_of.setdefault(p.split("/")[-2], lab)
    out = labels.copy()
    for i, p in enumerate(paths):
        person, stem = p.split("/")[-2], p.rsplit("/", 1)[-1].rsplit(".", 1)[0]
        to = SAME_PERSON.get(stem) or SAME_PERSON.get(person)
        if to is not None and to in label_of:
            out[i] = label_of[to]
    return out


def _draw(rng: np.random.Generator, labels: I64, pool: I64, big: I64) -> dict[str, I64]:
    """Rows of each kind of set, from 70 % of the identities in ``pool``."""
    people = rng.choice(pool, int(pool.size * 0.7), replace=False)
    rows_of = {int(p): np.flatnonzero(labels == p) for p in people}

    def take(cap: int | None, no_big: bool) -> I64:
        parts = []
        for p, rows in rows_of.items():
            if no_big and p in big:
                continue
            if cap is not None and rows.size > cap:
                rows = rng.choice(rows, cap, replace=False)
            parts.append(rows)
        return np.sort(np.concatenate(parts))

    return {
        "all": take(None, False),
        "no 100+": take(None, True),
        "cap 20": take(20, False),
        "cap 10, no 100+": take(10, True),
    }


def run(splits: int = 20, seed: int = 0) -> dict[str, Any]:
    """Every split x kind x calibration x rule; the per-run scores."""
    lfw = labelled_sets.load("lfw")
    keep = lfw.quality >= DEFAULT_MIN_QUALITY
    vectors, raw = lfw.vectors[keep], lfw.labels[keep]
    paths = [p for p, k in zip(lfw.paths, keep.tolist(), strict=True) if k]
    fixed = corrected_labels(raw, paths)
    uids, counts = np.unique(raw, return_counts=True)
    big = uids[counts >= 100]
    packaged = packaged_calibration("dlib-resnet-v1+flip")
    assert packaged is not None
    every = rules()
    rng = np.random.default_rng(seed)
    runs: list[dict[str, Any]] = []
    for split in range(splits):
        perm = rng.permutation(uids)
        half_a, half_b = perm[: uids.size // 2], perm[uids.size // 2 :]
        rows_a = np.flatnonzero(np.isin(raw, half_a))
        refit = fit_calibration(
            impostor_scores(vectors[rows_a], raw[rows_a]),
            model_id="dlib-resnet-v1+flip",
            source=f"LFW half, split {split}, identities A",
        )
        for kind, rows in _draw(rng, raw, half_b, big).items():
            v = vectors[rows]
            for cal_name, cal in (("refit on A", refit), ("packaged", packaged)):
                loosest = min(float(cal.threshold_for_fmr(f)) for f in FIXED_FMRS)
                base = knn_graph(build_index(v), v, min_score=loosest, k=DEFAULT_K)
                for rule, group in every:
                    found, t = group(base, v, cal)
                    as_is, right = score(found, raw[rows]), score(found, fixed[rows])
                    runs.append(
                        {
                            "split": split,
                            "kind": kind,
                            "calibration": cal_name,
                            "rule": rule,
                            "threshold": t,
                            "faces": int(rows.size),
                            "people": int(np.unique(fixed[rows]).size),
                            "P": right.pairwise_precision,
                            "BR": right.bcubed_recall,
                            "BP": right.bcubed_precision,
                            "P_raw": as_is.pairwise_precision,
                            "BR_raw": as_is.bcubed_recall,
                        }
                    )
        log.info("resample split %d of %d done", split + 1, splits)
    return {"splits": splits, "runs": runs, "whole": whole_sets(packaged)}


def whole_sets(packaged: Calibration) -> list[dict[str, Any]]:
    """The labelled sets as they are, packaged table, every rule."""
    out: list[dict[str, Any]] = []
    for name in ("lfw", "webphotos13", "att"):
        s = labelled_sets.load(name)
        keep = s.quality >= DEFAULT_MIN_QUALITY
        v = s.vectors[keep]
        paths = [p for p, k in zip(s.paths, keep.tolist(), strict=True) if k]
        labels = corrected_labels(s.labels[keep], paths) if name == "lfw" else s.labels[keep]
        loosest = min(float(packaged.threshold_for_fmr(f)) for f in FIXED_FMRS)
        base = knn_graph(build_index(v), v, min_score=loosest, k=DEFAULT_K)
        for rule, group in rules():
            found, t = group(base, v, packaged)
            sc = score(found, labels)
            out.append(
                {"set": name, "rule": rule, "threshold": t, "faces": int(v.shape[0]),
                 "P": sc.pairwise_precision, "BR": sc.bcubed_recall, "BP": sc.bcubed_precision}
            )  # fmt: skip
    return out


def markdown(result: dict[str, Any]) -> str:
    """The comparison table: mean and worst over the splits, per kind, table and rule."""
    runs = result["runs"]
    out = [
        f"{result['splits']} splits of the LFW half's identities into A and B; each kind of "
        "set drawn from B (70 % of its people); thresholds from a table refitted on A, and "
        "from the packaged table (fitted on the whole half, B's people included). Labels "
        f"with the {len(SAME_PERSON)} checked LFW label errors corrected "
        "(`benchmarks/grouping_resamples.py`, SAME_PERSON); *raw P* is against LFW's "
        "labels as they are. *Passes*: the share of the resamples with pairwise P >= 0.99 and "
        "BCubed R > 0.85 both. Average linkage, k = 20, faces of quality >= 0.3.\n",
        "| set | table | rule | faces | pairwise P mean | P worst | raw P worst "
        "| BCubed R mean | BCubed R worst | BCubed P mean | passes |\n" + "|---" * 11 + "|",
    ]
    keys = list(dict.fromkeys((r["kind"], r["calibration"], r["rule"]) for r in runs))
    for kind, cal, rule in keys:
        rs = [r for r in runs if (r["kind"], r["calibration"], r["rule"]) == (kind, cal, rule)]
        p = np.array([r["P"] for r in rs])
        br = np.array([r["BR"] for r in rs])
        out.append(
            f"| {kind} | {cal} | {rule} | {np.mean([r['faces'] for r in rs]):.0f} "
            f"| {p.mean():.4f} | {p.min():.4f} | {min(r['P_raw'] for r in rs):.4f} "
            f"| {br.mean():.4f} | {br.min():.4f} | {np.mean([r['BP'] for r in rs]):.4f} "
            f"| {np.mean((p >= 0.99) & (br > 0.85)):.2f} |"
        )
    if result.get("whole"):
        out.append(
            "\nWhole sets, packaged table (LFW labels corrected as above):\n\n"
            "| set | rule | threshold | faces | pairwise P | BCubed R | BCubed P |\n"
            + "|---" * 7
            + "|"
        )
        for r in result["whole"]:
            out.append(
                f"| {r['set']} | {r['rule']} | {r['threshold']:.4f} | {r['faces']} "
                f"| {r['P']:.4f} | {r['BR']:.4f} | {r['BP']:.4f} |"
            )
    return "\n".join(out)
