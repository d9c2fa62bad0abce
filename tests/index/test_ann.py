"""Backend-specific behaviour the contract cannot see: compaction, training, recipes,
the group-filter paths and indexes saved before vectors carried groups."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import numpy.typing as npt
import pytest

from facetrace.errors import IndexUnavailable
from facetrace.index.base import UNKNOWN_GROUP, Selector
from facetrace.index.factory import canonical_kind, choose_kind, load_index, make_index
from facetrace.index.faiss_ann import IvfIndex, auto_nlist
from facetrace.index.flat import FlatIndex
from facetrace.index.hnsw import HnswIndex, split_rows

DIM = 16


def _data(n: int, seed: int = 0) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, DIM))
    return np.arange(100, 100 + n, dtype=np.int64), (
        x / np.linalg.norm(x, axis=1, keepdims=True)
    ).astype(np.float32)


def test_hnsw_compacts_past_the_tombstone_fraction() -> None:
    ids, x = _data(400)
    index = HnswIndex(DIM, m=8, compact_fraction=0.3, shards=1)
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
    index = HnswIndex(DIM, m=8, compact_fraction=0.0, shards=2)
    index.add(ids, x)
    index.remove(ids[:50].tolist())
    index.save(tmp_path / "hnsw.index")
    index.save(tmp_path / "hnsw.index")  # a second save replaces the first's parts
    loaded = load_index(tmp_path / "hnsw.index", DIM)
    assert isinstance(loaded, HnswIndex) and loaded.shards == 2
    assert loaded.settings()["tombstones"] == 50 and loaded.count == 250
    assert sorted(loaded.ids().tolist()) == sorted(ids[50:].tolist())
    _, got = loaded.search(x[:50], 5)
    assert not set(got.ravel().tolist()) & set(ids[:50].tolist())
    # only the current bundle's parts remain next to the manifest (graph, labels, groups
    # of each shard)
    assert len(list(tmp_path.iterdir())) == 1 + 3 * 2


def test_hnsw_shards_fill_evenly_and_refill_after_deletes() -> None:
    ids, x = _data(700)
    index = HnswIndex(DIM, m=8, compact_fraction=0.0, shards=3)
    index.add(ids[:300], x[:300])
    assert [g.count for g in index.graphs] == [100, 100, 100]
    held = [set(g.ids().tolist()) for g in index.graphs]
    assert set().union(*held) == set(ids[:300].tolist()) and sum(map(len, held)) == 300
    index.remove(ids[:60].tolist())  # all from the first shard
    assert [g.count for g in index.graphs] == [40, 100, 100]
    index.add(ids[300:400], x[300:400])  # the emptied shard is topped up first
    assert [g.count for g in index.graphs] == [114, 113, 113]
    index.add(ids[400:401], x[400:401])
    assert sorted(g.count for g in index.graphs) == [113, 114, 114]


@pytest.mark.parametrize(
    ("sizes", "n", "want"),
    [
        ([0, 0], 5, [3, 2]),
        ([10, 0], 3, [0, 3]),
        ([10, 0], 12, [1, 11]),
        ([5, 9, 1], 0, [0, 0, 0]),
        ([5, 9, 1], 10, [3, 0, 7]),
    ],
)
def test_split_rows_evens_out_shard_sizes(sizes: list[int], n: int, want: list[int]) -> None:
    got = split_rows(np.array(sizes, dtype=np.int64), n)
    assert got.tolist() == want and int(got.sum()) == n


def test_hnsw_shards_search_like_one_graph() -> None:
    """Merged shard results are the true top-k when each shard searches exhaustively."""
    ids, x = _data(900)
    sharded = HnswIndex(DIM, m=16, ef_search=900, shards=3)
    sharded.add(ids, x)
    scores, got = sharded.search(x[:30], 7)
    assert np.array_equal(got, _brute(x, x[:30], np.ones(900, dtype=bool), k=7))
    assert np.all(np.diff(scores, axis=1) <= 0)
    one = HnswIndex(DIM, m=16, ef_search=900, shards=1)
    one.add(ids, x)
    _, alone = one.search(x[:30], 7)
    assert np.array_equal(got, alone)


def test_hnsw_default_shards_and_effort() -> None:
    index = HnswIndex(DIM)
    assert index.shards == min(os.cpu_count() or 1, 4)
    assert index.settings()["shards"] == index.shards
    assert HnswIndex(DIM, shards=1).ef_search == 256  # one core: 0.99 at 1M needs 256
    assert HnswIndex(DIM, shards=2).ef_search == 176  # per shard, two at once
    with pytest.raises(IndexUnavailable):
        HnswIndex(DIM, shards=0)


def test_one_graph_hnsw_saved_before_shards_loads(tmp_path: Path) -> None:
    """A bundle from before shards: no shard count in its parameters, one graph."""
    ids, x = _data(300)
    index = HnswIndex(DIM, m=8, ef_search=77, shards=1)
    index.add(ids, x)
    index.save(tmp_path / "old.index")
    meta = json.loads((tmp_path / "old.index").read_text())
    del meta["params"]["shards"]
    (tmp_path / "old.index").write_text(json.dumps(meta))
    loaded = load_index(tmp_path / "old.index", DIM)
    assert isinstance(loaded, HnswIndex)
    assert loaded.shards == 1 and loaded.ef_search == 77 and loaded.count == 300
    _, got = loaded.search(x[:10], 1)
    assert got[:, 0].tolist() == ids[:10].tolist()


def test_hnsw_bundle_missing_a_shard_is_refused(tmp_path: Path) -> None:
    ids, x = _data(300)
    index = HnswIndex(DIM, m=8, shards=2)
    index.add(ids, x)
    index.save(tmp_path / "h.index")
    meta = json.loads((tmp_path / "h.index").read_text())
    (tmp_path / meta["files"]["graph1"]).unlink()
    with pytest.raises(IndexUnavailable, match="graph1"):
        load_index(tmp_path / "h.index", DIM)


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
    x: npt.NDArray[np.float32],
    q: npt.NDArray[np.float32],
    keep: npt.NDArray[np.bool_],
    k: int = 5,
) -> npt.NDArray[np.int64]:
    ids = np.arange(100, 100 + len(x), dtype=np.int64)[keep]
    return ids[np.argsort(-(q @ x[keep].T), axis=1, kind="stable")[:, :k]]


def _strip_groups(path: Path) -> None:
    """Turn a bundle into what the version before group tags wrote: no group parts."""
    meta = json.loads(path.read_text())
    meta["params"].pop("shards", None)  # nor HNSW shards: one graph
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
        index = make_index(kind, DIM, **({"shards": 1} if kind == "hnsw" else {}))
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


def test_a_new_thread_searches_with_the_configured_thread_count() -> None:
    """OpenMP keeps its thread count per thread: a web server's worker thread must not
    search with one thread per core because the main thread was told one."""
    import threading

    from facetrace.index import set_search_threads, use_search_threads

    set_search_threads(1)
    seen: dict[str, int] = {}

    def worker() -> None:
        seen["before"] = faiss.omp_get_max_threads()
        use_search_threads()
        seen["after"] = faiss.omp_get_max_threads()

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen["after"] == 1
    if (os.cpu_count() or 1) > 1 and "OMP_NUM_THREADS" not in os.environ:
        # the per-thread default the fix overrides
        assert seen["before"] > 1


def test_shards_run_on_another_thread_with_the_search_thread_count() -> None:
    import threading

    from facetrace.index import hnsw, set_search_threads

    set_search_threads(1)

    def probe() -> Any:
        return faiss.omp_get_max_threads(), threading.get_ident()

    here, there = hnsw._runner.run([probe, probe])
    assert here[0] == there[0] == 1
    assert here[1] == threading.get_ident() != there[1]


def test_shards_go_to_worker_threads_only_when_openmp_would_not_use_the_cores(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A batch searched with several OpenMP threads already fills the cores (one shard
    after another); a single search thread hands the other shards to workers."""
    from facetrace.index import batch_threads, hnsw, set_search_threads

    ids, x = _data(400)
    index = HnswIndex(DIM, m=8, shards=2)
    index.add(ids, x)
    handed: list[int] = []
    real_run = hnsw._runner.run

    def spy(calls: Any) -> Any:
        handed.append(len(calls))
        return real_run(calls)

    monkeypatch.setattr(hnsw._runner, "run", spy)
    with batch_threads(2):
        _, batch = index.search(x[:20], 1)
    assert handed == []
    set_search_threads(1)
    _, single = index.search(x[:20], 1)
    assert handed == [2]
    assert np.array_equal(batch, single) and batch[:, 0].tolist() == ids[:20].tolist()
