"""Turn raw similarity scores into numbers an investigator can read.

A calibration table records, for a model, the false-match rate (FMR): the
fraction of impostor pairs (two different people) whose cosine similarity is
at least a given score. It is measured on a labelled folder-per-subject set.
Above the highest impostor scores seen, the tail is extrapolated with an
exponential fitted to the top impostor scores, so that small rates are
estimates, not zeros.

For a search against a gallery of ``n`` subjects, the chance that at least
one impostor scores above a threshold (the false-positive identification
rate, FPIR) is ``1 - (1 - FMR)^n``; the "no candidate" threshold is the score
whose FPIR equals the target.

A table may also hold its **mated** curve: the share of searches of people who *are*
in the gallery whose mate scores below a threshold (FNIR, or 1:1 FNMR), measured on
same-person pairs of the labelled set. With it the gallery can tell at which size the
threshold starts hiding more of those people than a setting allows, and switch to the
investigation mode there (:meth:`Calibration.investigation_from`, :func:`choose_mode`).
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from facetrace.config import ModePolicy, SearchMode

GRID_STEP = 0.002
TAIL_PAIRS = 2000  # impostor pairs used to fit the exponential tail
MIN_FMR = 1e-12
MATED_POINTS = 101  # quantiles kept of the mated scores
MATED_PAIRS_PER_SUBJECT = 45  # pairs of a subject's first 10 photos: no one person dominates


@dataclass(frozen=True)
class Calibration:
    """An FMR table for one model.

    Attributes:
        model_id: the model the scores come from.
        grid: ascending scores, shape (g,).
        fmr: FMR at each grid score (non-increasing), shape (g,).
        tail_start: the score above which the exponential tail is used.
        tail_fmr: FMR at ``tail_start``.
        tail_slope: d ln(FMR) / d score above ``tail_start`` (negative).
        impostor_pairs: how many impostor pairs were measured.
        source: a description of the labelled set.
    """

    model_id: str
    grid: npt.NDArray[np.float64]
    fmr: npt.NDArray[np.float64]
    tail_start: float
    tail_fmr: float
    tail_slope: float
    impostor_pairs: int
    source: str
    mated: tuple[tuple[float, float], ...] = ()
    mated_source: str = ""

    def miss_rate(self, threshold: float) -> float | None:
        """Estimated share of mated searches (the person is in the gallery) whose mate
        scores below ``threshold``, from the mated curve; None without one, or outside the
        scores it was measured at."""
        if not self.mated or not self.mated[0][0] <= threshold <= self.mated[-1][0]:
            return None
        xs = np.array([s for s, _ in self.mated])
        ys = np.array([f for _, f in self.mated])
        return float(np.interp(threshold, xs, ys))

    def investigation_from(self, fpir: float, max_fnir: float) -> int | None:
        """The smallest gallery (in subjects) whose threshold at ``fpir`` is estimated to
        miss more than ``max_fnir`` of the people who are in it; None without a mated
        curve, or when no gallery size gets there.

        The threshold rises with the gallery (:meth:`threshold_for_fpir`); the mated
        curve gives the score ``t`` at which ``max_fnir`` of mates fall below; the size
        is the first ``n`` whose per-pair rate ``1 - (1 - fpir)^(1/n)`` puts the
        threshold above ``t``.
        """
        if not self.mated or not 0 < max_fnir < 1 or not 0 < fpir < 1:
            return None
        xs = np.array([s for s, _ in self.mated])
        ys = np.array([f for _, f in self.mated])
        if ys[-1] <= max_fnir:
            return None
        t = float(np.interp(max_fnir, ys, xs))  # ys non-decreasing along xs
        fmr = self.false_match_rate(t)
        if fmr >= 1:
            return 1
        n = math.log1p(-fpir) / math.log1p(-fmr)
        return max(1, math.floor(n) + 1)

    def false_match_rate(self, score: float) -> float:
        """Estimated fraction of impostor pairs scoring at least ``score``."""
        if score >= self.tail_start:
            return max(
                MIN_FMR, self.tail_fmr * math.exp(self.tail_slope * (score - self.tail_start))
            )
        return float(np.interp(score, self.grid, self.fmr, left=1.0, right=self.fmr[-1]))

    def false_match_rates(self, scores: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """:meth:`false_match_rate` of many scores at once (float64, the shape of ``scores``)."""
        s = np.asarray(scores, dtype=np.float64)
        grid = np.interp(s, self.grid, self.fmr, left=1.0, right=self.fmr[-1])
        tail = np.maximum(MIN_FMR, self.tail_fmr * np.exp(self.tail_slope * (s - self.tail_start)))
        return np.where(s >= self.tail_start, tail, grid)

    def threshold_for_fmr(self, fmr: float) -> float:
        """The lowest score whose estimated FMR is at most ``fmr``."""
        if fmr <= 0:
            raise ValueError("fmr must be positive")
        if fmr < self.tail_fmr:
            return self.tail_start + math.log(fmr / self.tail_fmr) / self.tail_slope
        # FMR is non-increasing along the grid, which ends where the tail starts
        xs = np.append(self.grid, self.tail_start)
        fs = np.append(self.fmr, self.tail_fmr)
        idx = int(np.argmax(fs <= fmr))
        return float(xs[idx])

    def score_for_fmr(self, fmr: float) -> float:
        """The score whose estimated FMR is ``fmr``, interpolated (the inverse of
        :meth:`false_match_rate` where it is strictly decreasing): how another score with
        its own table (AS-norm) is put on this table's scale."""
        fmr = min(1.0, max(MIN_FMR, fmr))
        if fmr <= self.tail_fmr:
            return self.tail_start + math.log(fmr / self.tail_fmr) / self.tail_slope
        xs = np.append(self.grid, self.tail_start)
        fs = np.append(self.fmr, self.tail_fmr)
        # np.interp needs increasing x: interpolate score against -log FMR
        keys = -np.log(np.maximum(fs, MIN_FMR))
        order = np.argsort(keys, kind="stable")
        keys, xs = keys[order], xs[order]
        return float(np.interp(-math.log(fmr), keys, xs))

    def threshold_for_fpir(self, fpir: float, gallery_size: int) -> float:
        """Score threshold so that a search of ``gallery_size`` subjects has FPIR ``fpir``."""
        if not 0 < fpir < 1:
            raise ValueError("fpir must be in (0, 1)")
        n = max(1, gallery_size)
        per_pair = -math.expm1(math.log1p(-fpir) / n)
        return self.threshold_for_fmr(per_pair)

    def gallery_fpir(self, score: float, gallery_size: int) -> float:
        """Chance that a gallery of this size holds an impostor scoring at least ``score``."""
        fmr = self.false_match_rate(score)
        return float(-math.expm1(max(1, gallery_size) * math.log1p(-min(fmr, 1 - 1e-15))))

    def to_json(self) -> dict[str, Any]:
        """Plain numbers, for the package data file and the gallery's settings table."""
        return {
            "model_id": self.model_id,
            "grid_start": float(self.grid[0]),
            "grid_step": float(self.grid[1] - self.grid[0]) if len(self.grid) > 1 else GRID_STEP,
            "fmr": [float(f"{v:.6g}") for v in self.fmr],
            "tail_start": self.tail_start,
            "tail_fmr": self.tail_fmr,
            "tail_slope": self.tail_slope,
            "impostor_pairs": self.impostor_pairs,
            "source": self.source,
            **(
                {
                    "mated": [[round(a, 5), round(b, 5)] for a, b in self.mated],
                    "mated_source": self.mated_source,
                }
                if self.mated
                else {}
            ),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Calibration:
        """Inverse of :meth:`to_json`; raises ``ValueError`` on a malformed table."""
        try:
            fmr = np.asarray(data["fmr"], dtype=np.float64)
            grid = data["grid_start"] + data["grid_step"] * np.arange(fmr.size)
            return cls(
                model_id=str(data["model_id"]),
                grid=grid,
                fmr=fmr,
                tail_start=float(data["tail_start"]),
                tail_fmr=float(data["tail_fmr"]),
                tail_slope=float(data["tail_slope"]),
                impostor_pairs=int(data["impostor_pairs"]),
                source=str(data.get("source", "")),
                mated=tuple((float(a), float(b)) for a, b in data.get("mated", [])),
                mated_source=str(data.get("mated_source", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed calibration table: {exc}") from exc


def impostor_scores(
    vectors: npt.NDArray[np.float32], labels: npt.ArrayLike, *, chunk: int = 2048
) -> npt.NDArray[np.float32]:
    """Cosine scores of every pair of vectors with different labels.

    ``vectors`` are L2-normalised, shape (n, d); ``labels`` shape (n,). Memory is
    O(n^2) float32 in the result (19M pairs for 6,000 faces is 76 MB).
    """
    labels_arr = np.asarray(labels)
    out: list[npt.NDArray[np.float32]] = []
    n = vectors.shape[0]
    for start in range(0, n, chunk):
        block = vectors[start : start + chunk] @ vectors.T
        for i in range(block.shape[0]):
            row = start + i
            mask = labels_arr[row + 1 :] != labels_arr[row]
            out.append(block[i, row + 1 :][mask])
    return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


def mated_scores(
    vectors: npt.NDArray[np.float32],
    labels: npt.ArrayLike,
    *,
    per_subject: int = MATED_PAIRS_PER_SUBJECT,
) -> npt.NDArray[np.float32]:
    """Cosine scores of same-person pairs: each subject's photos paired with each other,
    at most ``per_subject`` pairs (those of its first photos) so that a person with
    hundreds of photos does not make the curve theirs."""
    labels_arr = np.asarray(labels)
    out: list[npt.NDArray[np.float32]] = []
    for label in np.unique(labels_arr):
        rows = np.flatnonzero(labels_arr == label)
        if rows.size < 2:
            continue
        block = vectors[rows] @ vectors[rows].T
        upper = block[np.triu_indices(rows.size, k=1)]
        out.append(upper[:per_subject].astype(np.float32))
    return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


def mated_curve(scores: npt.NDArray[np.float32]) -> tuple[tuple[float, float], ...]:
    """(score, share of mated scores below it) at :data:`MATED_POINTS` quantiles,
    ascending; empty with fewer than 100 pairs (too few to say anything)."""
    if scores.size < 100:
        return ()
    s = np.sort(scores.astype(np.float64))
    qs = np.linspace(0.0, 1.0, MATED_POINTS)
    points = np.quantile(s, qs)
    return tuple((float(x), float(q)) for x, q in zip(points, qs, strict=True))


def fit_calibration(scores: npt.NDArray[np.float32], *, model_id: str, source: str) -> Calibration:
    """Build a table from impostor scores (any order).

    Raises ``ValueError`` with fewer than 1,000 impostor pairs: too few to say anything.
    """
    if scores.size < 1000:
        raise ValueError(f"need at least 1000 impostor pairs, got {scores.size}")
    s = np.sort(scores.astype(np.float64))
    n = s.size
    lo = math.floor(s[0] / GRID_STEP) * GRID_STEP
    hi = math.ceil(s[-1] / GRID_STEP) * GRID_STEP
    grid = np.arange(lo, hi + GRID_STEP / 2, GRID_STEP)
    # FMR(t) = #(s >= t) / n
    fmr = (n - np.searchsorted(s, grid, side="left")) / n
    top = s[-min(TAIL_PAIRS, n // 10) :]
    tail_start = float(top[0])
    tail_fmr = top.size / n
    # ln FMR(x) for the top scores, a straight line in x: least squares through the start point
    ranks = np.arange(top.size, 0, -1) / n
    dx = top - tail_start
    denom = float((dx * dx).sum())
    slope = float((dx * np.log(ranks / tail_fmr)).sum() / denom) if denom > 0 else -200.0
    slope = min(slope, -1.0)
    # the grid is only used below the tail start
    keep = grid <= tail_start
    return Calibration(
        model_id=model_id,
        grid=grid[keep],
        fmr=fmr[keep].astype(np.float64),
        tail_start=tail_start,
        tail_fmr=tail_fmr,
        tail_slope=slope,
        impostor_pairs=int(n),
        source=source,
    )


@functools.lru_cache(maxsize=8)
def packaged_calibration(name: str) -> Calibration | None:
    """The default table shipped with the package for a model, if there is one."""
    try:
        text = resources.files("facetrace").joinpath(f"data/calibration-{name}.json").read_text()
    except FileNotFoundError:
        return None
    return Calibration.from_json(json.loads(text))


def save_calibration(calibration: Calibration, path: Path) -> None:
    """Write a table as JSON (used to regenerate the packaged default)."""
    path.write_text(json.dumps(calibration.to_json(), indent=None, separators=(",", ":")) + "\n")


@dataclass(frozen=True, slots=True)
class ModeChoice:
    """The mode of one search and why (kept with the search, shown on its page).

    Attributes:
        mode: the mode the search ran in.
        chosen_by: ``request`` (the searcher asked), ``setting`` (``FACETRACE_SEARCH__MODE``)
            or ``gallery size``.
        gallery_subjects: the gallery's size at the search.
        investigation_from: the size from which the gallery chooses investigation (None:
            unknown, no mated curve and no setting).
        switch_source: where that size comes from: ``setting`` or ``calibration``.
        expected_fnir: the estimated share of people in the gallery whom the
            identification threshold would miss at this size (None without a mated curve).
        max_fnir: the share above which investigation is chosen.
    """

    mode: SearchMode
    chosen_by: str
    gallery_subjects: int
    investigation_from: int | None
    switch_source: str
    expected_fnir: float | None
    max_fnir: float

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly (the search's evidence, the CLI's --json, the audit entry)."""
        return {
            "mode": str(self.mode),
            "chosen_by": self.chosen_by,
            "gallery_subjects": self.gallery_subjects,
            "investigation_from": self.investigation_from,
            "switch_source": self.switch_source,
            "expected_fnir": None if self.expected_fnir is None else round(self.expected_fnir, 4),
            "max_fnir": self.max_fnir,
        }


def choose_mode(
    calibration: Calibration | None,
    *,
    policy: ModePolicy,
    requested: SearchMode | None,
    fpir: float,
    gallery_subjects: int,
) -> ModeChoice:
    """The mode of a search: ``requested`` if given, else the policy's fixed mode, else
    by size: investigation from ``policy.investigation_from`` subjects on or, unset, from
    :meth:`Calibration.investigation_from` (the size at which the threshold for ``fpir``
    misses more than ``policy.max_fnir`` of mates); identification below it, and when
    neither is known (no calibration, or a table without a mated curve)."""
    n = max(0, gallery_subjects)
    expected = None
    if calibration is not None:
        expected = calibration.miss_rate(calibration.threshold_for_fpir(fpir, max(1, n)))
    switch: int | None = None
    source = ""
    if policy.investigation_from is not None:
        switch, source = policy.investigation_from, "setting"
    elif calibration is not None:
        switch = calibration.investigation_from(fpir, policy.max_fnir)
        source = "calibration" if switch is not None else ""
    if requested is not None:
        mode, by = requested, "request"
    elif policy.mode is not None:
        mode, by = policy.mode, "setting"
    else:
        by = "gallery size"
        big = switch is not None and n >= switch
        mode = SearchMode.INVESTIGATION if big else SearchMode.IDENTIFICATION
    return ModeChoice(
        mode=mode,
        chosen_by=by,
        gallery_subjects=n,
        investigation_from=switch,
        switch_source=source,
        expected_fnir=expected,
        max_fnir=policy.max_fnir,
    )


#: template sizes (faces averaged) with a false-match table of their own; a template of
#: more faces uses the last one
TEMPLATE_SIZES = (2, 3, 4, 5)


@dataclass(frozen=True)
class TemplateCalibration:
    """False-match tables of template scores, one per number of faces averaged.

    A template (the mean of ``n`` faces of one person) lies closer to the mean face of
    everyone than any single face does, so strangers score higher against it: a template
    score needs its own table. :meth:`on_face_scale` maps a template score to the single-
    face score with the same estimated false-match rate, so one threshold, one FMR column
    and one ranking serve faces and templates alike.
    """

    tables: dict[int, Calibration]

    def table(self, n_faces: int) -> Calibration:
        """The table for a template of ``n_faces`` faces (the largest size measured for more)."""
        sizes = sorted(self.tables)
        fit = [s for s in sizes if s <= n_faces]
        return self.tables[fit[-1] if fit else sizes[0]]

    def false_match_rate(self, score: float, n_faces: int) -> float:
        """Estimated fraction of strangers' faces scoring at least ``score`` against a
        template of ``n_faces`` faces."""
        return self.table(n_faces).false_match_rate(score)

    def on_face_scale(self, score: float, n_faces: int, faces: Calibration) -> float:
        """The single-face score (on ``faces``' table) with this template score's FMR."""
        return faces.score_for_fmr(self.false_match_rate(score, n_faces))

    def to_json(self) -> dict[str, Any]:
        """Plain numbers, for the package data file and the gallery's settings table."""
        return {"tables": {str(n): t.to_json() for n, t in sorted(self.tables.items())}}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TemplateCalibration:
        """Inverse of :meth:`to_json`; raises ``ValueError`` on a malformed table."""
        try:
            tables = {int(n): Calibration.from_json(t) for n, t in data["tables"].items()}
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"malformed template calibration: {exc}") from exc
        if not tables:
            raise ValueError("malformed template calibration: no tables")
        return cls(tables)

    @property
    def model_id(self) -> str:
        """The model the scores come from."""
        return next(iter(self.tables.values())).model_id


def template_impostor_scores(
    vectors: npt.NDArray[np.float32],
    labels: npt.ArrayLike,
    n_faces: int,
    *,
    quality: npt.ArrayLike | None = None,
) -> npt.NDArray[np.float32]:
    """Cosine scores of templates of ``n_faces`` faces against strangers' single faces.

    Every label with at least ``n_faces`` vectors gives one template (the quality-weighted
    mean of its first ``n_faces`` vectors, as the gallery averages them, one centroid),
    scored against every vector of every other label."""
    from facetrace.scoring.templates import subject_template

    labels_arr = np.asarray(labels)
    q = np.ones(len(labels_arr)) if quality is None else np.asarray(quality, dtype=np.float64)
    out: list[npt.NDArray[np.float32]] = []
    for label in np.unique(labels_arr):
        rows = np.flatnonzero(labels_arr == label)
        if rows.size < n_faces:
            continue
        take = rows[:n_faces]
        t = subject_template(vectors[take], q[take], max_centroids=1)[0]
        out.append((vectors[labels_arr != label] @ t).astype(np.float32))
    return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


def fit_template_calibration(
    vectors: npt.NDArray[np.float32],
    labels: npt.ArrayLike,
    *,
    model_id: str,
    source: str,
    quality: npt.ArrayLike | None = None,
    sizes: tuple[int, ...] = TEMPLATE_SIZES,
) -> TemplateCalibration:
    """Template tables for each of ``sizes`` measurable on a labelled set (at least 1,000
    impostor pairs); raises ``ValueError`` when none is."""
    tables: dict[int, Calibration] = {}
    for n in sizes:
        scores = template_impostor_scores(vectors, labels, n, quality=quality)
        if scores.size >= 1000:
            tables[n] = fit_calibration(
                scores, model_id=model_id, source=f"{source}; templates of {n} faces"
            )
    if not tables:
        raise ValueError("no template size has 1000 impostor pairs in this set")
    return TemplateCalibration(tables)


@functools.lru_cache(maxsize=8)
def packaged_template_calibration(name: str) -> TemplateCalibration | None:
    """The default template tables shipped with the package for a model, if any."""
    try:
        text = (
            resources.files("facetrace").joinpath(f"data/calibration-{name}-template.json")
        ).read_text()
    except FileNotFoundError:
        return None
    return TemplateCalibration.from_json(json.loads(text))
