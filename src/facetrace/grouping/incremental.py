"""New faces joining existing groups between full passes.

A full pass (:func:`facetrace.grouping.cluster.cluster`) is the reference; between two
passes a new face joins a group only when enough of its neighbours agree, so one
lucky impostor score never decides. Otherwise it waits (``PENDING``) for the next full
pass, where it is clustered with everything else.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from facetrace.errors import InvalidRequest
from facetrace.grouping.graph import BATCH, Ids
from facetrace.index.base import Selector, VectorIndex, check_vectors

PENDING = -1
#: Neighbours above the threshold that must be in the group a new face joins.
MIN_AGREE = 2
#: Share of the new face's neighbours above the threshold that must be in that group.
MIN_SHARE = 0.75


@dataclass(frozen=True)
class Assignment:
    """Per new face: its group (or :data:`PENDING`), the neighbours above the
    threshold that are in it, and all its neighbours above the threshold."""

    groups: Ids
    agreeing: Ids
    neighbours: Ids


def assign(
    index: VectorIndex,
    vectors: npt.NDArray[np.float32],
    *,
    group_of: dict[int, int],
    threshold: float,
    k: int = 20,
    min_agree: int = MIN_AGREE,
    min_share: float = MIN_SHARE,
    forbidden: dict[int, set[int]] | None = None,
    selector: Selector | None = None,
) -> Assignment:
    """Groups for new faces ``vectors`` (n, d) among faces already grouped.

    Args:
        index: holds the grouped faces (under the ids of ``group_of``).
        vectors: the new faces, L2-normalised float32 (n, d).
        group_of: index id -> group of every grouped face; other ids found are ignored
            (the new faces themselves, faces waiting for the next pass).
        threshold: the calibrated score an agreeing neighbour must reach.
        k: neighbours asked per new face.
        min_agree: neighbours above the threshold that must be in the chosen group
            (fewer if the group has fewer faces, but never fewer than 1).
        min_share: share of all neighbours above the threshold that must be in it.
        forbidden: new face row -> groups it may not join (a "different people"
            decision against a member).
        selector: restricts the search inside the index (a department's scope).

    Returns:
        An :class:`Assignment`; ``groups[i]`` is :data:`PENDING` when face ``i`` waits.
    """
    if not 0 < min_share <= 1 or min_agree < 1:
        raise InvalidRequest("min_agree must be >= 1 and min_share in (0, 1]")
    n = int(vectors.shape[0])
    out = np.full(n, PENDING, dtype=np.int64)
    agreeing = np.zeros(n, dtype=np.int64)
    near = np.zeros(n, dtype=np.int64)
    if n == 0 or not group_of:
        return Assignment(out, agreeing, near)
    vecs = check_vectors(vectors, index.dim)
    known = np.fromiter(group_of.keys(), dtype=np.int64, count=len(group_of))
    labels = np.fromiter(group_of.values(), dtype=np.int64, count=len(group_of))
    order = np.argsort(known)
    known, labels = known[order], labels[order]
    sizes = dict(zip(*np.unique(labels, return_counts=True), strict=True))
    for start in range(0, n, BATCH):
        scores, ids = index.search(vecs[start : start + BATCH], k, selector)
        pos = np.clip(np.searchsorted(known, ids), 0, known.size - 1)
        hit = (known[pos] == ids) & (scores >= threshold)
        for row in range(ids.shape[0]):
            i = start + row
            groups = labels[pos[row][hit[row]]]
            near[i] = groups.size
            if groups.size == 0:
                continue
            values, counts = np.unique(groups, return_counts=True)
            best = int(np.argmax(counts))
            group, votes = int(values[best]), int(counts[best])
            need = max(1, min(min_agree, int(sizes[group])))
            banned = forbidden.get(i, set()) if forbidden else set()
            if votes >= need and votes >= min_share * groups.size and group not in banned:
                out[i] = group
                agreeing[i] = votes
    return Assignment(out, agreeing, near)
