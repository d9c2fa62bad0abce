"""A learned metric on top of dlib's 128-d vectors, fitted on training identities only.

Each map is fitted on the vectors of some identities of the LFW half and measured on
identities it never saw (split by a hash of the name, :func:`benchmarks.bench_accuracy.role`):

* fit on the cohort part (1/5 of the identities) -> measure on dev + test (the largest
  held-out gallery);
* fit on cohort + dev -> measure on test; fit on cohort + test -> measure on dev;
* levers that fit nothing (gallery-cohort AS-norm) also on the whole half ("all"): the
  issue's 2,450-subject one-photo gallery.

Measured: LFW verification on the pairs both of whose people are held out (thresholds
chosen on the other folds), and ``eval identify``'s open-set protocol with one photo
enrolled (rank-1, FNIR at FPIR 0.1 / 0.01 / 0.001 with the number of non-mated probes).
AS-norm against a cohort of training identities' faces is measured beside it.

Maps (``x`` a unit vector; every mapped vector is normalised again before the cosine):

* ``centre``: ``x - m`` (m the training mean);
* ``wccn``: within-class covariance normalisation, ``W (x - m)`` with ``W^T W`` the
  inverse of the (shrunk) within-class covariance;
* ``lda-d``: the ``d`` leading discriminant directions (between- over within-class
  scatter), scaled to unit within-class variance (``lda-100s0.1``: within-class
  covariance shrunk by 0.1);
* ``nc-`` in front: the same matrix on the vectors themselves, not centred.

Scores instead of maps: ``asnorm`` (AS-norm, the cohort every training identity's
faces), ``gnorm-K`` (AS-norm with the gallery itself as the cohort: a probe's K best
scores against the gallery's faces, a gallery face's K best against the other subjects'
faces; needs no faces from outside and nothing fitted) and ``pnorm-K`` (the probe's side
of it only). FNIR at FPIR uses the threshold read off the non-mated probes (as
``facetrace eval identify``), so a new score still needs its false-match table before
the gallery can threshold it.

    python -m benchmarks.bench_metric [--detector auto]
"""

from __future__ import annotations

import argparse
import json
import os
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt

from benchmarks import accuracy_vectors
from benchmarks.bench_accuracy import Lever, metrics, protocol, role, subject_scores
from benchmarks.common import ROOT, write_section
from facetrace.eval.lfw import fold_accuracies

F32 = npt.NDArray[np.float32]


def within_between(
    x: F32, labels: npt.NDArray[np.str_]
) -> tuple[F32, npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(mean, within-class covariance, between-class covariance) of identities with 2+ rows."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(labels):
        groups[str(s)].append(i)
    mean = x.mean(axis=0)
    d = x.shape[1]
    sw = np.zeros((d, d))
    sb = np.zeros((d, d))
    n_w = 0
    n_b = 0
    for rows in groups.values():
        if len(rows) < 2:
            continue
        g = x[rows].astype(np.float64)
        mu = g.mean(axis=0)
        c = g - mu
        sw += c.T @ c
        n_w += len(rows) - 1
        dm = (mu - mean)[:, None]
        sb += dm @ dm.T
        n_b += 1
    return mean.astype(np.float32), sw / max(1, n_w), sb / max(1, n_b)


def fit_map(kind: str, x: F32, labels: npt.NDArray[np.str_]) -> tuple[F32, F32]:
    """(mean, matrix) with mapped = (x - mean) @ matrix, for ``kind`` (``nc-`` in front:
    the matrix applied to the vectors themselves, not centred)."""
    if kind.startswith("nc-"):
        mean, w = fit_map(kind[3:], x, labels)
        return np.zeros_like(mean), w
    mean, sw, sb = within_between(x, labels)
    d = x.shape[1]
    if kind == "centre":
        return mean, np.eye(d, dtype=np.float32)
    name, _, arg = kind.partition("-")
    if name == "wccn":
        shrink = float(arg or 0.0)
        s = (1 - shrink) * sw + shrink * np.trace(sw) / d * np.eye(d)
        vals, vecs = np.linalg.eigh(s)
        w = vecs @ np.diag(vals**-0.5) @ vecs.T
        return mean, w.astype(np.float32)
    if name == "lda":
        keep, _, shrink_s = arg.partition("s")
        shrink = float(shrink_s or 0.0)
        s = (1 - shrink) * sw + shrink * np.trace(sw) / d * np.eye(d)
        vals, vecs = np.linalg.eigh(s)
        white = vecs @ np.diag(vals**-0.5)  # within-class whitening
        b = white.T @ sb @ white
        bv, bvec = np.linalg.eigh(b)
        order = np.argsort(bv)[::-1][: int(keep)]
        return mean, (white @ bvec[:, order]).astype(np.float32)
    raise ValueError(kind)


def apply_map(x: F32, mean: F32, w: F32) -> F32:
    y = (x - mean) @ w
    return (y / np.linalg.norm(y, axis=1, keepdims=True)).astype(np.float32)


def verification(
    lv: accuracy_vectors.LabelledVectors, v: F32, keep: Callable[[str], bool]
) -> tuple[float, int]:
    rows = accuracy_vectors.lfw_pair_rows(lv, keep)
    s = (v[rows.a] * v[rows.b]).sum(axis=1).astype(np.float64)
    return float(np.mean(fold_accuracies(s, rows.same, rows.folds)[0])), len(rows)


def _print(split: str, kind: str, m: dict, acc: float | None, n_pairs: int) -> None:
    f = [m[f"fnir@{x:g}"] for x in (0.1, 0.01, 0.001)]
    print(
        f"{split:24s} {kind:12s} gal {m['gallery']:5d} mated {m['mated']:5d} "
        f"nonmated {m['nonmated']:5d} ver {'' if acc is None else f'{100 * acc:.2f}'} "
        f"({n_pairs}) rank1 {100 * m['rank1']:.1f} FNIR "
        + " / ".join("n/a" if x is None else f"{100 * x:.1f}" for x in f),
        flush=True,
    )


def gallery_norm(
    v: F32, pr: object, k: int, rescore: int = 50, sides: str = "both"
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """AS-norm with the gallery itself as the cohort (no faces from outside): a probe's
    statistics are its ``k`` best scores against the gallery's faces, a gallery face's its
    ``k`` best against the other subjects' faces; the ``rescore`` best subjects (each by
    its best face) are re-scored. ``sides="probe"``: the probe's statistics only."""
    g_rows: list[list[int]] = pr.g_rows  # type: ignore[attr-defined]
    owner = np.array([g for g, rows in enumerate(g_rows) for _ in rows])
    refs = v[[r for rows in g_rows for r in rows]]
    probes = v[pr.p_rows]  # type: ignore[attr-defined]
    raw = probes @ refs.T
    n = refs.shape[0]
    kk = min(k, n - 1)
    gg = refs @ refs.T
    gg[owner[:, None] == owner[None, :]] = -np.inf  # a face's own subject is no cohort
    gtop = np.partition(gg, n - kk, axis=1)[:, -kk:].astype(np.float64)
    gm, gs = gtop.mean(axis=1), np.maximum(gtop.std(axis=1), 1e-3)
    ptop = np.partition(raw, n - kk, axis=1)[:, -kk:].astype(np.float64)
    pm, ps = ptop.mean(axis=1), np.maximum(ptop.std(axis=1), 1e-3)
    n_sub = len(g_rows)
    best = np.full((raw.shape[0], n_sub), -np.inf)
    arg = np.zeros((raw.shape[0], n_sub), dtype=np.int64)
    for j in range(n):
        better = raw[:, j] > best[:, owner[j]]
        best[better, owner[j]] = raw[better, j]
        arg[better, owner[j]] = j
    depth = min(n_sub, rescore)
    top = np.argsort(-best, axis=1, kind="stable")[:, :depth]
    sc = np.take_along_axis(best, top, axis=1)
    used = np.take_along_axis(arg, top, axis=1)
    if sides == "probe":
        norm = (sc - pm[:, None]) / ps[:, None]
    else:
        norm = 0.5 * ((sc - pm[:, None]) / ps[:, None] + (sc - gm[used]) / gs[used])
    order = np.argsort(-norm, axis=1, kind="stable")[:, :10]
    return np.take_along_axis(norm, order, axis=1), np.take_along_axis(top, order, axis=1)


SPLITS = {
    "fit cohort -> dev+test": ({"cohort"}, {"dev", "test"}),
    "all (nothing fitted)": (set(), {"cohort", "dev", "test"}),
    "fit cohort+dev -> test": ({"cohort", "dev"}, {"test"}),
    "fit cohort+test -> dev": ({"cohort", "test"}, {"dev"}),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--detector", default="auto")
    ap.add_argument(
        "--maps",
        default="none,centre,wccn-0,wccn-0.1,wccn-0.3,lda-64,lda-96,lda-100s0.1,asnorm",
    )
    ap.add_argument("--splits", default=",".join(SPLITS))
    ap.add_argument("--enrol", type=int, default=1)
    ap.add_argument("--probe-from", type=int, default=1)
    ap.add_argument("--out", default=str(ROOT / ".bench" / "metric.json"))
    ap.add_argument("--write", action="store_true", help="write the table into BENCHMARKS.md")
    args = ap.parse_args()
    lv = accuracy_vectors.load("lfw", args.detector).usable()
    roles = {str(s): role(str(s)) for s in set(lv.subjects)}
    results = []
    for split in args.splits.split(","):
        fit_roles, test_roles = SPLITS[split]
        fit_rows = np.array([roles[str(s)] in fit_roles for s in lv.subjects])

        def keep(name: str, test_roles: set[str] = test_roles) -> bool:
            return roles.get(name) in test_roles

        pr = protocol(lv.subjects, keep, enrol=args.enrol, probe_from=args.probe_from)
        for kind in args.maps.split(","):
            if (
                not fit_roles
                and kind not in ("none", "templates")
                and not kind.startswith(("gnorm", "pnorm"))
            ):
                continue  # nothing to fit on: this split is for the levers that fit nothing
            cohort = lv.vectors[fit_rows]
            v = lv.vectors
            lever = Lever(kind)
            if kind == "templates":
                lever = Lever(kind, template="both")
            elif kind == "asnorm":
                lever = Lever(kind, asnorm=True)
            elif kind.startswith(("gnorm", "pnorm")):
                k = int(kind.partition("-")[2] or 400)
                sides = "probe" if kind.startswith("pnorm") else "both"
                s, t = gallery_norm(lv.vectors, pr, k, sides=sides)
                m = metrics(pr, s, t)
                m.update(split=split, map=kind, verification=None, pairs=0)
                results.append(m)
                _print(split, kind, m, None, 0)
                continue
            elif kind not in ("none", "templates"):
                mean, w = fit_map(kind, lv.vectors[fit_rows], lv.subjects[fit_rows])
                v = apply_map(lv.vectors, mean, w)
                cohort = v[fit_rows]
            s, t = subject_scores(lever, v, lv.quality, pr, cohort)
            m = metrics(pr, s, t)
            acc, n_pairs = verification(lv, v, keep) if kind != "asnorm" else (None, 0)
            m.update(split=split, map=kind, verification=acc, pairs=n_pairs)
            results.append(m)
            _print(split, kind, m, acc, n_pairs)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))
    if args.write:
        load = os.getloadavg()
        write_section(
            f"accuracy-metric-enrol{args.enrol}",
            f"Learned metric and score normalisation on unseen identities ({args.enrol} "
            "photo(s) enrolled)",
            "python -m benchmarks.bench_metric"
            + (f" --enrol {args.enrol} --probe-from {args.probe_from}" if args.enrol > 1 else ""),
            f"Load average at the end: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} "
            "(no timing here).\n\n"
            + "\n\n".join((__doc__ or "").split("\n\n")[1:-1])
            + "\n\n"
            + table(results),
        )


def table(results: list[dict]) -> str:
    out = [
        "| split | lever | gallery subjects | mated / non-mated probes | LFW verification "
        "(pairs) | rank-1 % | FNIR % @ FPIR 0.1 | @ 0.01 | @ 0.001 |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for m in results:
        ver = "" if m["verification"] is None else f"{100 * m['verification']:.2f} % ({m['pairs']})"
        fn = " | ".join(
            "n/a" if m[f"fnir@{x:g}"] is None else f"{100 * m[f'fnir@{x:g}']:.1f}"
            for x in (0.1, 0.01, 0.001)
        )
        out.append(
            f"| {m['split']} | {LABELS.get(m['map'].split('-')[0], '')}{m['map']} | "
            f"{m['gallery']} | {m['mated']} / {m['nonmated']} | {ver} | "
            f"{100 * m['rank1']:.1f} | {fn} |"
        )
    return "\n".join(out)


LABELS = {
    "gnorm": "gallery-cohort AS-norm: ",
    "pnorm": "probe side only: ",
    "asnorm": "AS-norm, training cohort: ",
    "templates": "faces + template: ",
    "none": "cosine (default): ",
}


if __name__ == "__main__":
    main()
