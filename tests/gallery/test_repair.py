"""The repair on open reads what changed, not the whole gallery (watermark + delete log).

On a Milvus server, listing every id is a scan of the whole collection; these tests make
that listing fail outright and show that a reopen, after a clean close or after a
writer died, still repairs exactly what it must. Damage the record cannot explain (rows
gone behind our back) is found by the per-collection counts and repaired collection by
collection; an index file the record does not describe gets the full comparison.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from facetrace.gallery.directory import INDEX_STATE_KEY, Gallery
from facetrace.index.milvus import MilvusIndex
from facetrace.store import repo
from facetrace.store.db import transaction
from tests.gallery.crash_worker import add_random_photo
from tests.milvus_server import CollectionPool

pymilvus = pytest.importorskip("pymilvus", reason="the milvus extra is not installed")


def _no_listing(*_: object, **__: object) -> object:
    raise AssertionError("the repair listed every id of the collection")


@pytest.fixture()
def milvus_gallery(
    tmp_path: Path, milvus_pool: CollectionPool
) -> Iterator[tuple[Path, dict[str, object]]]:
    """A data directory on the session's server with 40 faces in two collections."""
    params: dict[str, object] = {"uri": milvus_pool.uri, "collection": milvus_pool.take(128)}
    data = tmp_path / "data"
    rng = np.random.default_rng(1)
    with Gallery.open(data, index_kind="milvus", index_params=params) as g:
        for i in range(40):
            add_random_photo(g, rng, f"face-{i}")
    yield data, params
    milvus_pool.give_back(str(params["collection"]), 128)


def _truth(g: Gallery) -> list[int]:
    with g.sessions() as s:
        return sorted(repo.searchable_ids(s).tolist())


def _photo_of(g: Gallery, face_id: int) -> int:
    with g.sessions() as s:
        return repo.face_info(s, {face_id})[face_id].photo_id


def test_reopen_after_clean_close_reads_no_ids(
    milvus_gallery: tuple[Path, dict[str, object]], monkeypatch: pytest.MonkeyPatch
) -> None:
    data, params = milvus_gallery
    monkeypatch.setattr(MilvusIndex, "id_groups", _no_listing)
    with Gallery.open(data, index_kind="milvus", index_params=params) as g:
        assert g.last_repair["mode"] == "watermark"
        assert g.last_repair["added"] == 0 and g.last_repair["removed"] == 0
        assert g.index.count == 40


def test_writes_after_the_last_save_are_repaired_from_the_record(
    milvus_gallery: tuple[Path, dict[str, object]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer that died after SQL committed but before the index heard of it."""
    data, params = milvus_gallery
    g = Gallery.open(data, index_kind="milvus", index_params=params)
    rng = np.random.default_rng(2)
    for i in range(5):
        add_random_photo(g, rng, f"late-{i}")
    late = _truth(g)[-5:]
    g.index.remove(late[:3])  # the adds that never reached the index
    with transaction(g.sessions) as s:  # a delete that reached SQL (and its log) only
        gone = repo.delete_photo(s, photo=str(_photo_of(g, late[4])))
        repo.log_pending_deletes(s, face_ids=gone)
    g.index.close()  # dies: no save, no close
    g.engine.dispose()
    monkeypatch.setattr(MilvusIndex, "id_groups", _no_listing)
    with Gallery.open(data, index_kind="milvus", index_params=params) as again:
        done = again.last_repair
        assert done["mode"] == "watermark" and done["added"] == 3 and done["removed"] == 1
        monkeypatch.undo()
        assert sorted(again.index.ids().tolist()) == _truth(again)
        assert len(_truth(again)) == 44
    with Gallery.open(data, index_kind="milvus", index_params=params) as last:
        assert last.last_repair["added"] == 0 and last.last_repair["removed"] == 0
        with last.sessions() as s:
            assert repo.pending_deletes(s) == []  # confirmed by the save at close


def test_rows_lost_behind_our_back_are_found_by_the_counts(
    milvus_gallery: tuple[Path, dict[str, object]],
) -> None:
    data, params = milvus_gallery
    client = pymilvus.MilvusClient(uri=str(params["uri"]))
    try:
        client.delete(str(params["collection"]), filter="id < 10")  # below the watermark
    finally:
        client.close()
    with Gallery.open(data, index_kind="milvus", index_params=params) as g:
        done = g.last_repair
        assert done["mode"] == "watermark" and done["collections_compared"] == 1
        assert done["added"] == 9  # face ids start at 1
        assert sorted(g.index.ids().tolist()) == _truth(g)


def test_an_index_file_the_record_does_not_describe_gets_the_full_comparison(
    milvus_gallery: tuple[Path, dict[str, object]],
) -> None:
    data, params = milvus_gallery
    with (
        Gallery.open(data, index_kind="milvus", index_params=params) as g,
        transaction(g.sessions) as s,
    ):
        state = repo.get_meta(s, INDEX_STATE_KEY)
        repo.set_meta(s, key=INDEX_STATE_KEY, value={**state, "stamp": [0, 0]})
    with Gallery.open(data, index_kind="milvus", index_params=params) as g:
        assert g.last_repair["mode"] == "full"
        assert sorted(g.index.ids().tolist()) == _truth(g)
    with Gallery.open(data, index_kind="milvus", index_params=params) as g:
        assert g.last_repair["mode"] == "watermark"  # the full pass recorded the file


def test_faiss_gallery_repairs_from_the_record_too(tmp_path: Path) -> None:
    data = tmp_path / "data"
    rng = np.random.default_rng(3)
    with Gallery.open(data) as g:
        for i in range(30):
            add_random_photo(g, rng, f"f-{i}")
    g = Gallery.open(data)
    for i in range(4):
        add_random_photo(g, rng, f"unsaved-{i}")
    with transaction(g.sessions) as s:
        gone = repo.delete_photo(s, photo=str(_photo_of(g, _truth(g)[0])))
        repo.log_pending_deletes(s, face_ids=gone)
    g.engine.dispose()  # dies: the index file still holds the 30 faces of the last save
    with Gallery.open(data) as again:
        done = again.last_repair
        assert done["mode"] == "watermark" and done["added"] == 4 and done["removed"] == 1
        assert sorted(again.index.ids().tolist()) == _truth(again)


def test_the_repair_on_open_does_not_rewrite_the_index_file(tmp_path: Path) -> None:
    """A FAISS save rewrites the whole file (seconds at 1M faces): the repair of a few
    faces keeps its changes in memory until the next save, here the close; a crash
    before it repeats the same repair."""
    data = tmp_path / "data"
    rng = np.random.default_rng(5)
    with Gallery.open(data) as g:
        for i in range(20):
            add_random_photo(g, rng, f"f-{i}")
    g = Gallery.open(data)
    for i in range(3):
        add_random_photo(g, rng, f"unsaved-{i}")
    g.engine.dispose()  # dies with three faces the index file lacks
    before = (data / "index.faiss").stat()
    again = Gallery.open(data)
    assert again.last_repair["added"] == 3 and again.index.count == 23
    after = (data / "index.faiss").stat()
    assert (after.st_mtime_ns, after.st_size) == (before.st_mtime_ns, before.st_size)
    again.engine.dispose()  # dies again before any save: the next open repairs the same
    with Gallery.open(data) as third:
        assert third.last_repair["mode"] == "watermark" and third.last_repair["added"] == 3
        assert sorted(third.index.ids().tolist()) == _truth(third)
    with Gallery.open(data) as fourth:  # the close saved it
        assert fourth.last_repair["added"] == 0 and fourth.index.count == 23


def test_a_repair_by_collection_is_saved_at_close_and_not_repeated(tmp_path: Path) -> None:
    """A face gone from SQL without a logged delete is found by the counts and removed
    id by id; that fix is a change like any other, saved at close, so the next open has
    nothing to compare (it repeated the comparison on every open before)."""
    data = tmp_path / "data"
    rng = np.random.default_rng(5)
    with Gallery.open(data) as g:
        for i in range(20):
            add_random_photo(g, rng, f"c-{i}")
        with transaction(g.sessions) as s:  # behind the index's back: no pending delete
            repo.delete_photo(s, photo=str(_photo_of(g, _truth(g)[0])))
    with Gallery.open(data) as g:
        done = g.last_repair
        assert done["mode"] == "watermark" and done["collections_compared"] == 1, done
        assert sorted(g.index.ids().tolist()) == _truth(g)
    with Gallery.open(data) as g:
        assert "collections_compared" not in g.last_repair, g.last_repair
        assert sorted(g.index.ids().tolist()) == _truth(g)
