"""The frames' faces found in worker processes: the same persons as in process, and a
worker that dies is a clear error, not a hang."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from facetrace.config import PipelineOptions
from facetrace.engine import FacePipeline
from facetrace.errors import Cancelled, InferenceUnavailable
from facetrace.video import VideoAnalysis, analyse_video
from facetrace.video.analyse import make_finder
from facetrace.video.faces import VideoFaceFinder
from facetrace.video.workers import FrameWorkers
from tests.video.synthetic import twins, write_video
from tests.video.test_synthetic import OPTIONS


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> FacePipeline:
    return FacePipeline(PipelineOptions(cache_dir=tmp_path_factory.mktemp("models")))


@pytest.fixture(scope="module")
def video(faces_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("workers") / "twins.mp4"
    write_video(path, twins(faces_dir))
    return path


@pytest.fixture(scope="module")
def workers(pipeline: FacePipeline) -> Iterator[FrameWorkers]:
    pool = FrameWorkers(pipeline.options, detect_pixels=OPTIONS.detect_pixels, workers=2)
    yield pool
    pool.close()


def _summary(result: VideoAnalysis) -> list[tuple[object, ...]]:
    return [
        (p.intervals, p.tracks, p.faces, [(k.frame_index, k.box) for k in p.key_frames])
        for p in result.persons
    ]


def test_workers_find_the_same_persons_as_the_calling_process(
    video: Path, pipeline: FacePipeline, workers: FrameWorkers
) -> None:
    alone = analyse_video(
        video,
        pipeline,
        options=OPTIONS,
        finder=VideoFaceFinder(pipeline, detect_pixels=OPTIONS.detect_pixels),
    )
    pooled = analyse_video(video, pipeline, options=OPTIONS, finder=workers)
    assert len(pooled.persons) == 2
    assert (pooled.frames_sampled, pooled.faces_seen, pooled.shots) == (
        alone.frames_sampled,
        alone.faces_seen,
        alone.shots,
    )
    assert _summary(pooled) == _summary(alone)
    for a, b in zip(alone.persons, pooled.persons, strict=True):
        assert float(a.template @ b.template) > 0.9999


def test_the_default_finder_is_a_pool_on_more_than_one_core(pipeline: FacePipeline) -> None:
    from dataclasses import replace

    finder = make_finder(pipeline, replace(OPTIONS, workers=2))
    assert isinstance(finder, FrameWorkers) and finder.workers == 2
    assert isinstance(make_finder(pipeline, replace(OPTIONS, workers=1)), VideoFaceFinder)


def test_cancel_stops_the_pooled_analysis_and_the_pool_goes_on(
    video: Path, pipeline: FacePipeline, workers: FrameWorkers
) -> None:
    seen: list[int] = []
    with pytest.raises(Cancelled):
        analyse_video(
            video,
            pipeline,
            options=OPTIONS,
            finder=workers,
            progress=lambda p: seen.append(p.frames),
            cancelled=lambda: len(seen) >= 3,
        )
    assert seen == [1, 2, 3]
    again = analyse_video(video, pipeline, options=OPTIONS, finder=workers)
    assert len(again.persons) == 2


def test_a_worker_that_dies_is_a_clear_error_and_the_next_video_starts_afresh(
    video: Path, pipeline: FacePipeline
) -> None:
    pool = FrameWorkers(pipeline.options, detect_pixels=OPTIONS.detect_pixels, workers=2)
    try:
        pool.warm()
        victim = min(pool.pids())
        os.kill(victim, signal.SIGKILL)
        with pytest.raises(InferenceUnavailable, match="stopped unexpectedly"):
            analyse_video(video, pipeline, options=OPTIONS, finder=pool)
        result = analyse_video(video, pipeline, options=OPTIONS, finder=pool)
        assert len(result.persons) == 2
        assert victim not in pool.pids()
        assert np.isfinite(result.persons[0].template).all()
    finally:
        pool.close()


_ORPHAN_SCRIPT = """
import os, sys
from pathlib import Path
from facetrace.config import PipelineOptions
from facetrace.video.workers import FrameWorkers

if __name__ == "__main__":
    pool = FrameWorkers(PipelineOptions(cache_dir=Path(sys.argv[1])), workers=2)
    pool.warm()
    print(" ".join(str(p) for p in pool.pids()), flush=True)
    sys.stdin.readline()  # killed here
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_workers_end_when_their_process_is_killed(tmp_path: Path, pipeline: FacePipeline) -> None:
    """A service killed with kill -9 leaves no worker behind with its models loaded."""
    import subprocess
    import sys
    import time

    script = tmp_path / "owner.py"
    script.write_text(_ORPHAN_SCRIPT)
    models = pipeline.options.cache_dir or tmp_path
    owner = subprocess.Popen(
        [sys.executable, str(script), str(models)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    pids: list[int] = []
    try:
        assert owner.stdout is not None
        pids = [int(p) for p in owner.stdout.readline().split()]
        assert len(pids) == 2 and all(_alive(p) for p in pids)
        owner.kill()
        owner.wait()
        deadline = time.monotonic() + 60  # a bound for a busy machine, not a speed check
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(_alive(p) for p in pids)
    finally:
        owner.kill()
        for p in pids:
            if _alive(p):
                os.kill(p, signal.SIGKILL)
