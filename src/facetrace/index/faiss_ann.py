"""Approximate FAISS backend for very large galleries: IVF-SQ8 (small), and the
helpers it shares with the HNSW backend (:mod:`facetrace.index.hnsw`).

:class:`IvfIndex` implements :class:`facetrace.index.base.VectorIndex` like
``FlatIndex``, keeps our own int64 ids, filters *inside* the search through FAISS ID
selectors, and takes its search-time parameter (``nprobe``) per call through FAISS
``SearchParameters`` objects, so concurrent searches never change shared state.

Deletes: IVF lists support removal (:meth:`faiss.IndexIVF.remove_ids`), so
:class:`IvfIndex` removes for real and needs neither tombstones nor compaction.

Groups (:mod:`facetrace.index.groups`): IVF lists hold our ids, so :class:`IvfIndex`
keeps a :class:`~facetrace.index.groups.GroupTable` and filters with a bitmap over
ids, cached per group set until the next write.

Restrictive filters: a list search that may only return a few allowed ids finds too
few of them. When the allowed set is small, every list is scanned; for larger ones
``nprobe`` widens in proportion to how selective the filter is.
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
    GroupTable,
    LabelLookup,
    all_of,
    checked_table,
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


def check_k(k: int) -> None:
    if k < 1:
        raise IndexUnavailable(f"k must be at least 1, got {k}")


def as_id_array(ids: Iterable[int]) -> Ids:
    if isinstance(ids, np.ndarray):
        return np.asarray(ids, dtype=np.int64).reshape(-1)
    return np.fromiter(ids, dtype=np.int64)


def set_array(ids: frozenset[int]) -> Ids:
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


def checked_params(meta: dict[str, Any], path: Path) -> dict[str, Any]:
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
        arr = as_id_array(ids)
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
        check_k(k)
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
            wanted = set_array(selector.allow - selector.deny)
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
        params = checked_params(meta, path)
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
