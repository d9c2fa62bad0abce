"""``/readyz`` reports a lost index being rebuilt in the background (issue 16 item 6).

The service stays ready (searches are answered by exact search meanwhile) and says how
far the rebuild is: faces done of total, its state, kind and start time; counts only,
no path or server name for the unauthenticated probe. The rebuild is held at a chunk
boundary by a gate on the SQL reads it makes, so "during" is certain, not a race.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from facetrace.config import ServiceConfig
from facetrace.gallery import directory
from facetrace.gallery.directory import INDEX_FILE, Gallery
from facetrace.server.app import create_app
from facetrace.store import repo
from tests.gallery.crash_worker import add_random_photo

N = 300


def _ready_until(client: TestClient, pred: Any) -> dict[str, Any]:
    """Poll /readyz until ``pred(body)`` (the deadline only keeps a broken run from hanging)."""
    deadline = time.monotonic() + 120
    while True:
        resp = client.get("/readyz")
        body = resp.json()
        if pred(body):
            assert resp.status_code == 200, body
            return dict(body)
        if time.monotonic() > deadline:
            raise AssertionError(f"/readyz stayed {resp.status_code}: {body}")
        time.sleep(0.1)


def test_readyz_reports_a_background_rebuild(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    rng = np.random.default_rng(7)
    with Gallery.open(data) as g:
        for i in range(N):
            add_random_photo(g, rng, f"f-{i}")
        g.rebuild_index("hnsw")
    for part in data.glob(INDEX_FILE + "*"):
        part.unlink()  # lost; SQL still holds every vector

    monkeypatch.setattr(directory, "REBUILD_CHUNK", 100)
    gate = threading.Event()
    reads = {"n": 0}
    real_entries = repo.index_entries

    def held_entries(*args: object, **kwargs: object) -> repo.IndexEntries:
        if threading.current_thread().name == "facetrace-index-rebuild":
            reads["n"] += 1
            if reads["n"] == 2:  # one chunk in, the rebuild waits for the test
                assert gate.wait(300), "the test never released the rebuild"
        return real_entries(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(repo, "index_entries", held_entries)
    before = time.time()
    try:
        with TestClient(create_app(ServiceConfig(data=data))) as client:
            body = _ready_until(
                client,
                lambda b: (b.get("index_rebuild") or {}).get("done") == 100,
            )
            assert body["status"] == "ready"  # searches are answered meanwhile
            assert body["checks"] == {"database": None, "index": None, "data_directory": None}
            rebuild = body["index_rebuild"]
            assert rebuild["state"] == "building" and rebuild["kind"] == "hnsw"
            assert rebuild["total"] == N
            assert before - 1 <= rebuild["started_at"] <= time.time()
            text = client.get("/readyz").text
            assert str(tmp_path) not in text and "pid" not in text, "counts only"

            gate.set()
            done = _ready_until(
                client, lambda b: (b.get("index_rebuild") or {}).get("state") == "done"
            )
            assert done["status"] == "ready" and done["index_rebuild"]["done"] == N
    finally:
        gate.set()
