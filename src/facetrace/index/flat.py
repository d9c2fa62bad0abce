"""Exact inner-product search with FAISS: the default for small galleries.

``IndexIDMap2`` over ``IndexFlatIP`` keeps our own int64 ids and supports
``remove_ids`` natively, so deletes need no rebuild.
"""

from __future__ import annotations

import logging
import os
import tempfile
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
    Ids,
    Selector,
    Vectors,
    check_ids,
    check_vectors,
)

log = logging.getLogger(__name__)


def faiss_selector(selector: Selector | None) -> faiss.IDSelector | None:
    """Translate our :class:`Selector` into a FAISS ID selector applied inside the scan."""
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


def write_atomically(index: faiss.Index, path: Path) -> None:
    """Serialise with FAISS's own writer to a temporary file, fsync, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        faiss.write_index(index, tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class FlatIndex:
    """Exact search; scans every vector, so its time grows linearly with the gallery."""

    capabilities = Capabilities(
        exact=True, native_remove=True, filtered_search=True, persistent=True
    )

    def __init__(self, dim: int, index: faiss.Index | None = None) -> None:
        self.dim = dim
        self._index = index if index is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        if self._index.d != dim:
            raise IndexUnavailable(f"index has dimension {self._index.d}, expected {dim}")

    @classmethod
    def load(cls, path: Path, dim: int) -> FlatIndex:
        """Read an index written by :meth:`save`."""
        try:
            index = faiss.read_index(str(path))
        except RuntimeError as exc:
            raise IndexUnavailable(f"cannot read index {path}: {exc}") from exc
        return cls(dim, index)

    def add(self, ids: Ids, vectors: Vectors) -> None:
        vecs = check_vectors(vectors, self.dim)
        self._index.add_with_ids(vecs, check_ids(ids, vecs.shape[0]))

    def remove(self, ids: Iterable[int]) -> int:
        arr = np.fromiter(ids, dtype=np.int64)
        if arr.size == 0:
            return 0
        return int(self._index.remove_ids(faiss.IDSelectorBatch(arr)))

    def search(
        self, queries: Vectors, k: int, selector: Selector | None = None
    ) -> tuple[npt.NDArray[np.float32], Ids]:
        q = check_vectors(queries, self.dim)
        if k < 1:
            raise IndexUnavailable(f"k must be at least 1, got {k}")
        sel = faiss_selector(selector)
        params = None
        if sel is not None:
            params = faiss.SearchParameters()
            params.sel = sel
        scores, ids = self._index.search(q, k, params=params)
        return pad_results(scores, ids)

    @property
    def count(self) -> int:
        return int(self._index.ntotal)

    def ids(self) -> Ids:
        id_map = self._index.id_map  # type: ignore[attr-defined]
        return faiss.vector_to_array(id_map).astype(np.int64)

    def save(self, path: Path) -> None:
        write_atomically(self._index, path)

    def settings(self) -> dict[str, Any]:
        return {"kind": "flat", "metric": "inner_product", "dim": self.dim, "count": self.count}
