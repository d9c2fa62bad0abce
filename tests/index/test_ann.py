"""Backend-specific behaviour the contract cannot see: compaction, training, recipes,
the group-filter paths and indexes saved before vectors carried groups."""

from __future__ import annotations

import json
from pathlib import Path

import faiss
import numpy as np
import numpy.typing as npt
import pytest

from facetrace.errors import IndexUnavailable
from facetrace.index.base import UNKNOWN_GROUP, Selector
from facetrace.index.factory import canonical_kind, choose_kind, load_index, make_index
from facetrace.index.faiss_ann import HnswIndex, IvfIndex, auto_nlist
from facetrace.index.flat import FlatIndex

DIM = 16


def _data(n: int, seed: int = 0) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, DIM))
    return np.arange(100, 100 + n, dtype=np.int64), (
        x / np.linalg.norm(x, axis=1, keepdims=True)
    ).astype(np.float32)


def test_hnsw_compacts_past_the_tombstone_fraction() -> None:
    ids, x = _data(400)
    index = HnswIndex(DIM, m=8, compact_fraction=0.3)
    index.add(ids, x)
    index.remove(ids[:100].tolist())
    assert index.settings()["tombstones"] == 100  # 25%: kept as tombstones
    index.remove(ids[100:140].tolist())
    assert index.settings()["tombstones"] == 0  # 35%: graph rebuilt from live vectors
    assert index.count == 260 and set(index.ids().tolist()) == set(ids[140:].tolist())
    _, got = index.search(x[140:150], 1)
    assert got[:, 0].tolist() == ids[140:150].tolist()


def test_hnsw_tombstones_survive_save_and_load(tmp_path: Path) -> None:
    ids, x = _data(300)
    index = HnswIndex(DIM, m=8, compact_fraction=0.0)
    index.add(ids, x)
    index.remove(ids[:50].tolist())
    index.save(tmp_path / "hnsw.index")
    loaded = load_index(tmp_path / "hnsw.index", DIM)
    assert isinstance(loaded, HnswIndex)
    assert loaded.settings()["tombstones"] == 50 and loaded.count == 250
    _, got = loaded.search(x[:50], 5)
    assert not set(got.ravel().tolist()) & set(ids[:50].tolist())
    # only the current bundle's parts remain next to the manifest (graph, labels, groups)
    assert len(list(tmp_path.iterdir())) == 4


def test_hnsw_wide_filter_goes_through_the_graph() -> None:
    ids, x = _data(2000)
    index = HnswIndex(DIM, m=16, exact_below=100)
    index.add(ids, x)
    allow = frozenset(int(i) for i in ids[::2])
    _, got = index.search(x[:20:2], 1, Selector(allow=allow))
    assert got[:, 0].tolist() == ids[:20:2].tolist()


def test_ivf_trains_on_first_batch_and_reports_it() -> None:
    ids, x = _data(800)
    index = IvfIndex(DIM, nprobe=4)
    assert index.settings()["trained"] is False
    index.add(ids, x)
    assert index.settings()["trained"] is True
    assert index.settings()["nlist"] == auto_nlist(800)


def test_ivf_default_nprobe_is_an_eighth_of_the_lists(tmp_path: Path) -> None:
    ids, x = _data(4000)
    index = IvfIndex(DIM, nlist=80)
    index.add(ids, x)
    assert index.settings()["nprobe_default"] == 10  # 80 / 8
    # the default scans more lists than nprobe=1 does, so it finds more of the true top-10
    truth = set(np.argsort(-(x @ x[0]))[:10] + 100)
    _, wide = index.search(x[:1], 10)
    _, narrow = index.search(x[:1], 10, nprobe=1)
    assert len(truth & set(wide[0].tolist())) > len(truth & set(narrow[0].tolist()))
    # an explicit nprobe is kept, and "unset" survives a save and load
    assert IvfIndex(DIM, nlist=80, nprobe=3).default_nprobe == 3
    index.save(tmp_path / "ivf")
    again = load_index(tmp_path / "ivf", DIM)
    assert again.settings()["nprobe"] is None
    assert again.settings()["nprobe_default"] == 10
    with pytest.raises(IndexUnavailable):
        IvfIndex(DIM, nprobe=0)


def test_auto_nlist_keeps_enough_points_per_list() -> None:
    assert auto_nlist(1_000_000) == 4000
    assert auto_nlist(1000) == 25
    assert auto_nlist(10) == 1


def test_recipes() -> None:
    assert canonical_kind("HNSW48") == ("hnsw", {"m": 48})
    assert canonical_kind("ivf") == ("ivf-sq8", {})
    assert choose_kind(1000) == "flat"
    assert choose_kind(1_000_000) == "hnsw"
    assert choose_kind(50_000_000) == "ivf-sq8"
    assert isinstance(make_index("auto", DIM, n_faces=10), FlatIndex)
    assert isinstance(make_index("hnsw16", DIM), HnswIndex)


@pytest.mark.parametrize(
    ("kind", "params"),
    [("annoy", {}), ("hnsw", {"bogus": 1}), ("flat", {"m": 3}), ("hnsw", {"m": 1})],
)
def test_unknown_recipes_raise(kind: str, params: dict[str, object]) -> None:
    with pytest.raises(IndexUnavailable):
        make_index(kind, DIM, **params)


def test_load_refuses_missing_and_foreign_files(tmp_path: Path) -> None:
    with pytest.raises(IndexUnavailable):
        load_index(tmp_path / "absent", DIM)
    (tmp_path / "junk").write_bytes(b"not an index")
    with pytest.raises(IndexUnavailable):
        load_index(tmp_path / "junk", DIM)
    (tmp_path / "manifest").write_text('{"format": "something-else"}')
    with pytest.raises(IndexUnavailable):
        load_index(tmp_path / "manifest", DIM)
    index = HnswIndex(DIM, m=8)
    index.save(tmp_path / "h.index")
    with pytest.raises(IndexUnavailable):
        load_index(tmp_path / "h.index", DIM + 1)


def _groups(n: int) -> npt.NDArray[np.int64]:
    return (np.arange(n) % 4 + 1).astype(np.int64)  # four collections, interleaved


def _brute(
    x: npt.NDArray[np.float32], q: npt.NDArray[np.float32], keep: npt.NDArray[np.bool_]
) -> npt.NDArray[np.int64]:
    ids = np.arange(100, 100 + len(x), dtype=np.int64)[keep]
    return ids[np.argsort(-(q @ x[keep].T), axis=1, kind="stable")[:, :5]]


def _strip_groups(path: Path) -> None:
    """Turn a bundle into what the version before group tags wrote: no group parts."""
    meta = json.loads(path.read_text())
    for part in ("groups", "group_ids"):
        name = meta["files"].pop(part, None)
        if name:
            (path.parent / name).unlink()
    path.write_text(json.dumps(meta))


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf-sq8"])
def test_index_saved_before_groups_loads_and_refuses_group_filters(
    kind: str, tmp_path: Path
) -> None:
    ids, x = _data(600)
    path = tmp_path / "old.index"
    if kind == "flat":
        # the old flat format: a bare FAISS file of an ID map, nothing beside it
        old = faiss.IndexIDMap2(faiss.IndexFlatIP(DIM))
        old.add_with_ids(x, ids)
        faiss.write_index(old, str(path))
    else:
        index = make_index(kind, DIM)
        index.add(ids, x, _groups(600))
        index.save(path)
        _strip_groups(path)
    loaded = load_index(path, DIM)
    assert loaded.count == 600
    held, groups = loaded.id_groups()
    assert sorted(held.tolist()) == ids.tolist() and np.all(groups == UNKNOWN_GROUP)
    _, got = loaded.search(x[:5], 1)  # unfiltered searches still work
    assert got[:, 0].tolist() == ids[:5].tolist()
    with pytest.raises(IndexUnavailable, match="gallery"):
        loaded.search(x[:5], 1, Selector(groups=frozenset({1})))
    # retagged (what the gallery does from SQL), group filters answer again
    assert loaded.set_groups(ids, _groups(600)) == 600
    _, got = loaded.search(x[:20], 5, Selector(groups=frozenset({2})))
    assert np.array_equal(got, _brute(x, x[:20], _groups(600) == 2))
    loaded.save(path)
    assert np.all(load_index(path, DIM).id_groups()[1] >= 1)


@pytest.mark.parametrize(
    ("kind", "params"),
    [
        ("ivf-sq8", {"nlist": 8, "nprobe": 1}),  # small group: every list, exactly
        ("hnsw16", {"exact_below": 10}),  # wide group: through the graph, ef widened
        ("flat", {}),
    ],
)
def test_group_filter_paths(kind: str, params: dict[str, object]) -> None:
    ids, x = _data(2000)
    groups = _groups(2000)
    groups[::50] = 9  # 40 faces in collection 9
    index = make_index(kind, DIM, **params)
    index.add(ids, x, groups)
    for wanted in ({9}, {1, 9}):
        keep = np.isin(groups, list(wanted))
        _, got = index.search(x[:40:2], 5, Selector(groups=frozenset(wanted)))
        want = _brute(x, x[:40:2], keep)
        hits = sum(len(set(g) & set(w)) for g, w in zip(got.tolist(), want.tolist(), strict=True))
        assert hits >= 0.95 * want.size
        assert np.isin(got[got >= 0], ids[keep]).all()


def test_sparse_ids_fall_back_to_a_hashed_selector() -> None:
    _, x = _data(300)
    ids = (np.arange(300, dtype=np.int64) + 1) * 10**9  # far too sparse for a bitmap
    index = FlatIndex(DIM)
    index.add(ids, x, _groups(300))
    _, got = index.search(x[:10], 3, Selector(groups=frozenset({3})))
    keep = _groups(300) == 3
    want = ids[keep][np.argsort(-(x[:10] @ x[keep].T), axis=1, kind="stable")[:, :3]]
    assert np.array_equal(got, want)


def test_builds_use_every_core_and_give_the_search_setting_back() -> None:
    from facetrace.index import batch_threads, set_search_threads

    set_search_threads(1)
    with batch_threads(2) as n:
        assert n == 2
        assert faiss.omp_get_max_threads() == 2
    assert faiss.omp_get_max_threads() == 1
    with pytest.raises(RuntimeError), batch_threads(2):
        raise RuntimeError("a failed build still restores the thread count")
    assert faiss.omp_get_max_threads() == 1
