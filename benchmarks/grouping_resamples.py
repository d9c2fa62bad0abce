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

Each set is grouped with average linkage at a fixed per-pair false-match rate and with
the stranger-share rule (:func:`facetrace.grouping.graph.stranger_share_threshold`)
above the default rate, with the refitted table and with the packaged one (fitted on
the whole LFW half, these people included). Pairwise precision and BCubed recall are
reported as mean and worst over the splits, against LFW's labels as they are and
against them with :data:`SAME_PERSON` corrected.
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
from facetrace.grouping.cluster import cluster
from facetrace.grouping.folder import DEFAULT_MIN_QUALITY
from facetrace.grouping.graph import (
    DEFAULT_K,
    NeighbourGraph,
    build_index,
    knn_graph,
    stranger_share_threshold,
)
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
#: (floor FMR, share) pairs of the stranger-share rule compared
SHARE_RULES = ((5e-5, 0.02), (5e-5, 0.025), (5e-5, 0.03), (4e-5, 0.025), (3e-5, 0.025))
KINDS = ("all", "no 100+", "cap 20", "cap 10, no 100+")

Rule = tuple[str, Callable[[NeighbourGraph, Calibration], float]]


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


def _rules(cal_floor: Callable[[Calibration, float], float]) -> list[Rule]:
    rules: list[Rule] = [(f"FMR {f:g}", lambda g, c, f=f: cal_floor(c, f)) for f in FIXED_FMRS]
    for floor, share in SHARE_RULES:
        rules.append(
            (
                f"FMR {floor:g} + strangers <= {share:g}",
                lambda g, c, f=floor, s=share: stranger_share_threshold(
                    g, c, floor=cal_floor(c, f), share=s
                ),
            )
        )
    return rules


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
    rules = _rules(lambda c, f: float(c.threshold_for_fmr(f)))
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
                for rule, threshold_of in rules:
                    t = threshold_of(base, cal)
                    found = cluster(base.above(t), threshold=t, vectors=v)
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
    return {"splits": splits, "runs": runs}


def markdown(result: dict[str, Any]) -> str:
    """The comparison table: mean and worst over the splits, per kind, table and rule."""
    runs = result["runs"]
    out = [
        f"{result['splits']} splits of the LFW half's identities into A and B; each kind of "
        "set drawn from B (70 % of its people); thresholds from a table refitted on A, and "
        "from the packaged table (fitted on the whole half, B's people included). Labels "
        f"with the {len(SAME_PERSON)} checked LFW label errors corrected "
        "(`benchmarks/grouping_resamples.py`, SAME_PERSON); *raw P* is against LFW's "
        "labels as they are. Average linkage, k = 20, faces of quality >= 0.3.\n",
        "| set | table | rule | faces | pairwise P mean | P worst | raw P worst "
        "| BCubed R mean | BCubed R worst | BCubed P mean |\n" + "|---" * 10 + "|",
    ]
    keys = list(dict.fromkeys((r["kind"], r["calibration"], r["rule"]) for r in runs))
    for kind, cal, rule in keys:
        rs = [r for r in runs if (r["kind"], r["calibration"], r["rule"]) == (kind, cal, rule)]
        p = np.array([r["P"] for r in rs])
        br = np.array([r["BR"] for r in rs])
        out.append(
            f"| {kind} | {cal} | {rule} | {np.mean([r['faces'] for r in rs]):.0f} "
            f"| {p.mean():.4f} | {p.min():.4f} | {min(r['P_raw'] for r in rs):.4f} "
            f"| {br.mean():.4f} | {br.min():.4f} | {np.mean([r['BP'] for r in rs]):.4f} |"
        )
    return "\n".join(out)
