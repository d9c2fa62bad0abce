"""Backend-specific behaviour the contract cannot see: compaction, training, recipes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from facetrace.errors import IndexUnavailable
from facetrace.index.base import Selector
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
    # only the current bundle's parts remain next to the manifest
    assert len(list(tmp_path.iterdir())) == 3


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
