"""The vector index protocol every backend implements.

IDs are always ours (the SQL face id, int64). Scores are inner products of
L2-normalised vectors, i.e. cosine similarity in [-1, 1], higher is closer.
Missing results come back as id ``-1`` with score ``-inf``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from facetrace.errors import IndexUnavailable

Ids = npt.NDArray[np.int64]
Vectors = npt.NDArray[np.float32]
MISSING_ID = -1


@dataclass(frozen=True, slots=True)
class Selector:
    """Restricts a search to a set of ids (``allow``) or away from one (``deny``).

    Filters on collection or department are turned into id sets by the caller
    (which owns the SQL), so every backend filters the same way inside its search.
    ``None`` for both means no filter.
    """

    allow: frozenset[int] | None = None
    deny: frozenset[int] = field(default_factory=frozenset)

    def admits(self, face_id: int) -> bool:
        """True if ``face_id`` may be returned.

        >>> Selector(allow=frozenset({1, 2}), deny=frozenset({2})).admits(2)
        False
        """
        if face_id in self.deny:
            return False
        return self.allow is None or face_id in self.allow


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a backend can do natively, declared up front instead of failing at run time."""

    exact: bool
    native_remove: bool
    filtered_search: bool
    persistent: bool


@runtime_checkable
class VectorIndex(Protocol):
    """A store of (id, vector) pairs answering top-k inner-product queries."""

    dim: int
    capabilities: Capabilities

    def add(self, ids: Ids, vectors: Vectors) -> None:
        """Add ``vectors`` (float32, shape (n, dim), L2-normalised) under ``ids`` (int64, (n,))."""
        ...

    def remove(self, ids: Iterable[int]) -> int:
        """Remove ids; unknown ids are ignored. Returns how many were removed."""
        ...

    def search(
        self, queries: Vectors, k: int, selector: Selector | None = None
    ) -> tuple[npt.NDArray[np.float32], Ids]:
        """Top-``k`` per query: (scores (nq, k) float32 descending, ids (nq, k) int64).

        Short rows are padded with id -1 and score -inf.
        """
        ...

    @property
    def count(self) -> int:
        """Number of vectors currently searchable."""
        ...

    def ids(self) -> Ids:
        """All ids currently in the index (for reconciliation against SQL)."""
        ...

    def save(self, path: Path) -> None:
        """Persist atomically to ``path`` (temporary file, then rename)."""
        ...

    def settings(self) -> dict[str, Any]:
        """The backend's kind and parameters, for ``facetrace status``."""
        ...


def check_vectors(vectors: Vectors, dim: int) -> Vectors:
    """Validate shape and dtype with exceptions (asserts vanish under ``-O``)."""
    arr = np.asarray(vectors)
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise IndexUnavailable(f"expected vectors of shape (n, {dim}), got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise IndexUnavailable("vectors contain NaN or infinity")
    return np.ascontiguousarray(arr, dtype=np.float32)


def check_ids(ids: Ids, n: int) -> Ids:
    """Validate that there is one non-negative int64 id per vector."""
    arr = np.asarray(ids, dtype=np.int64).reshape(-1)
    if arr.shape[0] != n:
        raise IndexUnavailable(f"got {arr.shape[0]} ids for {n} vectors")
    if arr.size and arr.min() < 0:
        raise IndexUnavailable("ids must be non-negative")
    return np.ascontiguousarray(arr)
