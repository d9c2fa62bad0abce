"""Exact inner-product search with FAISS: the default for small galleries.

``IndexIDMap2`` over ``IndexFlatIP`` keeps our own int64 ids and supports
``remove_ids`` natively, so deletes need no rebuild. Groups live in a
:class:`~facetrace.index.groups.GroupTable` beside it; the index and the table are
saved together as one bundle (:mod:`facetrace.index.persist`). A bare FAISS file
(what this backend wrote before vectors carried groups) still loads, with every
group unknown until the gallery retags them from SQL.
"""

from __future__ import annotations

import logging
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
)
from facetrace.index.groups import GroupTable, all_of, checked_table
from facetrace.index.persist import (
    is_manifest,
    load_part_array,
    load_part_index,
    read_manifest,
    save_bundle,
)

log = logging.getLogger(__name__)


def faiss_selector(selector: Selector | None) -> faiss.IDSelector | None:
    """The id parts of our :class:`Selector` (``allow``, ``deny``) as a FAISS ID selector.

    ``None`` when it has neither; its ``groups`` part is the backend's own business.
    """
    if selector is None or (selector.allow is None and not selector.deny):
        return None
    keep: list[faiss.IDSelector] = []  # FAISS holds raw pointers: keep every part alive
    parts: list[faiss.IDSelector] = []
    if selector.allow is not None:
        allow = np.fromiter(selector.allow, dtype=np.int64, count=len(selector.allow))
        parts.append(faiss.IDSelectorBatch(allow))
    if selector.deny:
        deny = np.fromiter(selector.deny, dtype=np.int64, count=len(selector.deny))
        inner = faiss.IDSelectorBatch(deny)
        keep.append(inner)
        parts.append(faiss.IDSelectorNot(inner))
    sel = parts[0] if len(parts) == 1 else faiss.IDSelectorAnd(parts[0], parts[1])
    sel.referenced_objects = keep + parts  # type: ignore[attr-defined]
    return sel


def pad_results(scores: npt.NDArray[np.float32], ids: Ids) -> tuple[npt.NDArray[np.float32], Ids]:
    """Replace FAISS's missing-result markers with our sentinel (id -1, score -inf)."""
    missing = ids < 0
    if missing.any():
        scores = scores.copy()
        scores[missing] = -np.inf
        ids = ids.copy()
        ids[missing] = MISSING_ID
    return scores, ids


class FlatIndex:
    """Exact search; scans every vector, so its time grows linearly with the gallery."""

    kind = "flat"
    capabilities = Capabilities(
        exact=True, native_remove=True, filtered_search=True, persistent=True
    )

    def __init__(
        self, dim: int, index: faiss.Index | None = None, *, _table: GroupTable | None = None
    ) -> None:
        self.dim = dim
        self._index = index if index is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        if self._index.d != dim:
            raise IndexUnavailable(f"index has dimension {self._index.d}, expected {dim}")
        # an index without a table comes from a bare FAISS file: its groups are unknown
        self._table = checked_table(_table, self.ids, self.count)

    @classmethod
    def load(cls, path: Path, dim: int) -> FlatIndex:
        """Read an index written by :meth:`save`, or a bare FAISS file of an older version."""
        if not is_manifest(path):
            try:
                index = faiss.read_index(str(path))
            except RuntimeError as exc:
                raise IndexUnavailable(f"cannot read index {path}: {exc}") from exc
            log.info("%s predates group tags: its groups are unknown until retagged", path)
            return cls(dim, index)
        meta = read_manifest(path)
        if meta.get("kind") != cls.kind:
            raise IndexUnavailable(f"{path} holds a {meta.get('kind')!r} index, not {cls.kind!r}")
        index = load_part_index(path, meta, "index")
        ids = np.asarray(load_part_array(path, meta, "group_ids"), dtype=np.int64)
        groups = np.asarray(load_part_array(path, meta, "groups"), dtype=np.int64)
        return cls(dim, index, _table=GroupTable(ids, groups))

    def add(self, ids: Ids, vectors: Vectors, groups: Groups | None = None) -> None:
        vecs = check_vectors(vectors, self.dim)
        labels = check_ids(ids, vecs.shape[0])
        tags = check_groups(groups, vecs.shape[0])
        self._index.add_with_ids(vecs, labels)
        self._table.add(labels, tags)

    def remove(self, ids: Iterable[int]) -> int:
        arr = np.fromiter(ids, dtype=np.int64)
        if arr.size == 0:
            return 0
        removed = int(self._index.remove_ids(faiss.IDSelectorBatch(arr)))
        self._table.remove(arr)
        return removed

    def search(
        self, queries: Vectors, k: int, selector: Selector | None = None
    ) -> tuple[npt.NDArray[np.float32], Ids]:
        q = check_vectors(queries, self.dim)
        if k < 1:
            raise IndexUnavailable(f"k must be at least 1, got {k}")
        params = None
        keep: list[Any] = []  # FAISS holds raw pointers: keep every part alive for the call
        if selector is not None and not selector.unrestricted:
            parts = []
            if selector.groups is not None:
                found = self._table.filter(selector.groups)
                keep.append(found)
                parts.append(found.selector)
            by_id = faiss_selector(selector)
            if by_id is not None:
                keep.append(by_id)
                parts.append(by_id)
            params = faiss.SearchParameters()
            params.sel = all_of(parts, keep)
        scores, ids = self._index.search(q, k, params=params)
        del keep
        return pad_results(scores, ids)

    @property
    def count(self) -> int:
        return int(self._index.ntotal)

    def ids(self) -> Ids:
        id_map = self._index.id_map  # type: ignore[attr-defined]
        return faiss.vector_to_array(id_map).astype(np.int64)

    def id_groups(self) -> tuple[Ids, Groups]:
        return self._table.entries()

    def set_groups(self, ids: Ids, groups: Groups) -> int:
        wanted = np.asarray(ids, dtype=np.int64).reshape(-1)
        return self._table.set_groups(wanted, check_groups(groups, wanted.size))

    def save(self, path: Path) -> None:
        """The FAISS index and its group table written atomically behind a manifest."""
        ids, groups = self._table.entries()
        meta = {"kind": self.kind, "dim": self.dim, "params": {}, "count": self.count}
        save_bundle(
            path, meta, indexes={"index": self._index}, arrays={"group_ids": ids, "groups": groups}
        )

    def settings(self) -> dict[str, Any]:
        return {"kind": "flat", "metric": "inner_product", "dim": self.dim, "count": self.count}
