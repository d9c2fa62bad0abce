"""One contract for every vector index backend, checked against a numpy brute force.

Each backend (flat, HNSW, IVF-SQ8, Milvus Lite) runs the same tests with every selector
type. Exact backends must return the reference ids; approximate ones are run with
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
}


def _unit(rows: npt.NDArray[np.float64]) -> Vectors:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def data() -> tuple[Ids, Vectors, Vectors]:
    """Clustered unit vectors (like faces: identities with several photos) and queries."""
    rng = np.random.default_rng(7)
    centres = rng.standard_normal((300, DIM))
    members = centres[rng.integers(0, 300, N)] + 0.6 * rng.standard_normal((N, DIM))
    ids = rng.choice(10 * N, size=N, replace=False).astype(np.int64) + 5
    enrolled = members[:15] + 0.3 * rng.standard_normal((15, DIM))
    strangers = rng.standard_normal((15, DIM))
    return ids, _unit(members), _unit(np.vstack([enrolled, strangers]))


@pytest.fixture(params=sorted(BACKENDS))
def make(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], VectorIndex]]:
    """A constructor of empty indexes of one backend (closing Milvus clients afterwards)."""
    recipe, params = BACKENDS[request.param]
    opened: list[VectorIndex] = []

    def build() -> VectorIndex:
        extra = {"uri": str(tmp_path / "milvus.db")} if recipe == "milvus" else {}
        index = make_index(recipe, DIM, **params, **extra)
        opened.append(index)
        return index

    yield build
    for index in opened:
        close = getattr(index, "close", None)
        if close is not None:
            close()


def reference(
    ids: Ids, vectors: Vectors, queries: Vectors, k: int, selector: Selector | None
) -> tuple[npt.NDArray[np.float32], Ids]:
    """Brute-force top-k with the selector applied, padded like the protocol says."""
    keep = np.array([selector is None or selector.admits(int(i)) for i in ids], dtype=bool)
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
) -> None:
    scores, got = index.search(queries, k, selector)
    assert scores.shape == got.shape == (len(queries), k)
    assert scores.dtype == np.float32 and got.dtype == np.int64
    want_scores, want = reference(ids, vectors, queries, k, selector)
    # sentinel padding and order hold for every backend
    assert np.all((got == MISSING_ID) == np.isneginf(scores))
    assert np.all(np.diff(np.where(np.isneginf(scores), -10.0, scores), axis=1) <= 1e-6)
    if selector is not None:
        assert all(selector.admits(int(i)) for i in got.ravel() if i != MISSING_ID)
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
    }


SELECTOR_NAMES = ["none", "empty", "allow", "allow-few", "allow-none", "deny", "allow+deny"]


def test_empty_index_pads(
    make: Callable[[], VectorIndex], data: tuple[Ids, Vectors, Vectors]
) -> None:
    index = make()
    scores, got = index.search(data[2], 3)
    assert index.count == 0 and index.ids().size == 0
    assert np.all(got == MISSING_ID) and np.all(np.isneginf(scores))


@pytest.mark.parametrize("sel_name", SELECTOR_NAMES)
def test_search_matches_reference(
    make: Callable[[], VectorIndex], data: tuple[Ids, Vectors, Vectors], sel_name: str
) -> None:
    ids, vectors, queries = data
    index = make()
    index.add(ids[:1000], vectors[:1000])
    index.add(ids[1000:], vectors[1000:])  # adds after the first batch need no rebuild
    assert index.count == N
    assert set(index.ids().tolist()) == set(ids.tolist())
    check_against_reference(index, ids, vectors, queries, selectors(ids)[sel_name])


def test_k_larger_than_count_pads(
    make: Callable[[], VectorIndex], data: tuple[Ids, Vectors, Vectors]
) -> None:
    ids, vectors, queries = data
    index = make()
    index.add(ids[:40], vectors[:40])
    scores, got = index.search(queries[:3], 50)
    assert got.shape == (3, 50)
    assert np.all(got[:, 40:] == MISSING_ID) and np.all(np.isneginf(scores[:, 40:]))
    assert all(set(row[:40].tolist()) == set(ids[:40].tolist()) for row in got)


@pytest.mark.parametrize("sel_name", ["none", "allow", "deny"])
def test_removed_ids_never_return(
    make: Callable[[], VectorIndex], data: tuple[Ids, Vectors, Vectors], sel_name: str
) -> None:
    ids, vectors, queries = data
    index = make()
    index.add(ids, vectors)
    # remove the true nearest neighbours of every query, the hardest case for a graph
    _, nearest = reference(ids, vectors, queries, 5, None)
    gone = {int(i) for i in nearest.ravel()} | {int(i) for i in ids[::4]}
    assert index.remove([*sorted(gone), 10**12]) == len(gone)  # unknown ids are ignored
    assert index.remove([]) == 0
    assert index.count == N - len(gone)
    keep = np.array([int(i) not in gone for i in ids])
    assert set(index.ids().tolist()) == set(ids[keep].tolist())
    sel = selectors(ids)[sel_name]
    _, got = index.search(queries, K, sel)
    assert not gone & {int(i) for i in got.ravel()}
    check_against_reference(index, ids[keep], vectors[keep], queries, sel)
    # a removed id added back (e.g. a repair from SQL) is found again, once
    index.add(ids[:1], vectors[:1])
    _, again = index.search(vectors[:1], K)
    assert int(ids[0]) in again[0].tolist() and again[0].tolist().count(int(ids[0])) == 1


def test_save_load_round_trip(
    make: Callable[[], VectorIndex], data: tuple[Ids, Vectors, Vectors], tmp_path: Path
) -> None:
    ids, vectors, queries = data
    index = make()
    index.add(ids, vectors)
    index.remove(ids[:100].tolist())
    before = index.search(queries, K)
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
        after = loaded.search(queries, K)
        assert np.array_equal(before[1], after[1])
        np.testing.assert_allclose(before[0], after[0], atol=1e-6)
    finally:
        close = getattr(loaded, "close", None)
        if close is not None:
            close()


@pytest.mark.parametrize(
    "bad",
    [
        "wrong-dim",
        "one-dim",
        "nan",
        "ids-count",
        "negative-id",
    ],
)
def test_bad_add_raises_and_changes_nothing(
    make: Callable[[], VectorIndex], data: tuple[Ids, Vectors, Vectors], bad: str
) -> None:
    ids, vectors, _ = data
    index = make()
    index.add(ids[:10], vectors[:10])
    args: dict[str, tuple[object, object]] = {
        "wrong-dim": (ids[10:12], vectors[10:12, :-1]),
        "one-dim": (ids[10:11], vectors[10]),
        "nan": (ids[10:12], np.full((2, DIM), np.nan, dtype=np.float32)),
        "ids-count": (ids[10:13], vectors[10:12]),
        "negative-id": (np.array([-3, 4]), vectors[10:12]),
    }
    new_ids, new_vectors = args[bad]
    with pytest.raises(IndexUnavailable):
        index.add(new_ids, new_vectors)  # type: ignore[arg-type]
    assert index.count == 10


@pytest.mark.parametrize("bad", ["wrong-dim", "k-zero"])
def test_bad_search_raises(
    make: Callable[[], VectorIndex], data: tuple[Ids, Vectors, Vectors], bad: str
) -> None:
    ids, vectors, queries = data
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
