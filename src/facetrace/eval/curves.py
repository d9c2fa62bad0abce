"""The curves an operator looks at: DET (false non-match against false match, on log axes)
and CMC (hit rate against rank), computed from an evaluation's scores. Pure numpy; the
figures are drawn by :mod:`facetrace.eval.plots`.

A curve belongs to one configuration of the pipeline (a *lever*: templates, AS-norm, ...),
so an evaluation that measures several configurations on the same probes gives one line
for each.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True, slots=True)
class LeverCurves:
    """One configuration's curves.

    Attributes:
        label: the configuration in words (``cosine``, ``templates + AS-norm``), the
            figure's legend.
        det_x: false positives (FPIR for 1:N, FMR for 1:1) at each threshold, ascending.
        det_y: false negatives (FNIR, FNMR) at the same thresholds, descending.
        cmc: hit rate of mated probes at rank 1, 2, ... (empty for a 1:1 protocol).
        configured: whether this is the configuration the command was run with.
    """

    label: str
    det_x: tuple[float, ...]
    det_y: tuple[float, ...]
    cmc: tuple[float, ...] = ()
    configured: bool = False
    summary: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly: the summary figures and the curves' points."""
        return {
            "label": self.label,
            "configured": self.configured,
            **self.summary,
            "det": {"false_positive": list(self.det_x), "false_negative": list(self.det_y)},
            "cmc": list(self.cmc),
        }


def identification_det(
    mate_scores: npt.NDArray[np.float64], nonmated_top: npt.NDArray[np.float64]
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(FPIR, FNIR) at every threshold a non-mated probe's top score sets, FPIR ascending.

    ``mate_scores``: each mated probe's mate score within the candidate list (``-inf``
    when the mate was not in it); ``nonmated_top``: each non-mated probe's top score. At
    threshold ``T``, FPIR is the share of non-mated probes with a top score ``>= T`` and
    FNIR the share of mated probes whose mate scores below ``T`` (as
    :func:`facetrace.eval.identify.fnir_at_fpir`). Empty when either set is empty.
    """
    return _det(np.asarray(mate_scores, float), np.asarray(nonmated_top, float))


def verification_det(
    scores: npt.NDArray[np.float64], same: npt.NDArray[np.bool_]
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(FMR, FNMR) of 1:1 pairs at every threshold a different-person pair's score sets."""
    s = np.asarray(scores, float)
    y = np.asarray(same, bool)
    return _det(s[y], s[~y])


def _det(
    positives: npt.NDArray[np.float64], negatives: npt.NDArray[np.float64]
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    if positives.size == 0 or negatives.size == 0:
        return (), ()
    thresholds = np.unique(negatives[np.isfinite(negatives)])[::-1]  # high to low
    neg = np.sort(negatives)
    pos = np.sort(positives)
    # share of negatives >= T, share of positives < T
    fp = (neg.size - np.searchsorted(neg, thresholds, side="left")) / neg.size
    fn = np.searchsorted(pos, thresholds, side="left") / pos.size
    return tuple(float(v) for v in fp), tuple(float(v) for v in fn)


def cmc(mate_ranks: npt.NDArray[np.int64], depth: int) -> tuple[float, ...]:
    """Hit rate at rank 1 .. ``depth``: the share of mated probes whose mate is within the
    first r candidates (``mate_ranks`` are 0-based; a mate not in the list has a rank of
    ``depth`` or more)."""
    ranks = np.asarray(mate_ranks)
    if ranks.size == 0:
        return ()
    return tuple(float((ranks < r).mean()) for r in range(1, depth + 1))
