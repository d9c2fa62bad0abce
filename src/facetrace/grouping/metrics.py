"""How good a grouping is against known identities: pairwise and BCubed scores.

*Pairwise*: of all pairs of faces put in one group, the share that are one person
(precision); of all pairs of faces of one person, the share put in one group (recall).
Large groups dominate it, and a wrong merge of two big groups costs many pairs: it is
the measure of the costly error. *BCubed* (Bagga and Baldwin 1998, as Amigó et al.
2009 recommend): per face, the share of its group that is its person (precision) and
the share of its person that is in its group (recall), averaged over faces.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from facetrace.errors import InvalidRequest

Labels = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Scores:
    """Pairwise and BCubed precision, recall and F1, and the group counts."""

    pairwise_precision: float
    pairwise_recall: float
    pairwise_f1: float
    bcubed_precision: float
    bcubed_recall: float
    bcubed_f1: float
    groups: int
    identities: int
    faces: int

    def as_dict(self) -> dict[str, float | int]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _f1(p: float, r: float) -> float:
    return 0.0 if p + r == 0 else 2 * p * r / (p + r)


def _pairs(counts: npt.NDArray[np.int64]) -> float:
    c = counts.astype(np.float64)
    return float((c * (c - 1) / 2).sum())


def score(predicted: Labels, truth: Labels) -> Scores:
    """Scores of ``predicted`` group labels against ``truth`` identity labels (both (n,)).

    With no pair in a group (every face alone), pairwise precision is 1 by convention
    (no wrong merge was made); with no pair of one person, pairwise recall is 1.

    >>> s = score(np.array([0, 0, 1, 1]), np.array([0, 0, 0, 1]))
    >>> round(s.pairwise_precision, 3), round(s.pairwise_recall, 3)
    (0.5, 0.333)
    """
    p = np.asarray(predicted, dtype=np.int64).reshape(-1)
    t = np.asarray(truth, dtype=np.int64).reshape(-1)
    if p.shape != t.shape:
        raise InvalidRequest(f"{p.size} predicted labels for {t.size} true labels")
    n = p.size
    if n == 0:
        raise InvalidRequest("no faces to score")
    _, pi = np.unique(p, return_inverse=True)
    _, ti = np.unique(t, return_inverse=True)
    pi, ti = pi.reshape(-1), ti.reshape(-1)
    joint = pi.astype(np.int64) * np.int64(ti.max() + 1) + ti
    _, ji, jc = np.unique(joint, return_inverse=True, return_counts=True)
    pc = np.bincount(pi)
    tc = np.bincount(ti)
    together = _pairs(jc)
    in_groups = _pairs(pc)
    same_person = _pairs(tc)
    pp = together / in_groups if in_groups else 1.0
    pr = together / same_person if same_person else 1.0
    # BCubed: per face, |group & person| / |group| and / |person|
    overlap = jc[ji.reshape(-1)].astype(np.float64)
    bp = float((overlap / pc[pi]).mean())
    br = float((overlap / tc[ti]).mean())
    return Scores(
        pairwise_precision=pp,
        pairwise_recall=pr,
        pairwise_f1=_f1(pp, pr),
        bcubed_precision=bp,
        bcubed_recall=br,
        bcubed_f1=_f1(bp, br),
        groups=int(pc.size),
        identities=int(tc.size),
        faces=n,
    )
