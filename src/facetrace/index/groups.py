"""Group tags for the FAISS backends, and the FAISS selectors that filter on them.

A group filter (``Selector.groups``) must cost milliseconds on a million faces, so it
is never turned into a Python set of ids. Each backend keeps one int64 group per
vector in a numpy array; a group set is resolved with one vectorised ``np.isin`` into
a bitmap that FAISS tests inside its scan (``IDSelectorBitmap``), and the result is
cached per group set until the next add or remove.

* :class:`HnswIndex <facetrace.index.hnsw.HnswIndex>` searches graph *positions*,
  so its groups sit beside its position -> id labels and its bitmaps are over positions.
* :class:`FlatIndex <facetrace.index.flat.FlatIndex>` and
  :class:`IvfIndex <facetrace.index.faiss_ann.IvfIndex>` hand their selectors *our ids*
  (``IndexIDMap2`` translates, IVF lists store them), so they keep a
  :class:`GroupTable` and their bitmaps are over ids. SQL face ids are dense
  (autoincrement), so an id bitmap costs about one bit per face ever stored; ids too
  sparse for that fall back to FAISS's hashed ``IDSelectorBatch``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import faiss
import numpy as np
import numpy.typing as npt

from facetrace.errors import IndexUnavailable
from facetrace.index.base import MISSING_ID, UNKNOWN_GROUP, Groups, Ids, group_array

#: Group sets whose bitmaps are kept per index (a service searches with one set per
#: department, so a handful are hot; each costs n/8 bytes).
CACHED_FILTERS = 8

Bits = npt.NDArray[np.uint8]


def unknown_groups_error(count: int) -> IndexUnavailable:
    """The error for a group filter over vectors whose groups were never recorded."""
    return IndexUnavailable(
        f"{count} vectors of this index have no group (it was saved before facetrace "
        "tagged faces with their collection): open it through the gallery, which "
        "retags them from SQL, or rebuild it (facetrace index rebuild)"
    )


def group_mask(
    live: npt.NDArray[np.bool_], tags: Groups, groups: frozenset[int]
) -> npt.NDArray[np.bool_]:
    """Which of the ``live`` entries are tagged with one of ``groups``.

    Raises over live entries whose group was never recorded: filtering them could
    only guess.
    """
    unknown = int(np.count_nonzero(live & (tags == UNKNOWN_GROUP)))
    if unknown:
        raise unknown_groups_error(unknown)
    return live & np.isin(tags, group_array(groups))


def checked_table(table: GroupTable | None, ids: Callable[[], Ids], count: int) -> GroupTable:
    """``table``, or one of unknown groups over ``ids()`` for an index saved without
    one; either way it must hold exactly the index's ``count`` vectors."""
    found = table if table is not None else GroupTable(ids())
    if found.count != count:
        raise IndexUnavailable(f"group table holds {found.count} ids for {count} vectors")
    return found


@dataclass(frozen=True, slots=True)
class GroupFilter:
    """A group set resolved against one state of an index.

    ``selector`` is the FAISS selector admitting exactly the live vectors of those
    groups, ``count`` how many there are. ``bits`` (and ``members``, for sparse ids)
    back the selector: FAISS holds raw pointers, so they live as long as this object.
    """

    selector: faiss.IDSelector
    count: int
    bits: Bits | None
    members: Ids | None = None


class FilterCache:
    """Least-recently-used :class:`GroupFilter` per group set, emptied on every write.

    Concurrent searches share it (the gallery lets readers in together), so its order
    is changed under a lock of its own: a ``get`` must not move a key another thread's
    ``put`` has just evicted."""

    def __init__(self, size: int = CACHED_FILTERS) -> None:
        self._size = size
        self._items: OrderedDict[frozenset[int], GroupFilter] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, groups: frozenset[int]) -> GroupFilter | None:
        with self._lock:
            found = self._items.get(groups)
            if found is not None:
                self._items.move_to_end(groups)
            return found

    def put(self, groups: frozenset[int], value: GroupFilter) -> GroupFilter:
        with self._lock:
            self._items[groups] = value
            self._items.move_to_end(groups)
            while len(self._items) > self._size:
                self._items.popitem(last=False)
            return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


def positions_filter(mask: npt.NDArray[np.bool_]) -> GroupFilter:
    """A bitmap selector over internal positions from a boolean mask (one per position)."""
    bits = np.packbits(mask, bitorder="little")
    sel = faiss.IDSelectorBitmap(bits.size, faiss.swig_ptr(bits))  # n counts bytes
    return GroupFilter(selector=sel, count=int(np.count_nonzero(mask)), bits=bits)


def ids_filter(members: Ids) -> GroupFilter:
    """A selector admitting exactly ``members`` (our ids, unique, non-negative).

    A bitmap indexed by id when the ids are dense enough (at most 64 bits of bitmap per
    member, or 128 KiB), else FAISS's hashed id set.
    """
    if members.size == 0:
        bits = np.zeros(1, dtype=np.uint8)
        return GroupFilter(faiss.IDSelectorBitmap(0, faiss.swig_ptr(bits)), 0, bits)
    top = int(members.max()) + 1
    if top <= max(1 << 20, 64 * members.size):
        flags = np.zeros(top, dtype=bool)
        flags[members] = True
        bits = np.packbits(flags, bitorder="little")
        # FAISS's n is the bitmap's size in bytes: ids past it are rejected, never read
        bitmap = faiss.IDSelectorBitmap(bits.size, faiss.swig_ptr(bits))
        return GroupFilter(selector=bitmap, count=int(members.size), bits=bits)
    members = np.ascontiguousarray(members, dtype=np.int64)
    hashed = faiss.IDSelectorBatch(members)
    return GroupFilter(selector=hashed, count=int(members.size), bits=None, members=members)


def all_of(parts: list[faiss.IDSelector], keep: list[Any]) -> faiss.IDSelector:
    """The "and" of several selectors (``keep`` collects what FAISS must not free)."""
    sel = parts[0]
    for part in parts[1:]:
        sel = faiss.IDSelectorAnd(sel, part)
        keep.append(sel)
    return sel


class LabelLookup:
    """Finds the internal positions of our ids in a label array without a per-id dict.

    A dict of 10M Python ints costs over 1 GB; a sorted copy of the labels costs 16 bytes
    per face and answers a batch lookup with one ``searchsorted``. The snapshot stays
    valid across removals (a position whose current label no longer matches is dropped),
    and is rebuilt lazily after an add.
    """

    def __init__(self) -> None:
        # (order, sorted labels) as one value: concurrent searches may rebuild it, and
        # each must see an order and its sorted labels from the same build
        self._pair: tuple[Ids, Ids] | None = None

    def invalidate(self) -> None:
        self._pair = None

    def _snapshot(self, labels: Ids) -> tuple[Ids, Ids]:
        pair = self._pair
        if pair is None or pair[0].size != labels.size:
            order = np.argsort(labels, kind="stable").astype(np.int64)
            pair = (order, labels[order])
            self._pair = pair
        return pair

    def positions(self, labels: Ids, wanted: Ids) -> Ids:
        """Internal positions whose current label is in ``wanted`` (all copies of each id)."""
        if wanted.size == 0 or labels.size == 0:
            return np.empty(0, dtype=np.int64)
        order, ordered = self._snapshot(labels)
        wanted = np.sort(wanted)  # np.unique's hashing is ~8x slower than sort + mask
        if wanted.size > 1:
            wanted = wanted[np.concatenate(([True], wanted[1:] != wanted[:-1]))]
        lo = np.searchsorted(ordered, wanted, side="left")
        hi = np.searchsorted(ordered, wanted, side="right")
        counts = hi - lo
        if counts.sum() == 0:
            return np.empty(0, dtype=np.int64)
        starts = np.repeat(lo, counts)
        offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        pos = order[starts + offsets]
        return pos[labels[pos] == ordered[starts + offsets]]

    def aligned(self, labels: Ids, wanted: Ids) -> Ids:
        """For each id in ``wanted``, a position holding it now, or -1 (live ids are unique)."""
        out = np.full(wanted.shape, -1, dtype=np.int64)
        if wanted.size == 0 or labels.size == 0:
            return out
        order, ordered = self._snapshot(labels)
        # the last copy of an id in the sorted snapshot is its newest position
        at = np.searchsorted(ordered, wanted, side="right") - 1
        at = np.clip(at, 0, labels.size - 1)
        pos = order[at]
        hit = (ordered[at] == wanted) & (labels[pos] == wanted) & (wanted >= 0)
        out[hit] = pos[hit]
        return out


def retag(
    labels: Ids, groups: Groups, lookup: LabelLookup, ids: Ids, new: Groups
) -> tuple[Groups, int]:
    """``groups`` with the positions of ``ids`` set to ``new``, and how many were found.

    Returns a copy (searches in flight keep the old array); unknown ids are skipped.
    """
    pos = lookup.aligned(labels, ids)
    hit = pos >= 0
    out = groups.copy()
    out[pos[hit]] = new[hit]
    return out, int(np.count_nonzero(hit))


class GroupTable:
    """Our ids -> their groups, for the backends whose selectors see our ids (flat, IVF).

    Two aligned arrays in insertion order (16 bytes per face); removal overwrites the
    id with -1 and the arrays are compacted once such holes pass a quarter.
    """

    def __init__(self, ids: Ids | None = None, groups: Groups | None = None) -> None:
        self._ids: Ids = np.empty(0, np.int64) if ids is None else np.asarray(ids, np.int64)
        self._groups: Groups = (
            np.full(self._ids.size, UNKNOWN_GROUP, np.int64)
            if groups is None
            else np.asarray(groups, np.int64)
        )
        if self._groups.shape != self._ids.shape:
            raise IndexUnavailable(
                f"group table has {self._groups.size} groups for {self._ids.size} ids"
            )
        self._live = int(np.count_nonzero(self._ids >= 0))
        self._lookup = LabelLookup()
        self._cache = FilterCache()

    @property
    def count(self) -> int:
        return self._live

    def add(self, ids: Ids, groups: Groups) -> None:
        self._ids = np.concatenate([self._ids, ids])
        self._groups = np.concatenate([self._groups, groups])
        self._live += ids.size
        self._lookup.invalidate()
        self._cache.clear()

    def remove(self, ids: Ids) -> None:
        pos = self._lookup.positions(self._ids, ids)
        if pos.size == 0:
            return
        labels = self._ids.copy()
        labels[pos] = MISSING_ID
        self._ids = labels
        self._live -= pos.size
        self._cache.clear()
        if (labels.size - self._live) * 4 > labels.size:
            keep = labels >= 0
            self._ids = labels[keep].copy()
            self._groups = self._groups[keep].copy()
            self._lookup.invalidate()

    def set_groups(self, ids: Ids, groups: Groups) -> int:
        self._groups, found = retag(self._ids, self._groups, self._lookup, ids, groups)
        self._cache.clear()
        return found

    def entries(self) -> tuple[Ids, Groups]:
        """Live (ids, groups), aligned, in insertion order."""
        live = self._ids >= 0
        return self._ids[live].copy(), self._groups[live].copy()

    def groups_of(self, ids: Ids) -> Groups:
        """The group of each id, :data:`UNKNOWN_GROUP` for ids not in the table."""
        pos = self._lookup.aligned(self._ids, ids)
        return np.where(pos >= 0, self._groups[np.maximum(pos, 0)], UNKNOWN_GROUP)

    def filter(self, groups: frozenset[int]) -> GroupFilter:
        """The cached selector of the ids in ``groups`` (raises over unknown groups)."""
        found = self._cache.get(groups)
        if found is not None:
            return found
        members = self._ids[group_mask(self._ids >= 0, self._groups, groups)]
        return self._cache.put(groups, ids_filter(members))
