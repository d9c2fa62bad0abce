"""The k-nearest-neighbour graph of a set of faces, built with the vector index.

Each face asks the index for its ``k`` nearest faces; an edge is kept when its cosine
score reaches a threshold. The threshold is not a magic number: it is the score whose
estimated false-match rate (FMR) in the model's calibration table equals a target
(:func:`edge_threshold`), so "an edge" means "a pair of different people scores this
high about once in 1/FMR comparisons" on the population the table was measured on.

Nodes are row numbers ``0..n-1`` of the vectors; edges are undirected, stored once
(``src < dst``) with their score. The index may be the gallery's own (FAISS or Milvus,
ids are then face ids mapped back to rows) or one built for the job
(:func:`build_index`: exact up to :data:`EXACT_MAX` faces, HNSW beyond).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from facetrace.errors import IndexUnavailable, InvalidRequest
from facetrace.index import batch_threads
from facetrace.index.base import Selector, VectorIndex, check_vectors
from facetrace.index.flat import FlatIndex
from facetrace.index.hnsw import HnswIndex

if TYPE_CHECKING:
    from facetrace.calibration import Calibration

log = logging.getLogger(__name__)

Ids = npt.NDArray[np.int64]
Scores = npt.NDArray[np.float32]
Progress = Callable[[int, int], None]

#: Up to this many faces the graph's index is an exact scan (50k x 50k inner products:
#: seconds on two cores); the scan grows with n^2, so beyond it HNSW takes over (100k
#: faces exactly took 281 s on the busy 2-core machine, IVF 75 s).
EXACT_MAX = 50_000
#: The graph index beyond EXACT_MAX: HNSW with 16 links per face, light build and
#: search effort (edge recall 0.984 at 100k at efSearch 32; at 1M efSearch 32 gave
#: 0.766 in 74 s of search, 80 gave 0.874 in 150 s: BENCHMARKS.md, "grouping-scale"),
#: so 1M faces search at 128 and the graph is then closed over two hops (:func:`two_hop`).
GRAPH_HNSW_M = 16
GRAPH_HNSW_EF = (40, 128)  # construction, search
#: Neighbours of a face (its best) whose pairs the two-hop pass scores exactly.
TWO_HOP_FAN = 10
DEFAULT_K = 20
BATCH = 8192


@dataclass(frozen=True)
class NeighbourGraph:
    """Undirected weighted graph over nodes ``0..n-1``.

    Attributes:
        n: number of nodes (faces), isolated ones included.
        src, dst: int64 (e,), ``src < dst``, each pair once.
        score: float32 (e,), the pair's cosine score.
    """

    n: int
    src: Ids
    dst: Ids
    score: Scores

    def __post_init__(self) -> None:
        e = self.src.shape[0]
        if self.dst.shape != (e,) or self.score.shape != (e,):
            raise InvalidRequest("graph edge arrays differ in length")
        if e and (self.src.min() < 0 or self.dst.max() >= self.n):
            raise InvalidRequest(f"graph edge outside nodes 0..{self.n - 1}")

    @property
    def edges(self) -> int:
        return int(self.src.shape[0])

    def above(self, min_score: float) -> NeighbourGraph:
        """The same nodes with only the edges scoring at least ``min_score``."""
        keep = self.score >= min_score
        return NeighbourGraph(self.n, self.src[keep], self.dst[keep], self.score[keep])

    def without(self, drop: npt.NDArray[np.bool_]) -> NeighbourGraph:
        """The same nodes without the edges where ``drop`` (bool (e,)) is true."""
        keep = ~drop
        return NeighbourGraph(self.n, self.src[keep], self.dst[keep], self.score[keep])

    def degrees(self) -> Ids:
        """Edges per node, int64 (n,)."""
        return np.bincount(np.concatenate([self.src, self.dst]), minlength=self.n).astype(np.int64)

    def adjacency(self) -> tuple[Ids, Ids, Scores]:
        """Both directions in CSR form: (indptr (n+1,), neighbours (2e,), scores (2e,)).

        The neighbours of node ``i`` are ``neighbours[indptr[i]:indptr[i+1]]``, best first.
        """
        a = np.concatenate([self.src, self.dst])
        b = np.concatenate([self.dst, self.src])
        w = np.concatenate([self.score, self.score])
        order = np.lexsort((-w, a))
        indptr = np.zeros(self.n + 1, dtype=np.int64)
        np.cumsum(np.bincount(a, minlength=self.n), out=indptr[1:])
        return indptr, b[order], w[order]


def empty_graph(n: int) -> NeighbourGraph:
    """``n`` nodes and no edge."""
    none = np.empty(0, dtype=np.int64)
    return NeighbourGraph(n, none, none.copy(), np.empty(0, dtype=np.float32))


def from_pairs(n: int, a: Ids, b: Ids, score: Scores) -> NeighbourGraph:
    """A graph from pairs in any order and direction: self-pairs dropped, a pair found
    twice kept once with its best score."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    s = np.asarray(score, dtype=np.float32)
    keep = a != b
    lo, hi, s = np.minimum(a, b)[keep], np.maximum(a, b)[keep], s[keep]
    key = lo * np.int64(max(n, 1)) + hi
    order = np.lexsort((-s, key))
    key, s = key[order], s[order]
    first = np.ones(key.shape[0], dtype=bool)
    first[1:] = key[1:] != key[:-1]
    key, s = key[first], s[first]
    return NeighbourGraph(n, key // max(n, 1), key % max(n, 1), s)


def knn_graph(
    index: VectorIndex,
    vectors: npt.NDArray[np.float32],
    *,
    min_score: float,
    k: int = DEFAULT_K,
    ids: Ids | None = None,
    selector: Selector | None = None,
    batch: int = BATCH,
    progress: Progress | None = None,
) -> NeighbourGraph:
    """The k-NN graph of ``vectors`` (n, d), edges with score >= ``min_score``.

    Args:
        index: holds (at least) these vectors; searched for ``k + 1`` neighbours each
            (one of them is the face itself).
        vectors: the faces to connect, L2-normalised float32 (n, d).
        min_score: cosine threshold an edge must reach (see :func:`edge_threshold`).
        k: neighbours asked per face.
        ids: the index id of each row (int64 (n,)); default ``0..n-1``. Neighbours the
            index returns that are not among ``ids`` are not nodes and are dropped.
        selector: restricts the search (a department's collections) inside the index.
        batch: queries per index call.
        progress: called with (faces done, n) after each batch.

    Returns:
        The graph over rows ``0..n-1`` (node ``i`` is row ``i``).
    """
    if k < 1:
        raise InvalidRequest(f"k must be at least 1, got {k}")
    vecs = check_vectors(vectors, index.dim) if vectors.size else vectors
    n = int(vecs.shape[0])
    if n == 0:
        return empty_graph(0)
    if ids is None:
        row_ids = np.arange(n, dtype=np.int64)
        order = row_ids
        sorted_ids = row_ids
    else:
        row_ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        if row_ids.shape[0] != n:
            raise InvalidRequest(f"{row_ids.shape[0]} ids for {n} vectors")
        order = np.argsort(row_ids, kind="stable")
        sorted_ids = row_ids[order]
        if np.any(sorted_ids[1:] == sorted_ids[:-1]):
            raise InvalidRequest("face ids repeat: each face may be a node once")
    parts_a: list[Ids] = []
    parts_b: list[Ids] = []
    parts_s: list[Scores] = []
    with batch_threads():
        for start in range(0, n, batch):
            stop = min(n, start + batch)
            scores, found = index.search(vecs[start:stop], k + 1, selector)
            rows = _rows_of(found, sorted_ids, order)
            ok = (rows >= 0) & (scores >= min_score)
            src = np.broadcast_to(np.arange(start, stop, dtype=np.int64)[:, None], rows.shape)
            parts_a.append(src[ok])
            parts_b.append(rows[ok])
            parts_s.append(scores[ok])
            if progress is not None:
                progress(stop, n)
    graph = from_pairs(n, np.concatenate(parts_a), np.concatenate(parts_b), np.concatenate(parts_s))
    log.info("neighbour graph: %d faces, %d edges at score >= %.4f", n, graph.edges, min_score)
    return graph


def _rows_of(found: Ids, sorted_ids: Ids, order: Ids) -> Ids:
    """Row number of each index id in ``found`` (-1 where it is not a node)."""
    pos = np.searchsorted(sorted_ids, found)
    pos = np.clip(pos, 0, sorted_ids.size - 1)
    hit = (sorted_ids[pos] == found) & (found >= 0)
    return np.where(hit, order[pos], -1)


def build_index(
    vectors: npt.NDArray[np.float32],
    *,
    exact_max: int = EXACT_MAX,
) -> VectorIndex:
    """An index over rows ``0..n-1`` of ``vectors`` for building their graph.

    Exact (flat) up to ``exact_max`` faces; beyond, one light HNSW graph
    (:data:`GRAPH_HNSW_M`, :data:`GRAPH_HNSW_EF`): the neighbours an edge needs score
    far above a face's strangers, so a small graph finds them. At 100k faces it found
    98.4 % of the exact scan's edges in 9 s (build + every face searched), where IVF-SQ8
    at 1/40 of its lists found 97.7 % in 330 s on the same busy machine (BENCHMARKS.md,
    "Grouping"; notes of issue 14).
    """
    n, dim = vectors.shape
    ids = np.arange(n, dtype=np.int64)
    index: VectorIndex
    with batch_threads():
        if n <= exact_max:
            index = FlatIndex(dim)
        else:
            build, search = GRAPH_HNSW_EF
            index = HnswIndex(
                dim,
                m=GRAPH_HNSW_M,
                ef_construction=build,
                ef_search=search,
                shards=1,
                exact_below=0,
            )
        index.add(ids, vectors)
    return index


def two_hop(
    graph: NeighbourGraph,
    vectors: npt.NDArray[np.float32],
    *,
    min_score: float,
    fan: int = TWO_HOP_FAN,
) -> NeighbourGraph:
    """``graph`` plus every pair of faces that share a neighbour and score at least
    ``min_score`` (scored exactly from ``vectors``).

    An approximate index misses some of a face's neighbours, mostly inside a person
    it found other photos of: two photos of one person that each link to a third are
    likely one another's neighbours too (the idea of NN-descent). Only each face's
    ``fan`` best neighbours are paired, so the work is at most ``n * fan^2 / 2`` dot
    products whatever the graph.
    """
    n = graph.n
    if graph.edges == 0:
        return graph
    indptr, nbrs, _ = graph.adjacency()
    degree = np.minimum(np.diff(indptr), fan)
    parts_a: list[Ids] = []
    parts_b: list[Ids] = []
    for d in range(2, int(degree.max()) + 1):
        middle = np.flatnonzero(degree == d)
        if middle.size == 0:
            continue
        rows = nbrs[indptr[middle][:, None] + np.arange(d)[None, :]]  # (m, d) best first
        i, j = np.triu_indices(d, 1)
        parts_a.append(rows[:, i].reshape(-1))
        parts_b.append(rows[:, j].reshape(-1))
    if not parts_a:
        return graph
    a, b = np.concatenate(parts_a), np.concatenate(parts_b)
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    big = np.int64(max(n, 1))
    key = np.sort(lo * big + hi)
    fresh = np.ones(key.size, dtype=bool)
    fresh[1:] = key[1:] != key[:-1]
    have = np.sort(graph.src * big + graph.dst)  # from_pairs keys: sorted already
    at = np.clip(np.searchsorted(have, key), 0, have.size - 1)
    key = key[fresh & (have[at] != key)]
    lo, hi = key // big, key % big
    score = np.empty(key.size, dtype=np.float32)
    for start in range(0, key.size, 1 << 18):
        x, y = lo[start : start + (1 << 18)], hi[start : start + (1 << 18)]
        score[start : start + x.size] = np.einsum("ij,ij->i", vectors[x], vectors[y])
    keep = score >= min_score
    log.info("two-hop pass: %d pairs scored, %d edges added", key.size, int(keep.sum()))
    return from_pairs(
        n,
        np.concatenate([graph.src, lo[keep]]),
        np.concatenate([graph.dst, hi[keep]]),
        np.concatenate([graph.score, score[keep]]),
    )


def neighbour_graph(
    vectors: npt.NDArray[np.float32],
    *,
    min_score: float,
    k: int = DEFAULT_K,
    exact_max: int = EXACT_MAX,
    progress: Progress | None = None,
) -> NeighbourGraph:
    """The neighbour graph of ``vectors`` on an index built for the job
    (:func:`build_index`); when that index is approximate (beyond ``exact_max`` faces)
    the graph is closed over two hops (:func:`two_hop`) to find what it missed."""
    index = build_index(vectors, exact_max=exact_max)
    graph = knn_graph(index, vectors, min_score=min_score, k=k, progress=progress)
    if isinstance(index, FlatIndex):
        return graph
    del index
    return two_hop(graph, vectors, min_score=min_score)


#: Faces of the labelled set the default false-match rates were chosen on (the LFW half,
#: faces of quality >= 0.3: BENCHMARKS.md, "Grouping").
REFERENCE_FACES = 6_071


def fmr_for_size(fmr: float, n: int, *, reference: int = REFERENCE_FACES) -> float:
    """The per-pair false-match rate for grouping ``n`` faces at target ``fmr``.

    A face meets ``n - 1`` others, so at a fixed per-pair rate its expected number of
    strangers above the threshold grows with ``n`` (at 5e-5: 0.3 among LFW's 6,071
    faces, 50 among a million), and so do wrong merges. Beyond ``reference`` faces the
    rate shrinks as ``fmr * (reference - 1) / (n - 1)``, which keeps that expectation
    where the target was validated; smaller sets keep ``fmr``.
    """
    if not 0 < fmr < 1:
        raise InvalidRequest(f"the target false-match rate must be in (0, 1), got {fmr}")
    if n <= reference:
        return fmr
    return fmr * (reference - 1) / (n - 1)


def edge_threshold(calibration: Calibration | None, fmr: float, *, fallback: float) -> float:
    """The score whose estimated false-match rate is ``fmr`` in ``calibration``.

    ``fallback`` (the model's verification threshold) applies when the model has no
    calibration table; callers should say so, since it is then an uncalibrated number.
    """
    if not 0 < fmr < 1:
        raise InvalidRequest(f"the target false-match rate must be in (0, 1), got {fmr}")
    if calibration is None:
        return fallback
    try:
        return float(calibration.threshold_for_fmr(fmr))
    except ValueError as exc:  # pragma: no cover - guarded above
        raise IndexUnavailable(str(exc)) from exc
