"""HNSW graphs for galleries of about 200k to 5M faces (``hnsw`` index kind).

:class:`HnswIndex` splits the gallery into a few graphs (*shards*, one per core by
default) and searches them at once, one thread each, merging their top-k. One graph
answers a query on one core only: on 1M face-like vectors one graph needs efSearch
256 and 1.1 ms for recall@10 0.99, while two 500k graphs searched side by side give
0.996 / 0.992 (enrolled / strangers) in 0.85 ms (BENCHMARKS.md, "Vector index").
The price is some throughput: two half-size graphs cost a query ~20% more CPU in all
than one graph at the same recall, which only shows when every core is busy with
searches. In the service the shards are how one search uses the other cores when
few are searching (searches read the index side by side under the gallery's
readers-writer lock); ``shards=1`` suits several searching processes on one machine.

Each shard is a :class:`HnswGraph`. HNSW cannot remove vectors from its graph: a
shard keeps a label array (graph position -> our id) and marks a removed face by
overwriting its label with -1 (a tombstone). Every search passes a bitmap selector
of live positions, so a removed face can never be returned, and removal is
O(removed) instead of a rebuild. When tombstones exceed ``compact_fraction`` of a
shard, that shard is rebuilt from its live vectors (:meth:`HnswGraph.compact`).

Groups (:mod:`facetrace.index.groups`): each shard keeps a group array aligned with
its labels and filters with a cached bitmap over its positions. A filter admitting
few faces is answered by exact scoring of those faces; for wider ones ``efSearch``
grows in proportion to how selective the filter is.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import numpy.typing as npt

from facetrace.errors import IndexUnavailable
from facetrace.index import use_search_threads
from facetrace.index.base import (
    MISSING_ID,
    UNKNOWN_GROUP,
    Capabilities,
    Groups,
    Ids,
    Selector,
    Vectors,
    check_groups,
    check_ids,
    check_vectors,
)
from facetrace.index.faiss_ann import (
    Scores,
    as_id_array,
    check_k,
    checked_params,
    exact_topk,
    set_array,
)
from facetrace.index.flat import pad_results
from facetrace.index.groups import (
    FilterCache,
    GroupFilter,
    LabelLookup,
    group_mask,
    positions_filter,
    retag,
)
from facetrace.index.persist import (
    load_part_array,
    load_part_index,
    read_manifest,
    save_bundle,
)

log = logging.getLogger(__name__)

# faiss's bundled stubs lack SearchParametersHNSW: reach it through an untyped alias
_faiss: Any = faiss


class HnswGraph:
    """One HNSW graph over full float32 vectors (``IndexHNSWFlat``), tombstones for deletes.

    A shard of :class:`HnswIndex`, which holds one or more of them, checks the input
    once and documents the parameters (their defaults live there too).
    """

    def __init__(
        self,
        dim: int,
        *,
        m: int,
        ef_construction: int,
        ef_search: int,
        compact_fraction: float,
        exact_below: int,
        _graph: faiss.IndexHNSWFlat | None = None,
        _labels: Ids | None = None,
        _groups: Groups | None = None,
    ) -> None:
        if dim < 1 or m < 2 or ef_construction < 1 or ef_search < 1 or exact_below < 0:
            raise IndexUnavailable("invalid HNSW parameters")
        if not 0.0 <= compact_fraction < 1.0:
            raise IndexUnavailable("compact_fraction must be in [0, 1)")
        self.dim = dim
        self.m = m
        self.ef_construction = ef_construction
        self.ef_search = ef_search
        self.compact_fraction = compact_fraction
        self.exact_below = exact_below
        self._graph = _graph if _graph is not None else self._new_graph()
        if self._graph.d != dim:
            raise IndexUnavailable(f"index has dimension {self._graph.d}, expected {dim}")
        n = int(self._graph.ntotal)
        self._labels: Ids = _labels if _labels is not None else np.empty(0, dtype=np.int64)
        if self._labels.shape != (n,):
            raise IndexUnavailable(f"label array has {self._labels.size} entries for {n} vectors")
        # no group array: saved before vectors carried groups, so every group is unknown
        self._groups: Groups = (
            _groups if _groups is not None else np.full(n, UNKNOWN_GROUP, dtype=np.int64)
        )
        if self._groups.shape != (n,):
            raise IndexUnavailable(f"group array has {self._groups.size} entries for {n} vectors")
        self._lookup = LabelLookup()
        self._live_count = int(np.count_nonzero(self._labels >= 0))
        self._tomb_sel: tuple[faiss.IDSelector, npt.NDArray[np.uint8]] | None = None
        self._filters = FilterCache()

    def _new_graph(self) -> faiss.IndexHNSWFlat:
        graph = faiss.IndexHNSWFlat(self.dim, self.m, faiss.METRIC_INNER_PRODUCT)
        graph.hnsw.efConstruction = self.ef_construction
        return graph

    # ------------------------------------------------------------------ writes
    def add(self, labels: Ids, vecs: Vectors, tags: Groups) -> None:
        """Add checked ``vecs`` (n, dim) float32 with their ids and groups."""
        if labels.size == 0:
            return
        self._graph.add(vecs)
        self._labels = np.concatenate([self._labels, labels])
        self._groups = np.concatenate([self._groups, tags])
        self._live_count += labels.size
        self._lookup.invalidate()
        self._tomb_sel = None
        self._filters.clear()

    def remove(self, wanted: Ids) -> int:
        """Tombstone ids ``wanted``; compacts past ``compact_fraction`` of tombstones."""
        pos = self._lookup.positions(self._labels, wanted)
        if pos.size == 0:
            return 0
        removed = int(np.unique(self._labels[pos]).size)
        labels = self._labels.copy()  # copy-on-write: searches in flight keep the old array
        labels[pos] = MISSING_ID
        self._labels = labels
        self._live_count -= pos.size
        self._tomb_sel = None
        self._filters.clear()
        if self.compact_fraction and self.tombstone_fraction > self.compact_fraction:
            log.info(
                "HNSW tombstones at %.0f%% of %d: compacting",
                100 * self.tombstone_fraction,
                self._labels.size,
            )
            self.compact()
        return removed

    def compact(self) -> None:
        """Rebuild the graph from the live vectors, dropping every tombstone."""
        live = np.flatnonzero(self._labels >= 0)
        vectors = self._vectors()[live].copy()
        graph = self._new_graph()
        if live.size:
            graph.add(vectors)
        self._graph = graph
        self._labels = self._labels[live].copy()
        self._groups = self._groups[live].copy()
        self._lookup.invalidate()
        self._tomb_sel = None
        self._filters.clear()

    def set_groups(self, wanted: Ids, tags: Groups) -> int:
        """Retag checked ids ``wanted`` with ``tags``; returns how many this graph holds."""
        self._groups, found = retag(self._labels, self._groups, self._lookup, wanted, tags)
        self._filters.clear()
        return found

    @property
    def tombstone_fraction(self) -> float:
        """Share of graph nodes that are removed faces awaiting compaction."""
        total = self._labels.size
        return 0.0 if total == 0 else (total - self._live_count) / total

    # ------------------------------------------------------------------ reads
    def _vectors(self) -> Vectors:
        """A view of the stored vectors, (graph size, dim); valid until the next add."""
        n = int(self._graph.ntotal)
        if n == 0:
            return np.empty((0, self.dim), dtype=np.float32)
        storage: Any = faiss.downcast_index(self._graph.storage)
        return faiss.rev_swig_ptr(storage.get_xb(), n * self.dim).reshape(n, self.dim)

    def _tombstone_selector(self) -> tuple[faiss.IDSelector, npt.NDArray[np.uint8]] | None:
        """The selector of live positions with the bitmap behind it (None: all are live).

        Returned as one pair, read once: concurrent searches may each build one, and a
        search must keep alive the very bitmap its selector points into."""
        if self._live_count == self._labels.size:
            return None
        found = self._tomb_sel
        if found is None:
            bits = np.packbits(self._labels >= 0, bitorder="little")
            found = (faiss.IDSelectorBitmap(self._labels.size, faiss.swig_ptr(bits)), bits)
            self._tomb_sel = found
        return found

    def search(
        self,
        q: Vectors,
        k: int,
        selector: Selector | None = None,
        *,
        ef_search: int | None = None,
    ) -> tuple[Scores, Ids]:
        """Top-``k`` of checked ``q`` by inner product; ``ef_search`` overrides the
        default for this call only."""
        ef = max(ef_search or self.ef_search, k)
        labels = self._labels
        if self._live_count == 0:
            return exact_topk(q, self._vectors()[:0], labels[:0], k)
        keep: list[Any] = []  # FAISS holds raw pointers: keep bitmaps alive for the call
        if selector is None or selector.unrestricted:
            tomb = self._tombstone_selector()
            keep.append(tomb)
            sel = None if tomb is None else tomb[0]
        else:
            by_group = None if selector.groups is None else self._group_filter(selector.groups)
            if by_group is not None and selector.allow is None and not selector.deny:
                chosen = by_group  # a collection or department filter: cached, no work per search
            else:
                mask = self._filter_mask(by_group)
                if selector.allow is not None:
                    admitted = np.zeros(labels.size, dtype=bool)
                    admitted[self._lookup.positions(labels, set_array(selector.allow))] = True
                    mask &= admitted
                if selector.deny:
                    mask[self._lookup.positions(labels, set_array(selector.deny))] = False
                chosen = positions_filter(mask)
            if chosen.count <= self.exact_below or chosen.count <= k:
                pos = np.flatnonzero(self._filter_mask(chosen))
                return exact_topk(q, self._vectors()[pos], labels[pos], k)
            share = chosen.count / max(self._live_count, 1)
            ef = min(max(ef, math.ceil(ef / share)), max(16 * ef, 1024))
            keep.append(chosen)
            sel = chosen.selector
        params = _faiss.SearchParametersHNSW(efSearch=ef)
        if sel is not None:
            params.sel = sel
        scores, pos = self._graph.search(q, k, params=params)
        del keep
        found = pos >= 0
        ids = np.where(found, labels[np.where(found, pos, 0)], MISSING_ID)
        return pad_results(scores, ids)

    def _group_filter(self, groups: frozenset[int]) -> GroupFilter:
        """The cached bitmap of live positions whose group is in ``groups``."""
        found = self._filters.get(groups)
        if found is not None:
            return found
        mask = group_mask(self._labels >= 0, self._groups, groups)
        return self._filters.put(groups, positions_filter(mask))

    def _filter_mask(self, found: GroupFilter | None) -> npt.NDArray[np.bool_]:
        """A writable mask of the positions ``found`` admits (every live one for None)."""
        if found is None or found.bits is None:
            return self._labels >= 0
        bits = np.unpackbits(found.bits, count=self._labels.size, bitorder="little")
        return bits.astype(bool)

    @property
    def count(self) -> int:
        return self._live_count

    def ids(self) -> Ids:
        return self._labels[self._labels >= 0].copy()

    def id_groups(self) -> tuple[Ids, Groups]:
        live = self._labels >= 0
        return self._labels[live].copy(), self._groups[live].copy()

    @property
    def graph(self) -> faiss.IndexHNSWFlat:
        """The FAISS graph (for saving and measuring; never modify it from outside)."""
        return self._graph

    @property
    def labels(self) -> Ids:
        """Graph position -> our id, -1 for a tombstone."""
        return self._labels

    @property
    def groups(self) -> Groups:
        """Graph position -> group."""
        return self._groups


#: Shards a new HNSW index gets at most, whatever the core count: each adds a little
#: merging and hand-off per query, and a server answering several investigators at
#: once keeps its other cores busy anyway.
MAX_SHARDS = 4


def default_shards() -> int:
    """One shard per core, up to :data:`MAX_SHARDS`."""
    return max(1, min(os.cpu_count() or 1, MAX_SHARDS))


def split_rows(sizes: npt.NDArray[np.int64], n: int) -> npt.NDArray[np.int64]:
    """How many of ``n`` new rows each shard takes so that shard sizes even out.

    Water-filling: the smallest shards are topped up first, then all grow together.

    >>> split_rows(np.array([10, 0]), 12).tolist()
    [1, 11]
    """
    order = np.argsort(sizes, kind="stable")
    ranked = sizes[order].astype(np.int64)
    take = np.zeros(sizes.size, dtype=np.int64)
    if n <= 0:
        return take
    # the largest j such that topping the j smallest shards up to a common level works
    for j in range(sizes.size, 0, -1):
        level = (int(ranked[:j].sum()) + n) / j
        if level >= ranked[j - 1]:
            break
    base = np.floor(level).astype(np.int64)
    share = np.maximum(base - ranked[:j], 0)
    extra = n - int(share.sum())
    share[:extra] += 1  # the rounding remainder, one row each to the smallest
    take[order[:j]] = share
    return take


class _ShardRunner:
    """Worker threads that search the other shards while the caller searches the first.

    Shared by every index of the process (a server has one gallery open). FAISS
    releases the GIL while it searches, so the shards run on separate cores; each
    call first gives its worker the search thread count (OpenMP keeps it per thread).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._workers = 0

    def run(self, calls: Sequence[Callable[[], tuple[Scores, Ids]]]) -> list[tuple[Scores, Ids]]:
        """Results of ``calls`` in order: the first here, the rest on the workers."""
        if len(calls) == 1:
            return [calls[0]()]
        pool = self._pool_for(len(calls) - 1)
        futures = [pool.submit(_in_search_threads, call) for call in calls[1:]]
        try:
            first = calls[0]()
        finally:
            rest = [f.result() for f in futures]  # never leave a shard running on our data
        return [first, *rest]

    def _pool_for(self, workers: int) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None or self._workers < workers:
                old = self._pool
                self._pool = ThreadPoolExecutor(workers, thread_name_prefix="facetrace-shard")
                self._workers = workers
                if old is not None:
                    old.shutdown(wait=False)
            return self._pool


def _in_search_threads(call: Callable[[], tuple[Scores, Ids]]) -> tuple[Scores, Ids]:
    use_search_threads()
    return call()


_runner = _ShardRunner()


def merge_topk(results: list[tuple[Scores, Ids]], k: int) -> tuple[Scores, Ids]:
    """The best ``k`` per query of several shards' (scores, ids), padded with -inf / -1."""
    scores = np.hstack([r[0] for r in results])
    ids = np.hstack([r[1] for r in results])
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return pad_results(
        np.take_along_axis(scores, order, axis=1), np.take_along_axis(ids, order, axis=1)
    )


class HnswIndex:
    """HNSW over one or more graph shards searched in parallel; tombstones for deletes.

    Parameters: ``m`` neighbours per node (memory ~ 4*2*m bytes per face on top of the
    4*dim bytes vector), ``ef_construction`` (build effort), ``ef_search`` (query effort
    *per shard*, overridable per call), ``compact_fraction`` (rebuild a shard when this
    share of it is tombstones; 0 disables), ``exact_below`` (filters allowing at most
    this many faces of a shard are answered by exact scoring of those faces),
    ``shards`` (graphs searched side by side; default one per core, up to
    :data:`MAX_SHARDS`; fixed when the index is created and saved with it).

    Defaults, measured on 1M face-like vectors on 2 cores (BENCHMARKS.md):
    ``ef_construction`` 256 lifted recall@10 at efSearch 128 by half a point over 128.
    Two shards gave recall@10 0.994 / 0.990 (enrolled / strangers) at efSearch 160,
    p50 0.80 ms, and 0.997 / 0.994 at 192, 0.90 ms; the default 176 keeps half a
    point of recall and a tenth of the millisecond in hand. One graph needs efSearch
    256 for 0.99, so that is its default.
    """

    kind = "hnsw"
    capabilities = Capabilities(
        exact=False, native_remove=False, filtered_search=True, persistent=True
    )

    def __init__(
        self,
        dim: int,
        *,
        m: int = 48,
        ef_construction: int = 256,
        ef_search: int | None = None,
        compact_fraction: float = 0.25,
        exact_below: int = 20_000,
        shards: int | None = None,
        _graphs: list[HnswGraph] | None = None,
    ) -> None:
        count = len(_graphs) if _graphs else (shards if shards is not None else default_shards())
        if count < 1 or (shards is not None and shards != count):
            raise IndexUnavailable(f"invalid HNSW shard count {shards}")
        self.dim = dim
        self.m = m
        self.ef_construction = ef_construction
        self.ef_search = ef_search if ef_search is not None else (256 if count == 1 else 176)
        self.compact_fraction = compact_fraction
        self.exact_below = exact_below
        self._graphs = _graphs or [
            HnswGraph(
                dim,
                m=m,
                ef_construction=ef_construction,
                ef_search=self.ef_search,
                compact_fraction=compact_fraction,
                exact_below=exact_below,
            )
            for _ in range(count)
        ]

    @property
    def shards(self) -> int:
        return len(self._graphs)

    @property
    def graphs(self) -> list[HnswGraph]:
        """The shards (for measuring; never modify them from outside)."""
        return list(self._graphs)

    # ------------------------------------------------------------------ writes
    def add(self, ids: Ids, vectors: Vectors, groups: Groups | None = None) -> None:
        vecs = check_vectors(vectors, self.dim)
        labels = check_ids(ids, vecs.shape[0])
        tags = check_groups(groups, vecs.shape[0])
        sizes = np.array([g.count for g in self._graphs], dtype=np.int64)
        start = 0
        for graph, take in zip(self._graphs, split_rows(sizes, labels.size), strict=True):
            stop = start + int(take)
            if stop > start:
                graph.add(labels[start:stop], vecs[start:stop], tags[start:stop])
            start = stop

    def remove(self, ids: Iterable[int]) -> int:
        """Tombstone ``ids``; a shard is compacted when its tombstones pass ``compact_fraction``."""
        wanted = as_id_array(ids)
        return sum(g.remove(wanted) for g in self._graphs)

    def compact(self) -> None:
        """Rebuild every shard from its live vectors, dropping every tombstone."""
        for graph in self._graphs:
            graph.compact()

    def set_groups(self, ids: Ids, groups: Groups) -> int:
        wanted = np.asarray(ids, dtype=np.int64).reshape(-1)
        tags = check_groups(groups, wanted.size)
        return sum(g.set_groups(wanted, tags) for g in self._graphs)

    @property
    def tombstone_fraction(self) -> float:
        """Share of graph nodes that are removed faces awaiting compaction."""
        total = sum(g.labels.size for g in self._graphs)
        return 0.0 if total == 0 else (total - self.count) / total

    # ------------------------------------------------------------------ reads
    def search(
        self,
        queries: Vectors,
        k: int,
        selector: Selector | None = None,
        *,
        ef_search: int | None = None,
    ) -> tuple[Scores, Ids]:
        """Top-``k`` by inner product over every shard at once; ``ef_search`` (per shard)
        overrides the default for this call only."""
        q = check_vectors(queries, self.dim)
        check_k(k)
        calls = [
            functools.partial(g.search, q, k, selector, ef_search=ef_search) for g in self._graphs
        ]
        if q.shape[0] > 1 and faiss.omp_get_max_threads() > 1:
            # a batch on several threads: OpenMP spreads its queries over the cores already
            results = [call() for call in calls]
        else:
            results = _runner.run(calls)
        return results[0] if len(results) == 1 else merge_topk(results, k)

    @property
    def count(self) -> int:
        return sum(g.count for g in self._graphs)

    def ids(self) -> Ids:
        return np.concatenate([g.ids() for g in self._graphs])

    def id_groups(self) -> tuple[Ids, Groups]:
        parts = [g.id_groups() for g in self._graphs]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    # ------------------------------------------------------------------ persistence
    def params(self) -> dict[str, Any]:
        return {
            "m": self.m,
            "ef_construction": self.ef_construction,
            "ef_search": self.ef_search,
            "compact_fraction": self.compact_fraction,
            "exact_below": self.exact_below,
            "shards": self.shards,
        }

    def save(self, path: Path) -> None:
        """Every shard's graph and labels (with tombstones) written atomically behind a
        manifest at ``path``; shard 0's parts keep the names of a one-graph index."""
        meta = {"kind": self.kind, "dim": self.dim, "params": self.params(), "count": self.count}
        indexes: dict[str, Any] = {}
        arrays: dict[str, Any] = {}
        for i, graph in enumerate(self._graphs):
            suffix = str(i) if i else ""
            indexes[f"graph{suffix}"] = graph.graph
            arrays[f"labels{suffix}"] = graph.labels
            arrays[f"groups{suffix}"] = graph.groups
        save_bundle(path, meta, indexes=indexes, arrays=arrays)

    @classmethod
    def load(cls, path: Path, dim: int) -> HnswIndex:
        """Read an index written by :meth:`save` (or by a one-graph version before shards)."""
        meta = read_manifest(path)
        if meta.get("kind") != cls.kind:
            raise IndexUnavailable(f"{path} holds a {meta.get('kind')!r} index, not {cls.kind!r}")
        params = dict(checked_params(meta, path))
        count = params.pop("shards", 1)
        if not isinstance(count, int) or not 1 <= count <= 1024:
            raise IndexUnavailable(f"{path}: bad shard count {count!r}")
        files = meta.get("files", {})
        graphs = []
        for i in range(count):
            suffix = str(i) if i else ""
            graph = load_part_index(path, meta, f"graph{suffix}")
            if not isinstance(graph, faiss.IndexHNSWFlat):
                raise IndexUnavailable(f"{path}: graph part is {type(graph).__name__}")
            labels = np.asarray(load_part_array(path, meta, f"labels{suffix}"), dtype=np.int64)
            groups = None  # absent from bundles saved before vectors carried groups
            if f"groups{suffix}" in files:
                groups = np.asarray(load_part_array(path, meta, f"groups{suffix}"), np.int64)
            graphs.append(HnswGraph(dim, **params, _graph=graph, _labels=labels, _groups=groups))
        return cls(dim, **params, _graphs=graphs)

    def settings(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "metric": "inner_product",
            "dim": self.dim,
            "count": self.count,
            "tombstones": sum(g.labels.size - g.count for g in self._graphs),
            **self.params(),
        }
