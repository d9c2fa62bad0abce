"""One contract for every vector index backend, checked against a numpy brute force.

Each backend (flat, HNSW, IVF-SQ8, Milvus Lite, and a real Milvus standalone server
started once per session) runs the same tests with every selector
type: id sets (allow, deny) and group sets (the collection a face belongs to), alone and
combined. Exact backends must return the reference ids; approximate ones are run with
parameters that make them near-exact on this small set and must reach a high recall.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from facetrace.errors import IndexUnavailable
from facetrace.index.base import MISSING_ID, Selector, VectorIndex
from facetrace.index.factory import load_index, make_index

DIM = 48
N = 1500
K = 10
Vectors = npt.NDArray[np.float32]
Ids = npt.NDArray[np.int64]
Data = tuple[Ids, Vectors, Vectors, Ids]
#: a group (collection) with only a few faces, and one far from the others in value
SMALL_GROUP = 2**40

# backend name -> (recipe, constructor parameters)
BACKENDS: dict[str, tuple[str, dict[str, object]]] = {
    "flat": ("flat", {}),
    # exact_below=0 forces filtered searches through the graph and its bitmap selector
    "hnsw": (
        "hnsw16",
        {"ef_search": 128, "ef_construction": 40, "exact_below": 0, "compact_fraction": 0.0},
    ),
    "hnsw-exact-filter": ("hnsw", {"ef_search": 128, "ef_construction": 40}),
    "ivf-sq8": ("ivf-sq8", {"nlist": 8, "nprobe": 8, "exact_below": 0}),
    "ivf-sq8-raw": ("ivf-sq8-raw", {"nlist": 8, "nprobe": 8, "exact_below": 0}),
    "milvus-lite": ("milvus", {}),
    # the standalone server of the session (tests/milvus_server.py), one collection per test
    "milvus-server": ("milvus", {}),
}


def _unit(rows: npt.NDArray[np.float64]) -> Vectors:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def data() -> Data:
    """Clustered unit vectors (like faces: identities with several photos), queries, and
    each vector's group: collections 1-5 of ~20% each, and 30 faces in SMALL_GROUP."""
    rng = np.random.default_rng(7)
    centres = rng.standard_normal((300, DIM))
    members = centres[rng.integers(0, 300, N)] + 0.6 * rng.standard_normal((N, DIM))
    ids = rng.choice(10 * N, size=N, replace=False).astype(np.int64) + 5
    enrolled = members[:15] + 0.3 * rng.standard_normal((15, DIM))
    strangers = rng.standard_normal((15, DIM))
    groups = rng.integers(1, 6, N).astype(np.int64)
    groups[rng.choice(N, size=30, replace=False)] = SMALL_GROUP
    return ids, _unit(members), _unit(np.vstack([enrolled, strangers])), groups


@pytest.fixture(params=sorted(BACKENDS))
def make(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], VectorIndex]]:
    """A constructor of empty indexes of one backend (closing Milvus clients afterwards)."""
    recipe, params = BACKENDS[request.param]
    opened: list[VectorIndex] = []
    pool = request.getfixturevalue("milvus_pool") if request.param == "milvus-server" else None
    taken: list[str] = []

    def build() -> VectorIndex:
        extra: dict[str, object] = {}
        if pool is not None:  # each index of a test is an empty collection of its own
            taken.append(pool.take(DIM))
            extra = {"uri": pool.uri, "collection": taken[-1]}
        elif recipe == "milvus":
            extra = {"uri": str(tmp_path / f"milvus{len(opened)}.db")}
        index = make_index(recipe, DIM, **params, **extra)
        opened.append(index)
        return index

    yield build
    for index in opened:
        close = getattr(index, "close", None)
        if close is not None:
            close()
    for name in taken:
        assert pool is not None
        pool.give_back(name, DIM)


def reference(
    ids: Ids,
    vectors: Vectors,
    queries: Vectors,
    k: int,
    selector: Selector | None,
    groups: Ids | None = None,
) -> tuple[npt.NDArray[np.float32], Ids]:
    """Brute-force top-k with the selector applied, padded like the protocol says."""
    tags = np.zeros(len(ids), dtype=np.int64) if groups is None else groups
    keep = np.array(
        [
            selector is None or selector.admits(int(i), int(g))
            for i, g in zip(ids, tags, strict=True)
        ],
        dtype=bool,
    )
    sims = queries @ vectors[keep].T
    kept = ids[keep]
    scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
    out = np.full((len(queries), k), MISSING_ID, dtype=np.int64)
    for row in range(len(queries)):
        order = np.argsort(-sims[row], kind="stable")[:k]
        scores[row, : order.size] = sims[row, order]
        out[row, : order.size] = kept[order]
    return scores, out


def recall(found: Ids, truth: Ids) -> float:
    """Share of the true (non-missing) neighbours that were found."""
    hits = total = 0
    for got, want in zip(found, truth, strict=True):
        want_set = {int(i) for i in want if i != MISSING_ID}
        hits += len(want_set & {int(i) for i in got})
        total += len(want_set)
    return 1.0 if total == 0 else hits / total


def check_against_reference(
    index: VectorIndex,
    ids: Ids,
    vectors: Vectors,
    queries: Vectors,
    selector: Selector | None,
    k: int = K,
    groups: Ids | None = None,
) -> None:
    scores, got = index.search(queries, k, selector)
    assert scores.shape == got.shape == (len(queries), k)
    assert scores.dtype == np.float32 and got.dtype == np.int64
    want_scores, want = reference(ids, vectors, queries, k, selector, groups)
    # sentinel padding and order hold for every backend
    assert np.all((got == MISSING_ID) == np.isneginf(scores))
    assert np.all(np.diff(np.where(np.isneginf(scores), -10.0, scores), axis=1) <= 1e-6)
    if selector is not None:
        tags = groups if groups is not None else np.zeros_like(ids)
        group_of = dict(zip(ids.tolist(), tags.tolist(), strict=True))
        admitted = [selector.admits(int(i), group_of[int(i)]) for i in got.ravel() if i >= 0]
        assert all(admitted), "the index returned a face its selector does not admit"
    assert np.array_equal(got == MISSING_ID, want == MISSING_ID)
    if index.capabilities.exact:
        assert np.array_equal(got, want)
        np.testing.assert_allclose(
            scores[got != MISSING_ID], want_scores[want != MISSING_ID], atol=1e-5
        )
    else:
        assert recall(got, want) >= 0.95


def selectors(ids: Ids) -> dict[str, Selector | None]:
    rng = np.random.default_rng(3)
    some = frozenset(int(i) for i in rng.choice(ids, size=len(ids) // 3, replace=False))
    others = frozenset(int(i) for i in rng.choice(ids, size=len(ids) // 3, replace=False))
    few = frozenset(int(i) for i in ids[:25])
    return {
        "none": None,
        "empty": Selector(),
        "allow": Selector(allow=some),
        "allow-few": Selector(allow=few | {10**12}),  # plus an id the index never had
        "allow-none": Selector(allow=frozenset()),
        "deny": Selector(deny=others),
        "allow+deny": Selector(allow=some, deny=others),
        # collections: two of five (~40%), one (~20%), a small one, unknown, none at all
        "groups": Selector(groups=frozenset({1, 2})),
        "groups-one": Selector(groups=frozenset({3})),
        "groups-small": Selector(groups=frozenset({SMALL_GROUP, 999})),
        "groups-absent": Selector(groups=frozenset({999})),
        "groups-none": Selector(groups=frozenset()),
        "groups+deny": Selector(groups=frozenset({1, 2}), deny=others),
        "groups+allow": Selector(groups=frozenset({2, 3, 4}), allow=some),
        "groups+allow+deny": Selector(groups=frozenset({2, 3, 4}), allow=some, deny=others),
    }


SELECTOR_NAMES = list(selectors(np.arange(100, dtype=np.int64)))
GROUP_SELECTORS = ["groups", "groups-small", "groups+deny"]


def test_empty_index_pads(make: Callable[[], VectorIndex], data: Data) -> None:
    index = make()
    scores, got = index.search(data[2], 3)
    assert index.count == 0 and index.ids().size == 0
    assert np.all(got == MISSING_ID) and np.all(np.isneginf(scores))


@pytest.mark.parametrize("sel_name", SELECTOR_NAMES)
def test_search_matches_reference(
    make: Callable[[], VectorIndex], data: Data, sel_name: str
) -> None:
    ids, vectors, queries, groups = data
    index = make()
    index.add(ids[:1000], vectors[:1000], groups[:1000])
    # adds after the first batch need no rebuild (and reset any cached group filter)
    sel = selectors(ids)[sel_name]
    check_against_reference(index, ids[:1000], vectors[:1000], queries, sel, groups=groups[:1000])
    index.add(ids[1000:], vectors[1000:], groups[1000:])
    assert index.count == N
    assert set(index.ids().tolist()) == set(ids.tolist())
    check_against_reference(index, ids, vectors, queries, sel, groups=groups)


def test_k_larger_than_count_pads(make: Callable[[], VectorIndex], data: Data) -> None:
    ids, vectors, queries, _ = data
    index = make()
    index.add(ids[:40], vectors[:40])
    scores, got = index.search(queries[:3], 50)
    assert got.shape == (3, 50)
    assert np.all(got[:, 40:] == MISSING_ID) and np.all(np.isneginf(scores[:, 40:]))
    assert all(set(row[:40].tolist()) == set(ids[:40].tolist()) for row in got)


@pytest.mark.parametrize("sel_name", ["none", "allow", "deny", *GROUP_SELECTORS])
def test_removed_ids_never_return(
    make: Callable[[], VectorIndex], data: Data, sel_name: str
) -> None:
    ids, vectors, queries, groups = data
    index = make()
    index.add(ids, vectors, groups)
    sel = selectors(ids)[sel_name]
    index.search(queries, K, sel)  # a group filter cached now must not outlive the removal
    # remove the true nearest neighbours of every query, the hardest case for a graph
    _, nearest = reference(ids, vectors, queries, 5, sel, groups)
    gone = {int(i) for i in nearest.ravel() if i >= 0} | {int(i) for i in ids[::4]}
    assert index.remove([*sorted(gone), 10**12]) == len(gone)  # unknown ids are ignored
    assert index.remove([]) == 0
    assert index.count == N - len(gone)
    keep = np.array([int(i) not in gone for i in ids])
    assert set(index.ids().tolist()) == set(ids[keep].tolist())
    _, got = index.search(queries, K, sel)
    assert not gone & {int(i) for i in got.ravel()}
    check_against_reference(index, ids[keep], vectors[keep], queries, sel, groups=groups[keep])
    # a removed id added back (e.g. a repair from SQL) is found again, once, in its group
    index.add(ids[:1], vectors[:1], groups[:1])
    _, again = index.search(vectors[:1], K, Selector(groups=frozenset({int(groups[0])})))
    assert int(ids[0]) in again[0].tolist() and again[0].tolist().count(int(ids[0])) == 1


def test_save_load_round_trip(make: Callable[[], VectorIndex], data: Data, tmp_path: Path) -> None:
    ids, vectors, queries, groups = data
    index = make()
    index.add(ids, vectors, groups)
    index.remove(ids[:100].tolist())
    filters = [None, *(selectors(ids)[name] for name in GROUP_SELECTORS)]
    before = [index.search(queries, K, sel) for sel in filters]
    settings = index.settings()
    path = tmp_path / "gallery.index"
    index.save(path)
    index.save(path)  # saving twice replaces, leaving one set of files
    close = getattr(index, "close", None)
    if close is not None:
        close()
    loaded = load_index(path, DIM)
    try:
        assert loaded.settings()["kind"] == settings["kind"]
        assert loaded.count == N - 100
        assert set(loaded.ids().tolist()) == set(ids[100:].tolist())
        got_ids, got_groups = loaded.id_groups()
        assert dict(zip(got_ids.tolist(), got_groups.tolist(), strict=True)) == dict(
            zip(ids[100:].tolist(), groups[100:].tolist(), strict=True)
        )
        for sel, (want_scores, want_ids) in zip(filters, before, strict=True):
            scores, found = loaded.search(queries, K, sel)
            assert np.array_equal(want_ids, found), sel
            np.testing.assert_allclose(want_scores, scores, atol=1e-6)
    finally:
        close = getattr(loaded, "close", None)
        if close is not None:
            close()


def test_vectors_added_without_groups_are_group_zero(
    make: Callable[[], VectorIndex], data: Data
) -> None:
    ids, vectors, queries, _ = data
    index = make()
    index.add(ids[:300], vectors[:300])
    got_ids, got_groups = index.id_groups()
    assert sorted(got_ids.tolist()) == sorted(ids[:300].tolist())
    assert not got_groups.any()
    unfiltered = index.search(queries, K)
    in_zero = index.search(queries, K, Selector(groups=frozenset({0})))
    assert np.array_equal(unfiltered[1], in_zero[1])
    _, elsewhere = index.search(queries, K, Selector(groups=frozenset({1})))
    assert np.all(elsewhere == MISSING_ID)


def test_set_groups_moves_faces_between_groups(make: Callable[[], VectorIndex], data: Data) -> None:
    ids, vectors, queries, groups = data
    index = make()
    index.add(ids, vectors, groups)
    one = Selector(groups=frozenset({1}))
    index.search(queries, K, one)  # cache the filter of group 1, which must then follow
    moved = np.flatnonzero(groups == 2)[:100]
    new = groups.copy()
    new[moved] = 1
    asked = np.concatenate([ids[moved], [10**12]])  # plus an id the index does not hold
    assert index.set_groups(asked, np.ones(asked.size, dtype=np.int64)) == moved.size
    got_ids, got_groups = index.id_groups()
    assert dict(zip(got_ids.tolist(), got_groups.tolist(), strict=True)) == dict(
        zip(ids.tolist(), new.tolist(), strict=True)
    )
    check_against_reference(index, ids, vectors, queries, one, groups=new)
    check_against_reference(
        index, ids, vectors, queries, Selector(groups=frozenset({2})), groups=new
    )
    with pytest.raises(IndexUnavailable):
        index.set_groups(ids[:2], np.array([-1, 3]))


@pytest.mark.parametrize(
    "bad",
    [
        "wrong-dim",
        "one-dim",
        "nan",
        "ids-count",
        "negative-id",
        "groups-count",
        "negative-group",
    ],
)
def test_bad_add_raises_and_changes_nothing(
    make: Callable[[], VectorIndex], data: Data, bad: str
) -> None:
    ids, vectors, _, groups = data
    index = make()
    index.add(ids[:10], vectors[:10], groups[:10])
    args: dict[str, tuple[object, object, object]] = {
        "wrong-dim": (ids[10:12], vectors[10:12, :-1], None),
        "one-dim": (ids[10:11], vectors[10], None),
        "nan": (ids[10:12], np.full((2, DIM), np.nan, dtype=np.float32), None),
        "ids-count": (ids[10:13], vectors[10:12], None),
        "negative-id": (np.array([-3, 4]), vectors[10:12], None),
        "groups-count": (ids[10:12], vectors[10:12], groups[10:13]),
        "negative-group": (ids[10:12], vectors[10:12], np.array([1, -4])),
    }
    new_ids, new_vectors, new_groups = args[bad]
    with pytest.raises(IndexUnavailable):
        index.add(new_ids, new_vectors, new_groups)  # type: ignore[arg-type]
    assert index.count == 10
    assert sorted(index.id_groups()[0].tolist()) == sorted(ids[:10].tolist())


@pytest.mark.parametrize("bad", ["wrong-dim", "k-zero"])
def test_bad_search_raises(make: Callable[[], VectorIndex], data: Data, bad: str) -> None:
    ids, vectors, queries, _ = data
    index = make()
    index.add(ids[:10], vectors[:10])
    with pytest.raises(IndexUnavailable):
        if bad == "wrong-dim":
            index.search(queries[:, :10], K)
        else:
            index.search(queries, 0)


def test_capabilities_and_settings(make: Callable[[], VectorIndex]) -> None:
    index = make()
    assert isinstance(index, VectorIndex)
    settings = index.settings()
    assert settings["dim"] == DIM and settings["count"] == 0 and "kind" in settings
    assert index.capabilities.filtered_search and index.capabilities.persistent
