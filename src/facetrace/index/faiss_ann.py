"""Approximate FAISS backends for large galleries: HNSW (fast) and IVF-SQ8 (small).

Both implement :class:`facetrace.index.base.VectorIndex` like ``FlatIndex``, keep our
own int64 ids, filter *inside* the search through FAISS ID selectors, and take
their search-time parameters (``efSearch``, ``nprobe``) per call through FAISS
``SearchParameters`` objects, so concurrent searches never change shared state.

Deletes:

* HNSW cannot remove vectors from its graph. :class:`HnswIndex` keeps a label array
  (internal position -> our id) and marks a removed face by overwriting its label
  with -1 (a tombstone). Every search passes a bitmap selector of live positions,
  so a removed face can never be returned, and removal is O(removed) instead of a
  rebuild. When tombstones exceed ``compact_fraction`` of the graph, the graph is
  rebuilt from the live vectors (:meth:`HnswIndex.compact`); the labels, with their
  tombstones, are saved beside the graph.
* IVF lists do support removal (:meth:`faiss.IndexIVF.remove_ids`), so
  :class:`IvfIndex` removes for real and needs neither tombstones nor compaction.

Groups (:mod:`facetrace.index.groups`): HNSW keeps a group array aligned with its
labels and filters with a bitmap over graph positions; IVF lists hold our ids, so
:class:`IvfIndex` keeps a :class:`~facetrace.index.groups.GroupTable` and filters with
a bitmap over ids. Either bitmap is cached per group set until the next write.

Restrictive filters: a graph or list search that may only return a few allowed
ids finds too few of them. When the allowed set is small, both backends score the
allowed vectors exactly instead; for larger ones they widen ``efSearch`` /
``nprobe`` in proportion to how selective the filter is.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import numpy.typing as npt

from facetrace.errors import IndexUnavailable
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
    group_array,
)
from facetrace.index.flat import faiss_selector, pad_results
from facetrace.index.groups import (
    FilterCache,
    GroupFilter,
    GroupTable,
    LabelLookup,
    all_of,
    checked_table,
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

# faiss's bundled stubs are partial (no SearchParametersHNSW, no nprobe/sel keywords,
# no SWIG ownership attributes): reach those parts of its API through an untyped alias
_faiss: Any = faiss

Scores = npt.NDArray[np.float32]


def _check_k(k: int) -> None:
    if k < 1:
        raise IndexUnavailable(f"k must be at least 1, got {k}")


def _as_id_array(ids: Iterable[int]) -> Ids:
    if isinstance(ids, np.ndarray):
        return np.asarray(ids, dtype=np.int64).reshape(-1)
    return np.fromiter(ids, dtype=np.int64)


def _set_array(ids: frozenset[int]) -> Ids:
    return np.fromiter(ids, dtype=np.int64, count=len(ids))


def exact_topk(queries: Vectors, vectors: Vectors, labels: Ids, k: int) -> tuple[Scores, Ids]:
    """Exact top-``k`` of ``queries`` (nq, d) over ``vectors`` (n, d) labelled ``labels`` (n,).

    Returns (scores (nq, k) float32 descending, ids (nq, k) int64), padded with -inf / -1.
    Uses FAISS's brute-force kNN, so it follows the process's FAISS thread setting
    (numpy's BLAS threads oversubscribe a busy machine: 10x slower measured here).
    """
    nq = queries.shape[0]
    scores = np.full((nq, k), -np.inf, dtype=np.float32)
    ids = np.full((nq, k), MISSING_ID, dtype=np.int64)
    n = vectors.shape[0]
    if n == 0 or nq == 0:
        return scores, ids
    take = min(k, n)
    found_scores, pos = faiss.knn(
        queries, np.ascontiguousarray(vectors), take, metric=faiss.METRIC_INNER_PRODUCT
    )
    ok = pos >= 0
    scores[:, :take] = np.where(ok, found_scores, -np.inf)
    ids[:, :take] = np.where(ok, labels[np.where(ok, pos, 0)], MISSING_ID)
    return scores, ids


class _Fp16Store:
    """Our ids -> float16 copies of the vectors, for re-ranking IVF candidates exactly.

    256 bytes per 128-d face (half of float32) keep cosine scores to ~1e-3, far finer
    than the 8-bit codes the lists scan. Removal tombstones the label (-1); the codes
    are compacted when tombstones pass a quarter of the store.
    """

    def __init__(
        self, dim: int, codes: faiss.IndexScalarQuantizer | None = None, labels: Ids | None = None
    ) -> None:
        self.codes = (
            codes
            if codes is not None
            else faiss.IndexScalarQuantizer(
                dim, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT
            )
        )
        self.labels: Ids = labels if labels is not None else np.empty(0, dtype=np.int64)
        if self.labels.shape != (int(self.codes.ntotal),):
            raise IndexUnavailable("refine store labels do not match its vectors")
        self._lookup = LabelLookup()

    def add(self, ids: Ids, vectors: Vectors) -> None:
        self.codes.add(vectors)
        self.labels = np.concatenate([self.labels, ids])
        self._lookup.invalidate()

    def remove(self, ids: Ids) -> None:
        pos = self._lookup.positions(self.labels, ids)
        if pos.size == 0:
            return
        labels = self.labels.copy()
        labels[pos] = MISSING_ID
        self.labels = labels
        dead = int(np.count_nonzero(labels < 0))
        if dead * 4 > labels.size:
            self.codes.remove_ids(faiss.IDSelectorBatch(np.flatnonzero(labels < 0)))
            self.labels = labels[labels >= 0].copy()
            self._lookup.invalidate()

    def rerank(self, q: Vectors, cand: Ids, k: int) -> tuple[Scores, Ids]:
        """Exact (fp16) scores of candidate ids (nq, k') -> the best ``k`` per query."""
        flat = cand.reshape(-1)
        pos = self._lookup.aligned(self.labels, flat)
        ok = pos >= 0
        vecs = np.zeros((flat.size, q.shape[1]), dtype=np.float32)
        if ok.any():
            vecs[ok] = self.codes.reconstruct_batch(pos[ok])
        sims = np.einsum("qkd,qd->qk", vecs.reshape(*cand.shape, -1), q)
        sims[~ok.reshape(cand.shape)] = -np.inf
        order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
        scores = np.take_along_axis(sims, order, axis=1).astype(np.float32)
        ids = np.take_along_axis(cand, order, axis=1)
        ids[np.isneginf(scores)] = MISSING_ID
        return scores, ids


class HnswIndex:
    """HNSW graph over full float32 vectors (``IndexHNSWFlat``), tombstones for deletes.

    Parameters: ``m`` neighbours per node (memory ~ 4*2*m bytes per face on top of the
    4*dim bytes vector), ``ef_construction`` (build effort), ``ef_search`` (query effort,
    overridable per call), ``compact_fraction`` (rebuild when this share of the graph is
    tombstones; 0 disables), ``exact_below`` (filters allowing at most this many faces
    are answered by exact scoring of those faces).

    ``ef_construction`` 256: on 200k face-like vectors it lifted recall@10 at efSearch
    128 from 0.988/0.984 (enrolled/strangers) to 0.993/0.991 over 128, for twice the
    build time; 512 added almost nothing (0.994/0.991).
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
        ef_search: int = 256,
        compact_fraction: float = 0.25,
        exact_below: int = 20_000,
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
    def add(self, ids: Ids, vectors: Vectors, groups: Groups | None = None) -> None:
        vecs = check_vectors(vectors, self.dim)
        labels = check_ids(ids, vecs.shape[0])
        tags = check_groups(groups, vecs.shape[0])
        if labels.size == 0:
            return
        self._graph.add(vecs)
        self._labels = np.concatenate([self._labels, labels])
        self._groups = np.concatenate([self._groups, tags])
        self._live_count += labels.size
        self._lookup.invalidate()
        self._tomb_sel = None
        self._filters.clear()

    def remove(self, ids: Iterable[int]) -> int:
        """Tombstone ``ids``; compacts the graph when tombstones pass ``compact_fraction``."""
        pos = self._lookup.positions(self._labels, _as_id_array(ids))
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

    def set_groups(self, ids: Ids, groups: Groups) -> int:
        wanted = np.asarray(ids, dtype=np.int64).reshape(-1)
        tags = check_groups(groups, wanted.size)
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

    def _tombstone_selector(self) -> faiss.IDSelector | None:
        if self._live_count == self._labels.size:
            return None
        if self._tomb_sel is None:
            bits = np.packbits(self._labels >= 0, bitorder="little")
            self._tomb_sel = (faiss.IDSelectorBitmap(self._labels.size, faiss.swig_ptr(bits)), bits)
        return self._tomb_sel[0]

    def search(
        self,
        queries: Vectors,
        k: int,
        selector: Selector | None = None,
        *,
        ef_search: int | None = None,
    ) -> tuple[Scores, Ids]:
        """Top-``k`` by inner product; ``ef_search`` overrides the default for this call only."""
        q = check_vectors(queries, self.dim)
        _check_k(k)
        ef = max(ef_search or self.ef_search, k)
        labels = self._labels
        if self._live_count == 0:
            return exact_topk(q, self._vectors()[:0], labels[:0], k)
        keep: list[Any] = []  # FAISS holds raw pointers: keep bitmaps alive for the call
        if selector is None or selector.unrestricted:
            sel = self._tombstone_selector()
            keep.append(self._tomb_sel)
        else:
            by_group = None if selector.groups is None else self._group_filter(selector.groups)
            if by_group is not None and selector.allow is None and not selector.deny:
                chosen = by_group  # a collection or department filter: cached, no work per search
            else:
                mask = self._filter_mask(by_group)
                if selector.allow is not None:
                    admitted = np.zeros(labels.size, dtype=bool)
                    admitted[self._lookup.positions(labels, _set_array(selector.allow))] = True
                    mask &= admitted
                if selector.deny:
                    mask[self._lookup.positions(labels, _set_array(selector.deny))] = False
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

    # ------------------------------------------------------------------ persistence
    def params(self) -> dict[str, Any]:
        return {
            "m": self.m,
            "ef_construction": self.ef_construction,
            "ef_search": self.ef_search,
            "compact_fraction": self.compact_fraction,
            "exact_below": self.exact_below,
        }

    def save(self, path: Path) -> None:
        """Graph and labels (with tombstones) written atomically behind a manifest at ``path``."""
        meta = {"kind": self.kind, "dim": self.dim, "params": self.params(), "count": self.count}
        save_bundle(
            path,
            meta,
            indexes={"graph": self._graph},
            arrays={"labels": self._labels, "groups": self._groups},
        )

    @classmethod
    def load(cls, path: Path, dim: int) -> HnswIndex:
        """Read an index written by :meth:`save`."""
        meta = read_manifest(path)
        if meta.get("kind") != cls.kind:
            raise IndexUnavailable(f"{path} holds a {meta.get('kind')!r} index, not {cls.kind!r}")
        graph = load_part_index(path, meta, "graph")
        if not isinstance(graph, faiss.IndexHNSWFlat):
            raise IndexUnavailable(f"{path}: graph part is {type(graph).__name__}")
        labels = np.asarray(load_part_array(path, meta, "labels"), dtype=np.int64)
        groups = None  # absent from bundles saved before vectors carried groups
        if "groups" in meta.get("files", {}):
            groups = np.asarray(load_part_array(path, meta, "groups"), dtype=np.int64)
        return cls(dim, **_checked_params(meta, path), _graph=graph, _labels=labels, _groups=groups)

    def settings(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "metric": "inner_product",
            "dim": self.dim,
            "count": self.count,
            "tombstones": int(self._labels.size - self._live_count),
            **self.params(),
        }


def _checked_params(meta: dict[str, Any], path: Path) -> dict[str, Any]:
    params = meta.get("params")
    if not isinstance(params, dict):
        raise IndexUnavailable(f"{path}: manifest has no parameters")
    return params


#: Share of the IVF lists a search scans by default (see :class:`IvfIndex`).
PROBE_SHARE = 1 / 8


def auto_nlist(n: int) -> int:
    """Number of IVF lists for ``n`` training vectors: ~4*sqrt(n), >= 39 points per list.

    FAISS's k-means wants at least 39 points per centroid; 4*sqrt(n) is the usual
    balance between coarse-quantiser cost and list length (1M -> 4000, 10M -> 12649).
    """
    return max(1, min(int(4 * math.sqrt(n)), n // 39))


class IvfIndex:
    """Inverted lists of 8-bit scalar-quantised residuals (``IVF{nlist},SQ8``): 1 byte/dim.

    The memory-bounded backend: 128 + 8 bytes per 128-d face instead of 512 + 256 for
    HNSW. Our ids are stored in the lists, so removal is native. The coarse quantiser is
    trained on the first batch added (``nlist`` chosen from its size unless given), so
    build it from the whole gallery (``facetrace index rebuild``), and rebuild after the
    gallery grows tenfold. ``nprobe`` (lists scanned per query) is overridable per call;
    by default it is an eighth of the lists (:data:`PROBE_SHARE`), not a fixed count:
    on face vectors recall follows the share of lists scanned (1M faces in 4,000 lists
    and 10M in 2,048 both gave recall@10 ~0.98 at 1/8), and a fixed 64 gave 0.76 at 1M.

    ``refine="fp16"`` (the default) keeps a float16 copy of every vector (+256 bytes per
    128-d face) and re-scores the best ``refine_factor * k`` candidates of the 8-bit
    scan with it: on face embeddings, whose impostor scores crowd together, the 8-bit
    scores alone cost several points of recall (BENCHMARKS.md). ``refine="none"``
    is the smallest index.
    """

    kind = "ivf-sq8"
    capabilities = Capabilities(
        exact=False, native_remove=True, filtered_search=True, persistent=True
    )

    def __init__(
        self,
        dim: int,
        *,
        nlist: int | None = None,
        nprobe: int | None = None,
        exact_below: int = 20_000,
        train_per_list: int = 64,
        refine: str = "fp16",
        refine_factor: int = 4,
        _ivf: faiss.IndexIVFScalarQuantizer | None = None,
        _store: _Fp16Store | None = None,
        _table: GroupTable | None = None,
    ) -> None:
        bad_probe = nprobe is not None and nprobe < 1
        if dim < 1 or bad_probe or (nlist is not None and nlist < 1) or exact_below < 0:
            raise IndexUnavailable("invalid IVF parameters")
        if refine not in ("fp16", "none") or refine_factor < 1:
            raise IndexUnavailable(f"invalid IVF refinement {refine!r} x{refine_factor}")
        self.refine = refine
        self.refine_factor = refine_factor
        self._store = _store
        if refine == "fp16" and _store is None:
            self._store = _Fp16Store(dim)
        self.dim = dim
        self.nlist = nlist
        self.nprobe = nprobe
        self.exact_below = exact_below
        self.train_per_list = max(39, train_per_list)
        self._ivf = _ivf
        if _ivf is not None and _ivf.d != dim:
            raise IndexUnavailable(f"index has dimension {_ivf.d}, expected {dim}")
        # no table: saved before vectors carried groups, so every group is unknown
        self._table = checked_table(_table, self.ids, self.count)

    @property
    def default_nprobe(self) -> int:
        """Lists scanned when a search does not say: ``nprobe`` if set, else 1/8 of them."""
        if self.nprobe is not None:
            return self.nprobe
        nlist = self._ivf.nlist if self._ivf is not None else (self.nlist or 1)
        return max(1, math.ceil(nlist * PROBE_SHARE))

    @property
    def trained(self) -> bool:
        return self._ivf is not None

    def train(self, vectors: Vectors, *, n_total: int | None = None) -> None:
        """Learn the lists from a random sample of the gallery before adding to it.

        ``n_total`` is the gallery size the lists are for (``nlist`` ~ 4*sqrt of it);
        without ``train`` the first batch added is the sample.
        """
        if self._ivf is not None:
            raise IndexUnavailable("the IVF index is already trained; rebuild it to retrain")
        self._ivf = self._train(check_vectors(vectors, self.dim), n_total=n_total)

    def _train(
        self, vectors: Vectors, *, n_total: int | None = None
    ) -> faiss.IndexIVFScalarQuantizer:
        if vectors.shape[0] == 0:
            raise IndexUnavailable("cannot train an IVF index on no vectors")
        nlist = self.nlist or auto_nlist(max(n_total or 0, vectors.shape[0]))
        nlist = max(1, min(nlist, vectors.shape[0] // 39 or 1))
        quantizer: Any = faiss.IndexFlatIP(self.dim)
        ivf = faiss.IndexIVFScalarQuantizer(
            quantizer, self.dim, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
        )
        ivf.own_fields = True
        quantizer.this.disown()  # owned by the IVF index from now on
        sample = vectors
        if vectors.shape[0] > self.train_per_list * nlist:
            # k-means cost grows with points x lists; 64 points per list place centroids
            # as well as all of them (FAISS itself caps at 256 per list)
            rng = np.random.default_rng(0)
            pick = rng.choice(vectors.shape[0], self.train_per_list * nlist, replace=False)
            sample = vectors[np.sort(pick)]
        ivf.train(sample)
        log.info("trained IVF-SQ8 with %d lists on %d vectors", nlist, sample.shape[0])
        return ivf

    def add(self, ids: Ids, vectors: Vectors, groups: Groups | None = None) -> None:
        vecs = check_vectors(vectors, self.dim)
        labels = check_ids(ids, vecs.shape[0])
        tags = check_groups(groups, vecs.shape[0])
        if labels.size == 0:
            return
        if self._ivf is None:
            self._ivf = self._train(vecs)
        self._ivf.add_with_ids(vecs, labels)
        self._table.add(labels, tags)
        if self._store is not None:
            self._store.add(labels, vecs)

    def remove(self, ids: Iterable[int]) -> int:
        arr = _as_id_array(ids)
        if arr.size == 0 or self._ivf is None:
            return 0
        removed = int(self._ivf.remove_ids(faiss.IDSelectorBatch(arr)))
        self._table.remove(arr)
        if self._store is not None:
            self._store.remove(arr)
        return removed

    def set_groups(self, ids: Ids, groups: Groups) -> int:
        wanted = np.asarray(ids, dtype=np.int64).reshape(-1)
        return self._table.set_groups(wanted, check_groups(groups, wanted.size))

    def id_groups(self) -> tuple[Ids, Groups]:
        return self._table.entries()

    def search(
        self,
        queries: Vectors,
        k: int,
        selector: Selector | None = None,
        *,
        nprobe: int | None = None,
    ) -> tuple[Scores, Ids]:
        """Top-``k`` by (quantised) inner product; ``nprobe`` overrides the default per call."""
        q = check_vectors(queries, self.dim)
        _check_k(k)
        if self._ivf is None or self._ivf.ntotal == 0:
            return exact_topk(q, np.empty((0, self.dim), np.float32), np.empty(0, np.int64), k)
        probe = min(nprobe or self.default_nprobe, self._ivf.nlist)
        if selector is None or selector.unrestricted:
            return self._scan(q, k, _faiss.SearchParametersIVF(nprobe=probe))
        keep: list[Any] = []  # FAISS holds raw pointers: keep every part alive for the call
        parts: list[faiss.IDSelector] = []
        allowed: int | None = None  # how many the filter admits, where cheaply known
        if selector.groups is not None:
            found = self._table.filter(selector.groups)
            keep.append(found)
            parts.append(found.selector)
            allowed = found.count
        if selector.allow is not None:
            wanted = _set_array(selector.allow - selector.deny)
            if selector.groups is not None:
                in_groups = np.isin(self._table.groups_of(wanted), group_array(selector.groups))
                wanted = wanted[in_groups]
            allowed = wanted.size
        by_id = faiss_selector(selector)
        if by_id is not None:
            keep.append(by_id)
            parts.append(by_id)
        if allowed is not None:
            if allowed <= self.exact_below:
                # a small allowed set: score it in every list; the selector rejects the rest
                probe = self._ivf.nlist
            else:
                share = min(1.0, allowed / max(self.count, 1))
                probe = min(self._ivf.nlist, math.ceil(probe / share))
        params = _faiss.SearchParametersIVF(nprobe=probe)
        params.sel = all_of(parts, keep)
        found_scores, found_ids = self._scan(q, k, params)
        del keep
        return found_scores, found_ids

    def _scan(self, q: Vectors, k: int, params: Any) -> tuple[Scores, Ids]:
        """Search the lists for ``k`` (or ``refine_factor * k`` candidates to re-rank)."""
        if self._ivf is None:
            raise IndexUnavailable("IVF index is not trained")
        if self._store is None:
            scores, ids = self._ivf.search(q, k, params=params)
            return pad_results(scores, ids)
        _, cand = self._ivf.search(q, k * self.refine_factor, params=params)
        scores, ids = self._store.rerank(q, cand, k)
        return pad_results(scores, ids)

    @property
    def count(self) -> int:
        return 0 if self._ivf is None else int(self._ivf.ntotal)

    def ids(self) -> Ids:
        if self._ivf is None:
            return np.empty(0, dtype=np.int64)
        invlists: Any = self._ivf.invlists
        parts = []
        for list_no in range(self._ivf.nlist):
            size = invlists.list_size(list_no)
            if size:
                ptr = invlists.get_ids(list_no)
                parts.append(faiss.rev_swig_ptr(ptr, size).astype(np.int64).copy())
                invlists.release_ids(list_no, ptr)
        return np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)

    def params(self) -> dict[str, Any]:
        return {
            "nlist": self._ivf.nlist if self._ivf is not None else self.nlist,
            "nprobe": self.nprobe,
            "exact_below": self.exact_below,
            "train_per_list": self.train_per_list,
            "refine": self.refine,
            "refine_factor": self.refine_factor,
        }

    def save(self, path: Path) -> None:
        """The trained IVF index written atomically behind a manifest at ``path``."""
        meta = {"kind": self.kind, "dim": self.dim, "params": self.params(), "count": self.count}
        indexes: dict[str, Any] = {"ivf": self._ivf} if self._ivf is not None else {}
        group_ids, groups = self._table.entries()
        arrays: dict[str, Any] = {"group_ids": group_ids, "groups": groups}
        if self._store is not None:
            indexes["refine"] = self._store.codes
            arrays["refine_labels"] = self._store.labels
        save_bundle(path, meta, indexes=indexes, arrays=arrays)

    @classmethod
    def load(cls, path: Path, dim: int) -> IvfIndex:
        """Read an index written by :meth:`save`."""
        meta = read_manifest(path)
        if meta.get("kind") != cls.kind:
            raise IndexUnavailable(f"{path} holds a {meta.get('kind')!r} index, not {cls.kind!r}")
        params = _checked_params(meta, path)
        ivf: Any = None
        if "ivf" in meta.get("files", {}):
            ivf = load_part_index(path, meta, "ivf")
            if not isinstance(ivf, faiss.IndexIVFScalarQuantizer):
                raise IndexUnavailable(f"{path}: ivf part is {type(ivf).__name__}")
        store = None
        if params.get("refine", "fp16") == "fp16":
            codes: Any = load_part_index(path, meta, "refine")
            labels = np.asarray(load_part_array(path, meta, "refine_labels"), dtype=np.int64)
            store = _Fp16Store(dim, codes, labels)
        table = None  # absent from bundles saved before vectors carried groups
        if "groups" in meta.get("files", {}):
            table = GroupTable(
                np.asarray(load_part_array(path, meta, "group_ids"), dtype=np.int64),
                np.asarray(load_part_array(path, meta, "groups"), dtype=np.int64),
            )
        return cls(dim, **params, _ivf=ivf, _store=store, _table=table)

    def settings(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "metric": "inner_product",
            "dim": self.dim,
            "count": self.count,
            "trained": self._ivf is not None,
            **self.params(),
            "nprobe_default": self.default_nprobe,
        }
