"""The LFW pairs protocol (View 2) exactly as published.

``pairs.txt`` starts with ``folds<TAB>n``; each fold has ``n`` same-person
lines ``name i j`` and then ``n`` different-person lines ``name1 i name2 j``.
Each fold's threshold is chosen on the other folds (best accuracy there) and
applied to the fold; the figure is the mean accuracy over folds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from facetrace.config import PipelineOptions
from facetrace.errors import ManifestError
from facetrace.eval.curves import LeverCurves, verification_det
from facetrace.eval.embedding import SUBJECT_POLICY, embed_photos


@dataclass(frozen=True, slots=True)
class Pair:
    """Two LFW images and whether they show the same person."""

    a: str
    b: str
    same: bool
    fold: int


def lfw_path(images: Path, name: str, number: int) -> Path:
    """``images/Name/Name_0001.jpg``."""
    return images / name / f"{name}_{number:04d}.jpg"


def read_pairs(path: Path, images: Path) -> tuple[int, list[Pair]]:
    """Parse a pairs file; raises :class:`ManifestError` naming the line on any fault."""
    src = str(path)
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise ManifestError(src, None, f"cannot read: {exc}") from exc
    try:
        folds, n = (int(v) for v in lines[0].split())
    except (ValueError, IndexError) as exc:
        raise ManifestError(src, 1, "header must be 'folds<TAB>pairs'") from exc
    body = [ln for ln in lines[1:] if ln.strip()]
    if len(body) != folds * 2 * n:
        raise ManifestError(src, None, f"expected {folds * 2 * n} pair lines, found {len(body)}")
    pairs: list[Pair] = []
    for idx, line in enumerate(body):
        fold, within = divmod(idx, 2 * n)
        parts = line.split()
        try:
            if within < n:
                if len(parts) != 3:
                    raise ValueError("same-person line needs 3 fields")
                a = lfw_path(images, parts[0], int(parts[1]))
                b = lfw_path(images, parts[0], int(parts[2]))
                pairs.append(Pair(str(a), str(b), True, fold))
            else:
                if len(parts) != 4:
                    raise ValueError("different-person line needs 4 fields")
                a = lfw_path(images, parts[0], int(parts[1]))
                b = lfw_path(images, parts[2], int(parts[3]))
                pairs.append(Pair(str(a), str(b), False, fold))
        except ValueError as exc:
            raise ManifestError(src, idx + 2, str(exc)) from exc
    return folds, pairs


def best_threshold(scores: npt.NDArray[np.float64], same: npt.NDArray[np.bool_]) -> float:
    """The threshold (midpoint between sorted scores) with the highest accuracy."""
    order = np.argsort(scores)
    s, y = scores[order], same[order]
    # predicting "same" for scores >= t; accuracy for t just above s[i]
    n_pos = y.sum()
    neg_below = np.cumsum(~y)
    pos_below = np.cumsum(y)
    correct = neg_below + (n_pos - pos_below)
    i = int(np.argmax(correct))
    best_above = int(correct[i])
    if n_pos >= best_above:  # everything "same"
        return float(s[0] - 1e-6)
    return float((s[i] + s[i + 1]) / 2) if i + 1 < len(s) else float(s[i] + 1e-6)


def fold_accuracies(
    scores: npt.NDArray[np.float64], same: npt.NDArray[np.bool_], folds: npt.NDArray[np.int64]
) -> tuple[list[float], list[float]]:
    """Accuracy of each fold at the threshold chosen on the other folds."""
    accs: list[float] = []
    thresholds: list[float] = []
    for f in np.unique(folds):
        train = folds != f
        t = best_threshold(scores[train], same[train])
        test = ~train
        accs.append(float(((scores[test] >= t) == same[test]).mean()))
        thresholds.append(t)
    return accs, thresholds


def evaluate_lfw(
    pairs_file: Path,
    images: Path,
    *,
    options: PipelineOptions,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Run the protocol; returns a JSON-ready dict with ``accuracy`` (a fraction) and details."""
    n_folds, pairs = read_pairs(pairs_file, images)
    paths = sorted({p.a for p in pairs} | {p.b for p in pairs})
    vecs = embed_photos(
        [Path(p) for p in paths], options=options, workers=workers, progress=progress
    )
    by_path = {v.path: v for v in vecs}
    failed = [v for v in vecs if v.vector is None]
    scores = np.zeros(len(pairs))
    for i, p in enumerate(pairs):
        va, vb = by_path[p.a].vector, by_path[p.b].vector
        # an unreadable image counts as a wrong answer: score -inf says "different"
        scores[i] = float(np.dot(va, vb)) if va is not None and vb is not None else -np.inf
    same = np.array([p.same for p in pairs])
    folds = np.array([p.fold for p in pairs])
    finite = np.isfinite(scores)
    scores[~finite] = -2.0
    accs, thresholds = fold_accuracies(scores, same, folds)
    acc = np.array(accs)
    det = verification_det(scores, same)
    return {
        "protocol": "lfw-pairs",
        "folds": n_folds,
        "pairs": len(pairs),
        "images": len(paths),
        "accuracy": float(acc.mean()),
        "std": float(acc.std(ddof=1)) if len(acc) > 1 else 0.0,
        "standard_error": float(acc.std(ddof=1) / np.sqrt(len(acc))) if len(acc) > 1 else 0.0,
        "fold_accuracies": accs,
        "fold_thresholds": thresholds,
        "no_face_detected": sum(1 for v in vecs if v.how == "centre"),
        "subject_policy": SUBJECT_POLICY,
        "centre_face_by_cnn": sum(1 for v in vecs if v.how == "centre-cnn"),
        "no_face_policy": "detector retried at threshold -0.5 first (counted as detected); "
        "then a centred box covering half the image (LFW crops are centred)",
        "unreadable_images": [v.path for v in failed],
        "model": options.model,
        "backend": str(options.backend),
        "detector": str(options.detector),
        "levers": [
            LeverCurves(
                label="cosine",
                det_x=det[0],
                det_y=det[1],
                configured=True,
                summary={"accuracy": float(acc.mean())},
            ).as_dict()
        ],
    }
