"""The vector index protocol every backend implements.

IDs are always ours (the SQL face id, int64). Scores are inner products of
L2-normalised vectors, i.e. cosine similarity in [-1, 1], higher is closer.
Missing results come back as id ``-1`` with score ``-inf``.

Every vector also carries a *group* (int64, >= 0): the gallery stores the SQL id of
the face's collection there, so that a search restricted to some collections is a
test on a small per-vector tag inside the backend, not an id set of millions of
faces rebuilt per query. Vectors added without groups are in group 0 (untagged).
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
Groups = npt.NDArray[np.int64]
Vectors = npt.NDArray[np.float32]
MISSING_ID = -1
#: The group of a vector loaded from an index saved before vectors carried groups.
#: A group filter refuses to run over such vectors (it could only misfilter); the
#: gallery retags them from SQL when it opens the index (:meth:`VectorIndex.set_groups`).
UNKNOWN_GROUP = -1


@dataclass(frozen=True, slots=True)
class Selector:
    """Restricts a search to some groups (``groups``) and ids (``allow``), minus ``deny``.

    The parts combine with "and": a vector is admitted when its group is in
    ``groups`` (if given), its id is in ``allow`` (if given) and not in ``deny``.
    Collection and department filters are group sets (the caller, which owns the
    SQL, maps names to collection ids); ``allow``/``deny`` stay for small id lists.
    Every backend applies the selector inside its search, never by over-fetching.
    """

    allow: frozenset[int] | None = None
    deny: frozenset[int] = field(default_factory=frozenset)
    groups: frozenset[int] | None = None

    @property
    def unrestricted(self) -> bool:
        """True when the selector admits everything (the same as no selector)."""
        return self.allow is None and not self.deny and self.groups is None

    def admits(self, face_id: int, group: int = 0) -> bool:
        """True if ``face_id``, a vector of group ``group``, may be returned.

        >>> Selector(allow=frozenset({1, 2}), deny=frozenset({2})).admits(2)
        False
        >>> Selector(groups=frozenset({7})).admits(1, group=7)
        True
        """
        if face_id in self.deny:
            return False
        if self.groups is not None and group not in self.groups:
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

    def add(self, ids: Ids, vectors: Vectors, groups: Groups | None = None) -> None:
        """Add ``vectors`` (float32, shape (n, dim), L2-normalised) under ``ids`` (int64, (n,)).

        ``groups`` (int64, (n,), >= 0) tags each vector for group filters; ``None``
        puts them all in group 0.
        """
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

    def id_groups(self) -> tuple[Ids, Groups]:
        """Every id in the index with its group, aligned (:data:`UNKNOWN_GROUP` if untold)."""
        ...

    def set_groups(self, ids: Ids, groups: Groups) -> int:
        """Retag ``ids`` (int64, (n,)) with ``groups`` (int64, (n,), >= 0); unknown ids are
        ignored. Returns how many were retagged."""
        ...

    def save(self, path: Path) -> None:
        """Persist atomically to ``path`` (temporary file, then rename)."""
        ...

    def settings(self) -> dict[str, Any]:
        """The backend's kind and parameters, for ``facetrace status``."""
        ...


@runtime_checkable
class RemoteIndex(Protocol):
    """An index served by another process (Milvus): it can be down while we are up, and
    reading all its ids is a scan of the server, so it answers narrower questions.

    Embedded indexes need none of this: the helpers below derive the same answers from
    their in-memory id and group arrays.
    """

    def health(self) -> dict[str, Any]:
        """``{"ok": bool, ...}`` with what the server says (version, load state, latency)
        or ``error``; never raises."""
        ...

    def present(self, ids: Ids) -> npt.NDArray[np.bool_]:
        """Which of ``ids`` (int64, (n,)) the index holds, aligned with ``ids``."""
        ...

    def group_counts(self, groups: Groups) -> Ids:
        """How many vectors each of ``groups`` (int64, (g,)) holds, aligned."""
        ...

    def id_groups_in(self, groups: Groups) -> tuple[Ids, Groups]:
        """:meth:`VectorIndex.id_groups` restricted to vectors of ``groups``."""
        ...


def index_health(index: VectorIndex) -> dict[str, Any]:
    """The health of any index: a remote one asks its server; an embedded one is up."""
    if isinstance(index, RemoteIndex):
        return index.health()
    return {"ok": True, "embedded": True}


def index_present(index: VectorIndex, ids: Ids) -> npt.NDArray[np.bool_]:
    """Which of ``ids`` the index holds (a server is asked about these ids only)."""
    wanted = np.asarray(ids, dtype=np.int64).reshape(-1)
    if wanted.size == 0:
        return np.zeros(0, dtype=bool)
    if isinstance(index, RemoteIndex):
        return index.present(wanted)
    return np.isin(wanted, index.ids())


def index_group_counts(index: VectorIndex, groups: Groups) -> Ids:
    """Vectors per group of ``groups`` (a server counts them; FAISS counts its tags)."""
    wanted = np.asarray(groups, dtype=np.int64).reshape(-1)
    if isinstance(index, RemoteIndex):
        return index.group_counts(wanted)
    _, tags = index.id_groups()
    values, counts = np.unique(tags, return_counts=True)
    at = np.searchsorted(values, wanted)
    hit = (at < values.size) & (values[np.clip(at, 0, max(values.size - 1, 0))] == wanted)
    out = np.zeros(wanted.size, dtype=np.int64)
    out[hit] = counts[at[hit]]
    return out


def index_id_groups_in(index: VectorIndex, groups: Groups) -> tuple[Ids, Groups]:
    """(ids, groups) of the vectors in ``groups`` only."""
    wanted = np.asarray(groups, dtype=np.int64).reshape(-1)
    if isinstance(index, RemoteIndex):
        return index.id_groups_in(wanted)
    ids, tags = index.id_groups()
    keep = np.isin(tags, wanted)
    return ids[keep], tags[keep]


def check_vectors(vectors: Vectors, dim: int) -> Vectors:
    """Validate shape and dtype with exceptions (asserts vanish under ``-O``)."""
    arr = np.asarray(vectors)
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise IndexUnavailable(f"expected vectors of shape (n, {dim}), got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise IndexUnavailable("vectors contain NaN or infinity")
    return np.ascontiguousarray(arr, dtype=np.float32)


def check_groups(groups: Groups | None, n: int) -> Groups:
    """One non-negative int64 group per vector; ``None`` means group 0 for all."""
    if groups is None:
        return np.zeros(n, dtype=np.int64)
    return _check_column(groups, n, "groups")


def group_array(groups: frozenset[int]) -> Groups:
    """The group set of a selector as a sorted int64 array."""
    return np.sort(np.fromiter(groups, dtype=np.int64, count=len(groups)))


def check_ids(ids: Ids, n: int) -> Ids:
    """Validate that there is one non-negative int64 id per vector."""
    return _check_column(ids, n, "ids")


def _check_column(values: npt.NDArray[np.int64], n: int, what: str) -> npt.NDArray[np.int64]:
    """One non-negative int64 per vector, as a contiguous array, or IndexUnavailable."""
    arr = np.asarray(values, dtype=np.int64).reshape(-1)
    if arr.shape[0] != n:
        raise IndexUnavailable(f"got {arr.shape[0]} {what} for {n} vectors")
    if arr.size and arr.min() < 0:
        raise IndexUnavailable(f"{what} must be non-negative")
    return np.ascontiguousarray(arr)
