"""People's decisions as constraints on a clustering: must-link and cannot-link.

A reviewer's "same person" (must-link) and "different people" (cannot-link) are never
undone by a later pass. Every algorithm of :mod:`.cluster` runs under them the same
way, so none needs to know about them:

1. must-linked faces are contracted into one node first (they end in one group
   whatever the algorithm does);
2. edges between cannot-linked nodes are dropped before clustering;
3. a group that still holds a cannot-linked pair (joined through third faces) is split
   again by constrained single linkage: its edges, strongest first, join two parts
   only when no cannot-link runs between them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from facetrace.errors import Conflict, InvalidRequest
from facetrace.grouping.graph import NeighbourGraph, from_pairs

Ids = npt.NDArray[np.int64]
Pairs = npt.NDArray[np.int64]  # (m, 2)


def _pairs(values: object) -> Pairs:
    arr = np.asarray(values, dtype=np.int64)
    if arr.size == 0:
        return np.empty((0, 2), dtype=np.int64)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise InvalidRequest(f"constraints are pairs of node numbers, got shape {arr.shape}")
    return arr


@dataclass(frozen=True)
class Constraints:
    """Pairs of node numbers (rows of the graph): int64 (m, 2) each."""

    must_link: Pairs = field(default_factory=lambda: np.empty((0, 2), dtype=np.int64))
    cannot_link: Pairs = field(default_factory=lambda: np.empty((0, 2), dtype=np.int64))

    @classmethod
    def of(cls, must_link: object = (), cannot_link: object = ()) -> Constraints:
        """Constraints from any pair sequences (lists of tuples, arrays)."""
        return cls(_pairs(must_link), _pairs(cannot_link))

    @property
    def empty(self) -> bool:
        return self.must_link.shape[0] == 0 and self.cannot_link.shape[0] == 0

    def components(self, n: int) -> Ids:
        """The must-link component of each node (int64 (n,)), numbered ``0..c-1``.

        Raises :class:`InvalidRequest` for a node outside ``0..n-1`` and
        :class:`Conflict` when a cannot-link joins two nodes of one component.
        """
        for name, pairs in (("must-link", self.must_link), ("cannot-link", self.cannot_link)):
            if pairs.size and (pairs.min() < 0 or pairs.max() >= n):
                raise InvalidRequest(f"a {name} names a face outside 0..{n - 1}")
        comp = components_of(n, self.must_link)
        if self.cannot_link.size:
            same = comp[self.cannot_link[:, 0]] == comp[self.cannot_link[:, 1]]
            if same.any():
                a, b = self.cannot_link[int(np.argmax(same))]
                raise Conflict(
                    f"faces {a} and {b} are marked as different people and, through "
                    "'same person' decisions, as one person; revoke one of the decisions"
                )
        return comp


def components_of(n: int, pairs: Pairs) -> Ids:
    """Connected components of ``n`` nodes joined by ``pairs``, numbered ``0..c-1`` in
    order of their smallest node."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if n == 0:
        return np.empty(0, dtype=np.int64)
    if pairs.size == 0:
        return np.arange(n, dtype=np.int64)
    ones = np.ones(pairs.shape[0], dtype=np.int8)
    adj = coo_matrix((ones, (pairs[:, 0], pairs[:, 1])), shape=(n, n)).tocsr()
    _, labels = connected_components(adj, directed=False)
    return first_seen(labels.astype(np.int64))


def first_seen(labels: Ids) -> Ids:
    """Labels renumbered ``0..g-1`` in order of each group's first node."""
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    rank = np.empty(first.size, dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(first.size)
    return rank[inverse.reshape(-1)]


@dataclass(frozen=True)
class Contracted:
    """A graph with must-linked nodes merged: ``node_of[i]`` is original node i's node."""

    graph: NeighbourGraph
    node_of: Ids
    cannot_link: Pairs  # in contracted node numbers, each pair once (lo, hi)


def contract(graph: NeighbourGraph, constraints: Constraints) -> Contracted:
    """Merge must-linked nodes and drop edges that run along a cannot-link."""
    node_of = constraints.components(graph.n)
    m = int(node_of.max()) + 1 if graph.n else 0
    cl = constraints.cannot_link
    cannot = np.empty((0, 2), dtype=np.int64)
    if cl.size:
        a, b = node_of[cl[:, 0]], node_of[cl[:, 1]]
        cannot = np.unique(np.stack([np.minimum(a, b), np.maximum(a, b)], axis=1), axis=0)
    small = from_pairs(m, node_of[graph.src], node_of[graph.dst], graph.score)
    if cannot.size and small.edges:
        key = small.src * np.int64(m) + small.dst
        small = small.without(np.isin(key, cannot[:, 0] * np.int64(m) + cannot[:, 1]))
    return Contracted(small, node_of, cannot)


def enforce(graph: NeighbourGraph, labels: Ids, cannot_link: Pairs) -> Ids:
    """Split every group of ``labels`` that holds a cannot-linked pair.

    Inside such a group, constrained single linkage over the group's own edges
    (strongest first) rebuilds it from single nodes, never joining two parts that a
    cannot-link separates. Other groups are returned unchanged.
    """
    if cannot_link.size == 0 or graph.n == 0:
        return labels
    out = labels.copy()
    la, lb = labels[cannot_link[:, 0]], labels[cannot_link[:, 1]]
    broken = np.unique(la[la == lb])
    if broken.size == 0:
        return out
    in_broken = np.isin(labels, broken)
    edge_in = in_broken[graph.src] & (labels[graph.src] == labels[graph.dst])
    order = np.argsort(-graph.score[edge_in], kind="stable")
    src, dst = graph.src[edge_in][order], graph.dst[edge_in][order]
    parts = _ConstrainedParts()
    for a, b in cannot_link[la == lb].tolist():
        parts.forbid(a, b)
    for a, b in zip(src.tolist(), dst.tolist(), strict=True):
        parts.join(a, b)
    fresh = int(labels.max()) + 1
    for node in np.flatnonzero(in_broken).tolist():
        out[node] = fresh + parts.find(node)
    return first_seen(out)


class _ConstrainedParts:
    """Union-find whose parts carry the nodes they may not be joined with."""

    def __init__(self) -> None:
        self.parent: dict[int, int] = {}
        self.members: dict[int, set[int]] = {}
        self.banned: dict[int, set[int]] = {}

    def find(self, x: int) -> int:
        root = x
        while self.parent.get(root, root) != root:
            root = self.parent[root]
        while self.parent.get(x, x) != root:
            self.parent[x], x = root, self.parent[x]
        return root

    def forbid(self, a: int, b: int) -> None:
        self.banned.setdefault(a, set()).add(b)
        self.banned.setdefault(b, set()).add(a)

    def join(self, a: int, b: int) -> bool:
        """Join the parts of ``a`` and ``b`` unless a cannot-link separates them."""
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return True
        ma = self.members.setdefault(ra, {ra})
        mb = self.members.setdefault(rb, {rb})
        ba = self.banned.setdefault(ra, set())
        bb = self.banned.setdefault(rb, set())
        if not ba.isdisjoint(mb) or not bb.isdisjoint(ma):
            return False
        if len(ma) < len(mb):  # the smaller part goes into the larger one
            ra, rb, ma, mb, ba, bb = rb, ra, mb, ma, bb, ba
        self.parent[rb] = ra
        ma |= mb
        ba |= bb
        del self.members[rb], self.banned[rb]
        return True
