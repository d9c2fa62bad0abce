"""The per-photo process pool: its workers run at the niceness asked (a service's import
yields the cores to its searches). Real spawned processes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from facetrace.config import PipelineOptions
from facetrace.imaging import ImageLimits
from facetrace.pool import map_photos


def _niceness(item: int, pipeline: Any, limits: ImageLimits) -> tuple[int, int]:
    return os.getpid(), os.getpriority(os.PRIO_PROCESS, 0)


def test_pool_workers_run_at_the_niceness_asked(tmp_path: Path) -> None:
    here = os.getpriority(os.PRIO_PROCESS, 0)
    options = PipelineOptions(cache_dir=tmp_path)
    niced = list(
        map_photos(
            _niceness, list(range(8)), options=options, limits=ImageLimits(), workers=2, nice=5
        )
    )
    assert {pid for pid, _ in niced} - {os.getpid()}  # ran in worker processes
    assert {n for _, n in niced} == {min(here + 5, 19)}
    plain = list(
        map_photos(_niceness, list(range(8)), options=options, limits=ImageLimits(), workers=2)
    )
    assert {n for _, n in plain} == {here}


def _threads(item: int, pipeline: Any, limits: ImageLimits) -> tuple[int, int, int]:
    detector = pipeline.detector
    return os.getpid(), pipeline.embedder.runtime.intra_op_threads, detector.cnn.threads


def test_pool_workers_run_every_model_on_one_thread(tmp_path: Path) -> None:
    """As many workers as cores: the embedder and the auto detector's CNN each get one
    ONNX Runtime thread per worker (the CNN had one per core in each worker)."""
    options = PipelineOptions(cache_dir=tmp_path)  # threads=0 here: one per core
    seen = list(
        map_photos(_threads, list(range(8)), options=options, limits=ImageLimits(), workers=2)
    )
    assert {pid for pid, _, _ in seen} - {os.getpid()}
    assert {(emb, cnn) for _, emb, cnn in seen} == {(1, 1)}


CONVERT_SCRIPT = """
import json, sys
from pathlib import Path
from facetrace.config import PipelineOptions
from facetrace.imaging import ImageLimits
from facetrace.pool import map_photos
from tests.test_pool import _niceness
options = PipelineOptions(cache_dir=Path(sys.argv[1]))
got = list(map_photos(_niceness, list(range(8)), options=options, limits=ImageLimits(), workers=2))
print(json.dumps({"onnx_here": "onnx" in sys.modules, "photos": len(got)}))
"""


def test_a_worker_converts_missing_models_once_before_any_photo(tmp_path: Path) -> None:
    """A fresh data directory: one worker converts the descriptor's and the CNN's ONNX
    graphs into the cache before any photo is sent, so the workers open them instead of
    each converting the same files; the parent never imports onnx (half a second), and
    goes on meanwhile."""
    import json
    import subprocess
    import sys

    from facetrace.vision import dlib_cnn_onnx, dlib_onnx

    root = Path(__file__).resolve().parent.parent
    out = subprocess.run(
        [sys.executable, "-c", CONVERT_SCRIPT, str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        cwd=root,
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"onnx_here": False, "photos": 8}
    assert (tmp_path / dlib_onnx.ONNX_FILENAME).is_file()
    assert (tmp_path / dlib_cnn_onnx.ONNX_FILENAME).is_file()


def _pid(item: int, pipeline: Any, limits: ImageLimits) -> int:
    return os.getpid()


def test_a_pool_started_early_runs_the_ingest_that_is_given_it(
    tmp_path: Path, mini_lfw: Path
) -> None:
    """A command starts its workers before it opens the gallery (they import meanwhile):
    the ingest then runs on those very processes and stores what an ingest starting its
    own pool stores; a pool started with other options is refused."""
    import pytest

    from facetrace.gallery.directory import Gallery
    from facetrace.gallery.ingest import ingest, scan_folder
    from facetrace.pool import PhotoPool

    with Gallery.open(tmp_path / "own") as own:
        ingest(own, scan_folder(mini_lfw), workers=2)
        want = own.status()
    options = PipelineOptions(cache_dir=tmp_path / "early" / "models")
    with PhotoPool(options, ImageLimits(), 2) as pool:
        before = pool.pids()
        assert len(before) == 2 and os.getpid() not in before
        with Gallery.open(tmp_path / "early", pipeline=options) as g:
            summary = ingest(g, scan_folder(mini_lfw), workers=2, pool=pool)
            got = g.status()
        assert pool.pids() == before  # the same workers, still up
        assert set(pool.map(_pid, list(range(8)))) <= set(before)
        with pytest.raises(ValueError, match="other pipeline options"):
            list(map_photos(_pid, [1], options=PipelineOptions(), limits=ImageLimits(),
                            workers=2, pool=pool))  # fmt: skip
    assert summary.photos_added > 0
    assert (got["photos"], got["faces"]) == (want["photos"], want["faces"])
