"""A lost index is rebuilt in the background while exact search serves.

The service opens its gallery with ``rebuild_in_background``: when the HNSW file is
gone, searches are answered at once by an exact scan of the vectors copied from SQL,
``index_health`` (``index status``, readiness) reports the rebuild's progress, and
adds and deletes made during the rebuild are in the new index when it takes over. The
build is held at a chunk boundary by the test (a gate on the SQL reads it makes), so
that "during" is certain rather than a race.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from facetrace.cli.main import app
from facetrace.gallery import directory
from facetrace.gallery.directory import INDEX_FILE, REBUILD_STATUS_FILE, Gallery
from facetrace.store import repo
from tests.gallery.crash_worker import add_random_photo

N = 600


def _truth(g: Gallery) -> list[int]:
    with g.sessions() as s:
        return sorted(repo.searchable_ids(s).tolist())


def test_lost_index_rebuilt_behind_exact_search(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    rng = np.random.default_rng(4)
    with Gallery.open(data) as g:
        for i in range(N):
            add_random_photo(g, rng, f"f-{i}")
        g.rebuild_index("hnsw")
    for part in data.glob(INDEX_FILE + "*"):
        part.unlink()  # the index is lost; SQL still holds every vector

    monkeypatch.setattr(directory, "REBUILD_CHUNK", 100)
    gate = threading.Event()
    held = threading.Event()  # set once the rebuild waits at the gate
    reads = {"n": 0}
    real_entries = repo.index_entries

    def held_entries(*args: object, **kwargs: object) -> repo.IndexEntries:
        if threading.current_thread().name == "facetrace-index-rebuild":
            reads["n"] += 1
            if reads["n"] == 3:  # two chunks in, the rebuild waits for the test
                held.set()
                assert gate.wait(300), "the test never released the rebuild"
        return real_entries(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(repo, "index_entries", held_entries)
    g = Gallery.open(data, rebuild_in_background=True)
    try:
        # serving at once, exactly: the stand-in is an exact scan
        assert g.index.settings()["kind"] == "flat" and g.index.count == N
        health = g.index_health()
        assert health["ok"] and health["rebuild"]["state"] == "building"
        assert health["rebuild"]["kind"] == "hnsw" and health["rebuild"]["total"] == N
        with g.sessions() as s:
            ids, vecs = repo.vectors_for(s, np.asarray(_truth(g)[:5]), 128)
        _, found = g.index.search(vecs, 1)
        assert found[:, 0].tolist() == ids.tolist()
        # exactly: random probes get the true ten nearest of every face in SQL
        with g.sessions() as s:
            all_ids, all_vecs = repo.vectors_for(s, np.asarray(_truth(g)), 128)
        probes = rng.standard_normal((20, 128)).astype(np.float32)
        probes /= np.linalg.norm(probes, axis=1, keepdims=True)
        _, got = g.index.search(probes, 10)
        want = all_ids[np.argsort(-(probes @ all_vecs.T), axis=1)[:, :10]]
        assert got.tolist() == want.tolist()
        assert held.wait(300), "the rebuild never reached its third chunk"
        # another process sees the progress (and does not start a rebuild of its own)
        res = CliRunner().invoke(app, ["--data", str(data), "index", "status"])
        assert res.exit_code == 0, res.stderr
        shown = json.loads(res.stdout)["rebuild"]
        assert shown["state"] == "building" and shown["done"] == 200 and shown["total"] == N
        assert shown["started"] == g.rebuild["started"] and shown["started"].endswith("+00:00")

        # writes while it builds
        for i in range(7):
            add_random_photo(g, rng, f"during-{i}")
        gone = _truth(g)[:3] + _truth(g)[-2:]  # old faces and faces added just now
        with g.sessions() as s:
            photos = {repo.face_info(s, {f})[f].photo_id for f in gone}
        for photo in photos:
            g.delete_photo(str(photo))
        assert not (g.data_dir / INDEX_FILE).exists()  # the stand-in is never saved

        gate.set()
        assert g.wait_rebuilt(120)
        assert g.rebuild is not None and g.rebuild["state"] == "done", g.rebuild
        assert g.index.settings()["kind"] == "hnsw"
        truth = _truth(g)
        assert len(truth) == N + 7 - 5
        assert sorted(g.index.ids().tolist()) == truth  # nothing lost, nothing resurrected
        assert g.index_health()["rebuild"]["state"] == "done"
        status = json.loads((data / REBUILD_STATUS_FILE).read_text())
        assert status["state"] == "done"
    finally:
        gate.set()
        g.close()
    res = CliRunner().invoke(app, ["--data", str(data), "index", "status"])
    assert res.exit_code == 0, res.stderr
    shown = json.loads(res.stdout)
    assert shown["index"]["kind"] == "hnsw"
    assert shown["last_rebuild"]["state"] == "done" and shown["last_rebuild"]["done"] == N + 2
    with Gallery.open(data) as again:  # the rebuilt index was saved and is described
        assert again.index.settings()["kind"] == "hnsw"
        assert again.last_repair["mode"] == "watermark"
        assert sorted(again.index.ids().tolist()) == _truth(again)
