"""Clustering algorithms over one neighbour graph, compared on the same graph.

Every algorithm maps a :class:`~facetrace.grouping.graph.NeighbourGraph` to a label per
node (int64 (n,); equal labels = one group) and is registered by name in
:data:`ALGORITHMS`; :func:`cluster` runs one under people's decisions
(:mod:`.constraints`) and numbers the groups by size.

``average``     average linkage (UPGMA) restricted to the graph: two groups merge when
                the mean score over all their pairs of faces reaches the threshold,
                mutual best pairs first (reciprocal merging; for average linkage this
                gives the same tree as merging one pair at a time). Exact means from
                each group's sum vector, so no pair matrix is ever held. The default:
                the best precision at a given recall on every labelled set measured.
``components``  connected components: every edge joins (single linkage). Fast and
                predictable; one wrong edge merges two people, so it needs the
                strictest threshold.
``whispers``    Chinese Whispers (Biemann 2006, the algorithm dlib ships): each face
                takes the label carrying the most edge weight among its neighbours,
                until labels settle. A lone wrong edge between two groups loses the
                vote; faces update in random batches (vectorised with numpy).
``leiden``      Leiden modularity optimisation (graspologic-native, MIT licence): a
                group must hold more edge weight inside than chance; splits weakly
                bridged groups, and never joins groups with no edge between them.
``density``     the immich-style pass: a face with at least ``min_neighbours`` others
                above the threshold is a core; cores join the group of their nearest
                grouped neighbour or found a new one; the other faces join the group
                of their nearest core neighbour, else stay alone until the next pass.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

import numpy as np
import numpy.typing as npt

from facetrace.errors import InvalidRequest
from facetrace.grouping.constraints import Constraints, components_of, contract, enforce
from facetrace.grouping.graph import NeighbourGraph

if TYPE_CHECKING:
    from facetrace.calibration import Calibration

log = logging.getLogger(__name__)

Labels = npt.NDArray[np.int64]
Pairs = npt.NDArray[np.int64]


class Algorithm(StrEnum):
    """The registered algorithms (see the module docstring)."""

    AVERAGE = "average"
    COMPONENTS = "components"
    WHISPERS = "whispers"
    LEIDEN = "leiden"
    DENSITY = "density"


@dataclass(frozen=True)
class Problem:
    """What an algorithm sees: the graph over its nodes and, per node, the sum of its
    faces' vectors and their count (a node is several faces once must-links are
    contracted), the cannot-linked node pairs and the merge threshold.

    Attributes:
        graph: edges already at or above ``threshold``.
        sums: float64 (n, d) sum of member vectors, or None when not known.
        sizes: float64 (n,) faces per node.
        cannot_link: int64 (c, 2) node pairs that must never share a group.
        threshold: the calibrated score threshold the graph was cut at.
    """

    graph: NeighbourGraph
    sums: npt.NDArray[np.float64] | None
    sizes: npt.NDArray[np.float64]
    cannot_link: Pairs
    threshold: float


class Clusterer(Protocol):
    """A clustering algorithm: a label per node (int64 (n,)), equal labels = one group."""

    def __call__(self, problem: Problem, *, seed: int) -> Labels: ...


def average_linkage(problem: Problem, *, seed: int = 0) -> Labels:
    """Average linkage over the graph's edges, reciprocal best pairs merged per round.

    The score of two groups is the mean over every pair of their faces, exactly
    ``sum_A . sum_B / (|A| |B|)``. In each round every group finds its best-scoring
    neighbour; pairs that chose each other and reach the threshold merge (never a
    cannot-linked pair). Stops when no pair reaches the threshold. ``seed`` is unused.
    """
    g = problem.graph
    if problem.sums is None:
        raise InvalidRequest("average linkage needs the faces' vectors")
    n = g.n
    labels = np.arange(n, dtype=np.int64)
    if g.edges == 0:
        return labels
    sums = problem.sums.astype(np.float64, copy=True)
    sizes = problem.sizes.astype(np.float64, copy=True)
    u, v = g.src.copy(), g.dst.copy()
    ban = problem.cannot_link.copy()
    big = np.int64(n)
    sim = _mean_scores(sums, sizes, u, v)
    rounds = 0
    while True:
        keep = sim >= problem.threshold
        if ban.size:
            lo, hi = np.minimum(ban[:, 0], ban[:, 1]), np.maximum(ban[:, 0], ban[:, 1])
            keep &= ~np.isin(u * big + v, lo * big + hi)
        u, v, sim = u[keep], v[keep], sim[keep]
        if u.size == 0:
            break
        rounds += 1
        best = _best_neighbour(n, u, v, sim)
        mutual = (best[u] == v) & (best[v] == u)
        into, gone = u[mutual], v[mutual]
        sums[into] += sums[gone]
        sizes[into] += sizes[gone]
        step = np.arange(n, dtype=np.int64)
        step[gone] = into
        labels = step[labels]
        ban = step[ban]
        touched = np.zeros(n, dtype=bool)
        touched[into] = True
        a, b = step[u], step[v]
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        ok = lo != hi
        key, first = np.unique(lo[ok] * big + hi[ok], return_index=True)
        u, v = key // big, key % big
        sim = sim[ok][first]
        redo = touched[u] | touched[v]
        sim[redo] = _mean_scores(sums, sizes, u[redo], v[redo])
    log.debug("average linkage: %d rounds", rounds)
    return labels


def _mean_scores(
    sums: npt.NDArray[np.float64], sizes: npt.NDArray[np.float64], u: Labels, v: Labels
) -> npt.NDArray[np.float64]:
    """Mean pair score of groups ``u`` and ``v`` (elementwise), in chunks of edges."""
    out = np.empty(u.size, dtype=np.float64)
    for start in range(0, u.size, 1 << 20):
        a, b = u[start : start + (1 << 20)], v[start : start + (1 << 20)]
        out[start : start + a.size] = np.einsum("ij,ij->i", sums[a], sums[b]) / (
            sizes[a] * sizes[b]
        )
    return out


def _best_neighbour(n: int, u: Labels, v: Labels, sim: npt.NDArray[np.float64]) -> Labels:
    """For each node its highest-scoring neighbour (ties: the smaller id); -1 if none."""
    a = np.concatenate([u, v])
    b = np.concatenate([v, u])
    s = np.concatenate([sim, sim])
    order = np.lexsort((b, -s, a))
    a, b = a[order], b[order]
    first = np.ones(a.size, dtype=bool)
    first[1:] = a[1:] != a[:-1]
    best = np.full(n, -1, dtype=np.int64)
    best[a[first]] = b[first]
    return best


def connected_components(problem: Problem, *, seed: int = 0) -> Labels:
    """Connected components (``seed`` is unused: the result is unique)."""
    g = problem.graph
    return components_of(g.n, np.stack([g.src, g.dst], axis=1))


def chinese_whispers(
    problem: Problem, *, seed: int = 0, iterations: int = 30, batches: int = 16
) -> Labels:
    """Chinese Whispers with edge weight = score.

    Every face starts alone; in each iteration the faces, in ``batches`` random parts
    taken in random order, adopt the label of greatest total edge weight among their
    neighbours (ties broken at random). Stops when no label changes.
    """
    graph = problem.graph
    n = graph.n
    labels = np.arange(n, dtype=np.int64)
    if graph.edges == 0:
        return labels
    rng = np.random.default_rng(seed)
    a = np.concatenate([graph.src, graph.dst])
    b = np.concatenate([graph.dst, graph.src])
    w = np.concatenate([graph.score, graph.score]).astype(np.float64)
    part = rng.integers(0, batches, n)
    order = np.argsort(part[a], kind="stable")
    a, b, w = a[order], b[order], w[order]
    bounds = np.searchsorted(part[a], np.arange(batches + 1))
    big = np.int64(n)
    for it in range(iterations):
        changed = 0
        for p in rng.permutation(batches):
            lo, hi = int(bounds[p]), int(bounds[p + 1])
            if lo == hi:
                continue
            keys, inverse = np.unique(a[lo:hi] * big + labels[b[lo:hi]], return_inverse=True)
            votes = np.bincount(inverse.reshape(-1), weights=w[lo:hi]).astype(np.float64)
            votes += rng.random(votes.size) * 1e-9  # random tie-break
            node, cand = keys // big, keys % big
            best = np.lexsort((-votes, node))
            node, cand = node[best], cand[best]
            first = np.ones(node.size, dtype=bool)
            first[1:] = node[1:] != node[:-1]
            node, cand = node[first], cand[first]
            changed += int(np.count_nonzero(labels[node] != cand))
            labels[node] = cand
        if changed == 0:
            log.debug("chinese whispers settled after %d iterations", it + 1)
            break
    return labels


def leiden(problem: Problem, *, seed: int = 0, resolution: float = 1.0) -> Labels:
    """Leiden modularity communities (graspologic-native); isolated faces stay alone."""
    graph = problem.graph
    n = graph.n
    labels = np.arange(n, dtype=np.int64)
    if graph.edges == 0:
        return labels
    import graspologic_native as gn

    edges = list(
        zip(
            map(str, graph.src.tolist()),
            map(str, graph.dst.tolist()),
            graph.score.astype(np.float64).tolist(),
            strict=True,
        )
    )
    _, partition = gn.leiden(edges, resolution=resolution, seed=seed, use_modularity=True)
    nodes = np.fromiter((int(k) for k in partition), dtype=np.int64, count=len(partition))
    comms = np.fromiter(partition.values(), dtype=np.int64, count=len(partition))
    labels[nodes] = n + comms
    return labels


def density(problem: Problem, *, seed: int = 0, min_neighbours: int = 2) -> Labels:
    """The immich-style density pass (``seed`` is unused: cores go densest first).

    ``min_neighbours`` counts the others above the threshold; immich's ``minFaces``
    of 3 counts the face itself, i.e. 2 here.
    """
    graph = problem.graph
    n = graph.n
    labels = np.full(n, -1, dtype=np.int64)
    indptr, nbrs, _ = graph.adjacency()
    degree = np.diff(indptr)
    core = degree >= min_neighbours
    fresh = 0
    for i in np.argsort(-degree, kind="stable")[: int(core.sum())].tolist():
        near = labels[nbrs[indptr[i] : indptr[i + 1]]]
        near = near[near >= 0]
        if near.size:
            labels[i] = near[0]
        else:
            labels[i] = fresh
            fresh += 1
    for i in np.flatnonzero(~core).tolist():
        near = nbrs[indptr[i] : indptr[i + 1]]
        near = near[core[near]]
        if near.size:
            labels[i] = labels[near[0]]
    alone = labels < 0
    labels[alone] = fresh + np.arange(int(alone.sum()), dtype=np.int64)
    return labels


@dataclass(frozen=True)
class _Entry:
    run: Callable[..., Labels]
    label: str


ALGORITHMS: dict[Algorithm, _Entry] = {
    Algorithm.AVERAGE: _Entry(average_linkage, "average linkage"),
    Algorithm.COMPONENTS: _Entry(connected_components, "connected components"),
    Algorithm.WHISPERS: _Entry(chinese_whispers, "Chinese Whispers"),
    Algorithm.LEIDEN: _Entry(leiden, "Leiden (modularity)"),
    Algorithm.DENSITY: _Entry(density, "immich-style density pass"),
}

DEFAULT_ALGORITHM = Algorithm.AVERAGE


def algorithm(name: str) -> Algorithm:
    """The algorithm called ``name``; raises :class:`InvalidRequest` for an unknown one."""
    try:
        return Algorithm(name.strip().lower())
    except ValueError:
        known = ", ".join(a.value for a in Algorithm)
        raise InvalidRequest(
            f"unknown grouping algorithm {name!r}; expected one of {known}"
        ) from None


def cluster(
    graph: NeighbourGraph,
    method: Algorithm | str = DEFAULT_ALGORITHM,
    *,
    threshold: float,
    vectors: npt.NDArray[np.float32] | None = None,
    constraints: Constraints | None = None,
    seed: int = 0,
) -> Labels:
    """Group the nodes of ``graph`` with ``method`` under ``constraints``.

    Args:
        graph: the neighbour graph (edges below ``threshold`` are ignored).
        method: an :class:`Algorithm` or its name.
        threshold: the calibrated score threshold (:func:`.graph.edge_threshold`).
        vectors: the faces' vectors (n, d); average linkage needs them.
        constraints: must-link / cannot-link pairs of nodes (people's decisions).
        seed: for the randomised algorithms (whispers, leiden).

    Returns:
        int64 (n,) labels ``0..g-1``, group 0 the largest (ties: smallest node first).
        Must-linked nodes always share a label; cannot-linked ones never do.
    """
    chosen = algorithm(method) if isinstance(method, str) else method
    run = ALGORITHMS[chosen].run
    if vectors is not None and vectors.shape[0] != graph.n:
        raise InvalidRequest(f"{vectors.shape[0]} vectors for a graph of {graph.n} faces")
    graph = graph.above(threshold)
    constraints = constraints or Constraints()
    small = contract(graph, constraints)
    m = small.graph.n
    sizes = np.bincount(small.node_of, minlength=m).astype(np.float64)
    sums = None
    if vectors is not None:
        sums = np.zeros((m, vectors.shape[1]), dtype=np.float64)
        np.add.at(sums, small.node_of, vectors.astype(np.float64))
    problem = Problem(small.graph, sums, sizes, small.cannot_link, threshold)
    labels = enforce(small.graph, run(problem, seed=seed), small.cannot_link)
    return by_size(labels[small.node_of])


def by_size(labels: Labels) -> Labels:
    """Labels renumbered ``0..g-1`` by decreasing group size, ties by first node."""
    if labels.size == 0:
        return labels.astype(np.int64)
    _, first, inverse, counts = np.unique(
        labels, return_index=True, return_inverse=True, return_counts=True
    )
    order = np.lexsort((first, -counts))
    rank = np.empty(order.size, dtype=np.int64)
    rank[order] = np.arange(order.size)
    return rank[inverse.reshape(-1)]


#: The largest share of a grouping's pairs that the calibration table may expect to be
#: strangers (:func:`cluster_for_precision`; BENCHMARKS.md "grouping-resamples": on
#: identity-disjoint LFW resamples it kept mean pairwise precision >= 0.99 at every mix
#: of people measured, where a fixed rate fell to 0.985 on sets of few photos a person).
DEFAULT_STRANGER_PAIR_SHARE = 0.02
#: Thresholds tried: the floor, then edge scores above it at evenly spaced quantiles.
CANDIDATE_THRESHOLDS = 20


def cluster_for_precision(
    graph: NeighbourGraph,
    method: Algorithm | str = DEFAULT_ALGORITHM,
    *,
    floor: float,
    calibration: Calibration | None,
    vectors: npt.NDArray[np.float32] | None = None,
    constraints: Constraints | None = None,
    seed: int = 0,
    share: float = DEFAULT_STRANGER_PAIR_SHARE,
) -> tuple[Labels, float]:
    """:func:`cluster` at the lowest threshold, at least ``floor``, at which the table's
    expected number of strangers' pairs above it, ``FMR(t) n(n-1)/2``, is at most
    ``share`` of the pairs the groups hold: (labels, the threshold used).

    A per-pair false-match rate fixes how many strangers' pairs score above the
    threshold, not how many true pairs stand beside them: a set whose people have one or
    two photos each holds few true pairs, so the same look-alikes make a larger share of
    its groups. The expected count is an upper bound on the strangers' pairs grouped
    (a pair above the threshold may still not be merged), so this bounds the share of
    wrong pairs, i.e. pairwise precision, from the calibration table. The floor is kept
    when it already meets the bound (one grouping, as before) or nothing is grouped;
    otherwise the candidates above it are bisected (about five more groupings).
    """
    if not 0 < share < 1:
        raise InvalidRequest(f"the share of strangers' pairs must be in (0, 1), got {share}")

    def at(t: float) -> tuple[Labels, bool]:
        labels = cluster(
            graph, method, threshold=t, vectors=vectors, constraints=constraints, seed=seed
        )
        counts = np.bincount(labels).astype(np.float64)
        held = float((counts * (counts - 1) / 2).sum())
        n = graph.n
        assert calibration is not None
        expected = calibration.false_match_rate(t) * (n * (n - 1) / 2)
        return labels, held == 0 or expected <= share * held

    if calibration is None:
        return cluster(
            graph, method, threshold=floor, vectors=vectors, constraints=constraints, seed=seed
        ), floor
    labels, ok = at(floor)
    above = graph.score[graph.score > floor]
    if ok or above.size == 0:
        return labels, floor
    qs = np.linspace(0.0, 0.9, CANDIDATE_THRESHOLDS - 1)
    cands = [float(c) for c in np.unique(np.quantile(above, qs, method="lower"))]
    lo, hi = 0, len(cands) - 1  # the lowest candidate that meets the bound, if monotone
    best: tuple[Labels, float] | None = None
    while lo <= hi:
        mid = (lo + hi) // 2
        got, ok = at(cands[mid])
        if ok:
            best, hi = (got, cands[mid]), mid - 1
        else:
            lo = mid + 1
    if best is None:  # even the strictest candidate does not meet it: use that one
        return at(cands[-1])[0], cands[-1]
    return best
