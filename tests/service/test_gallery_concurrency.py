"""The gallery as request threads share it (issue 10 item 2): searches read the index side
by side, an import batch holds them back only for the step that indexes its faces, and a
delete waits for the searches inside. Real gallery, real threads; barriers and the
index lock's state order the threads, never sleeps."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy.orm import Session

from facetrace.gallery.ingest import Batch
from facetrace.index.base import Selector
from facetrace.rwlock import LockState
from facetrace.service import searches
from facetrace.service.gallery_port import GalleryPort
from tests.galleries import ENROLLED
from tests.service.conftest import port_searcher, sqlite_port

HANG = 60.0  # seconds before a wait counts as a deadlock


@pytest.fixture()
def port(gallery_dir: Path) -> Iterator[GalleryPort]:
    with sqlite_port(gallery_dir) as gp:
        yield gp


def _a_vector(port: GalleryPort) -> np.ndarray[Any, np.dtype[np.float32]]:
    g = port.gallery()
    return np.asarray(g.subject_vectors(ENROLLED[0])[0], dtype=np.float32)


def _search(
    port: GalleryPort, vector: np.ndarray[Any, np.dtype[np.float32]], *, scope: Selector | None
) -> searches.VectorResult:
    """The service's search of one vector on the port's gallery."""
    return searches.search_vector(port_searcher(port), vector, scope=scope)


def _imported(port: GalleryPort) -> Selector | None:
    """The selector of a search of the ``imported`` collection only."""
    return port.gallery().selector_for(["imported"])


def _in_thread(target: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(target())
        except BaseException as exc:  # handed to the test through ``out``
            out.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, out


def _until(state: Callable[[], LockState], ok: Callable[[LockState], bool]) -> None:
    pause = threading.Event()
    for _ in range(int(HANG * 1000)):
        if ok(state()):
            return
        pause.wait(0.001)
    raise AssertionError(f"the index lock never reached the state; it is {state()}")


def test_two_searches_are_inside_the_index_at_once(port: GalleryPort) -> None:
    g = port.gallery()
    vector = _a_vector(port)
    both_inside = threading.Barrier(2, timeout=HANG)  # broken if searches are serialised
    real_search = g.index.search

    def search_when_both_inside(*args: Any, **kwargs: Any) -> Any:
        both_inside.wait()
        return real_search(*args, **kwargs)

    g.index.search = search_when_both_inside  # the real index, met by two threads at once
    runs = [_in_thread(lambda: _search(port, vector, scope=None)) for _ in range(2)]
    for t, _ in runs:
        t.join(HANG)
    for _, out in runs:
        assert len(out) == 1 and not isinstance(out[0], BaseException), out
        assert out[0].candidates[0].subject_external_id == ENROLLED[0]


def test_a_search_completes_while_an_import_batch_commits(
    port: GalleryPort, probe_of: dict[str, Path], tmp_path: Path
) -> None:
    """The batch's transaction is open (its hook runs inside it) when the search runs: the
    search must neither wait for the commit nor see the batch's faces before they are
    indexed, and it sees them after."""
    upload = tmp_path / "upload"
    (upload / "New_Person").mkdir(parents=True)
    shutil.copy(probe_of[ENROLLED[1]], upload / "New_Person")  # a photo not in the gallery
    vector = _a_vector(port)
    during: list[Any] = []

    def search_inside_the_batch(session: Session, batch: Batch) -> None:
        t, out = _in_thread(lambda: _search(port, vector, scope=_imported(port)))
        t.join(HANG)
        during.extend(out)

    summary = port.ingest(
        upload,
        collection="imported",
        legal_basis="test",
        allowed_root=upload,
        progress=lambda done, total: None,
        on_batch=search_inside_the_batch,
    )
    assert summary["photos_added"] == 1
    assert len(during) == 1, "the search did not finish while the batch was committing"
    assert not isinstance(during[0], BaseException), during
    assert during[0].candidates == ()  # the batch's faces were not indexed yet
    g = port.gallery()
    after = _search(port, g.subject_vectors("New_Person")[0], scope=_imported(port))
    assert after.candidates[0].subject_external_id == "New_Person"


def test_a_delete_waits_for_the_searches_inside_and_holds_new_ones_back(
    port: GalleryPort,
) -> None:
    g = port.gallery()
    vector = _a_vector(port)
    subject = ENROLLED[0]
    real_search = g.index.search
    entered = threading.Event()
    leave = threading.Event()

    def held_search(*args: Any, **kwargs: Any) -> Any:
        if threading.current_thread().name == "first-search":
            entered.set()
            leave.wait(HANG)
        return real_search(*args, **kwargs)

    g.index.search = held_search
    first: list[Any] = []
    t1 = threading.Thread(
        target=lambda: first.append(_search(port, vector, scope=None)),
        name="first-search",
        daemon=True,
    )
    t1.start()
    assert entered.wait(HANG)
    count_before = g.index.count
    with g.sessions.begin() as s:
        ids = port.remove_rows(s, kind="subject", target=ENROLLED[0], collection="lfw")
    deleter, _ = _in_thread(lambda: port.forget(ids))
    _until(g._rw.state, lambda s: s.writers_waiting == 1)
    late, late_out = _in_thread(lambda: _search(port, vector, scope=None))
    _until(g._rw.state, lambda s: s.readers_waiting == 1)  # behind the waiting delete
    assert g.index.count == count_before  # the index is unchanged under the first search
    leave.set()
    for t in (t1, deleter, late):
        t.join(HANG)
    assert g.index.count == count_before - len(ids)
    # SQL is the truth: the first search met the faces in the index but not in SQL
    for result in (first[0], late_out[0]):
        assert result.candidates or result.below_threshold
        assert all(
            c.subject_external_id != subject for c in result.candidates + result.below_threshold
        )
